# BME280 driver against the register-level simulator on the virtual board's I2C bus
# (runs on CPython and on the MicroPython unix port).
import errno

import machine
from bme280_sim import BME280Sim
from check import raises
from laterne import bme280
from laterne import flags as F

# BMP280 datasheet worked example (T/P formulas are the BME280's): calibration and raw values
# with their published results t_fine 128422, 25.08 degC, 100653.27 Pa.
EXAMPLE_CAL = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
               75, 362, 0, 313, 50, 30)


def setup(address=0x76, **kw):
    board = machine.board
    board.devices.clear()
    board.power_on()
    sim = BME280Sim(board.clock)
    board.attach(address, sim)
    bus = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21))
    return sim, bme280.BME280(bus, clock=board.clock, **kw)


def close(a, b, tol):
    return abs(a - b) <= tol


def test_datasheet_worked_example():
    tf = bme280.t_fine(EXAMPLE_CAL, 519888)
    assert tf == 128422
    assert bme280.temperature(tf) == 2508
    p = bme280.pressure(EXAMPLE_CAL, tf, 415148)
    assert abs(p / 256 - 100653.27) < 0.1


def test_max_measure_time_from_datasheet_formula():
    assert bme280.max_measure_us(1, 1, 1) == 9300          # 1.25 + 2.3 + 2.875 + 2.875 ms
    assert bme280.max_measure_us(16, 16, 16) == 112800     # "~113 ms" at x16 everywhere
    assert bme280.max_measure_us(1, 1, 0) == 6425          # humidity skipped


def test_parse_calibration_signed_and_unsigned_fields():
    b88 = bytearray(26)
    b88[0:2] = b"\xff\xff"      # T1 unsigned: 65535
    b88[2:4] = b"\x00\x80"      # T2 signed: -32768
    b88[6:8] = b"\x34\x92"      # P1 unsigned: 0x9234
    b88[22:24] = b"\xfe\xff"    # P9 signed: -2
    b88[25] = 0xC8              # H1 unsigned char: 200
    # H2=-300 (0xFED4), H3=0xF0 (unsigned), E4=0xF0, E5=0x3A, E6=0x81, H6=0x9C (signed -100)
    be1 = bytes((0xD4, 0xFE, 0xF0, 0xF0, 0x3A, 0x81, 0x9C))
    cal = bme280.parse_calibration(b88, be1)
    assert cal[0] == 65535 and cal[1] == -32768 and cal[3] == 0x9234 and cal[11] == -2
    assert cal[12] == 200 and cal[13] == -300 and cal[14] == 0xF0
    assert cal[15] == -16 * 16 + 0xA        # H4 = signed(E4) * 16 | E5 low nibble
    assert cal[16] == -127 * 16 + 0x3       # H5 = signed(E6) * 16 | E5 high nibble
    assert cal[17] == -100
    raises(ValueError, bme280.parse_calibration, b88[:20], be1)


def test_read_lands_on_the_environment():
    sim, dev = setup()
    dev.init()
    for env in ((21.5, 101325, 45.0), (-25.0, 96000, 95.0), (38.2, 103900, 12.3),
                (0.01, 100001, 50.05)):
        sim.set_environment(*env)
        t, p, h, fl = dev.read()
        assert close(t, env[0] * 100, 1), (env, t)
        assert close(p, env[1], 1), (env, p)
        assert close(h, env[2] * 100, 1), (env, h)
        assert fl == 0
    assert dev.state == "ok" and dev.errors == 0 and dev.reinits == 0


def test_every_read_is_a_fresh_conversion():
    sim, dev = setup()
    dev.init()
    before = sim.measurements
    dev.read()
    assert sim.measurements == before + 1
    sim.set_environment(10.0, 99000, 60.0)
    assert close(dev.read()[0], 1000, 1)


def test_slow_conversion_is_polled_not_read_stale():
    sim, dev = setup()
    dev.init()
    dev.read()
    sim.extra_us = 5000   # conversion ends well after the datasheet maximum
    sim.set_environment(5.0, 100500, 70.0)
    t, p, h, fl = dev.read()
    assert close(t, 500, 1) and close(p, 100500, 1)


def test_waits_the_maximum_before_polling():
    sim, dev = setup()
    dev.init()
    clock = machine.board.clock
    start = clock.now_us()
    dev.read()
    took = clock.now_us() - start
    # config check + trigger + wait 9.3 ms + one status poll + burst: no coarse steps
    assert 9300 <= took < 9300 + 1000, took


def test_registers_written_as_configured():
    sim, dev = setup(osrs_t=2, osrs_p=16, osrs_h=4, iir=4)
    dev.init()
    assert sim.regs[0xF2] == 3                    # x4 humidity
    assert sim.regs[0xF4] == (2 << 5) | (5 << 2)  # x2 temperature, x16 pressure, sleep
    assert sim.regs[0xF5] == 2 << 2               # filter coefficient 4
    t, p, h, fl = dev.read()
    assert fl == 0 and close(t, 2150, 1) and close(h, 4500, 1)


def test_bad_configuration_is_refused():
    import time
    if not hasattr(time, "ticks_us"):  # CPython's time module is no MicroPython clock
        raises(ValueError, bme280.BME280, machine.I2C(0))
    raises(ValueError, bme280.BME280, machine.I2C(0), osrs_t=3)
    raises(ValueError, bme280.BME280, machine.I2C(0), iir=5)
    raises(ValueError, bme280.BME280, machine.I2C(0), address=0x42)


def test_configure_at_run_time_without_reinit():
    sim, dev = setup()
    dev.init()
    dev.configure({"osrs_t": 4, "iir": 2, "temp_offset_centi": -50})
    t, p, h, fl = dev.read()
    assert sim.regs[0xF4] >> 5 == 3 and (sim.regs[0xF5] >> 2) & 7 == 1
    assert fl & F.REINIT == 0 and close(t, 2100, 1)


def test_temperature_offset():
    sim, dev = setup(temp_offset=-150)
    t = dev.read()[0]
    assert close(t, 2000, 1)


def test_auto_detect_second_address():
    sim, dev = setup(address=0x77)
    dev.init()
    assert dev.address == 0x77 and dev.chip_id == 0x60


def test_missing_sensor():
    sim, dev = setup()
    machine.board.detach(0x76)
    e = raises(bme280.SensorMissing, dev.init)
    assert "0x76" in str(e) and "0x77" in str(e)
    assert dev.state == "missing" and dev.errors == 1
    raises(bme280.SensorMissing, dev.read)


def test_bmp280_is_named_and_refused():
    sim, dev = setup()
    sim.chip_id = 0x58
    e = raises(bme280.WrongChip, dev.init)
    assert e.chip_id == 0x58
    assert str(e).startswith("chip id 0x58: this is a BMP280, not a BME280")
    assert dev.state == "wrong_chip"
    sim.chip_id = 0x61
    e = raises(bme280.WrongChip, dev.read)
    assert "0x61" in str(e) and e.chip_id == 0x61


def test_bmp280_by_configuration():
    sim, dev = setup(humidity=False)
    sim.chip_id = 0x58
    dev.init()
    assert dev.wait_us == 6425   # no humidity conversion to wait for
    t, p, h, fl = dev.read()
    assert fl == F.H_SKIPPED and h == 0
    assert close(t, 2150, 1) and close(p, 101325, 1)


def test_skipped_channels_are_flagged():
    sim, dev = setup()
    dev.init()
    sim.fault_skip = "h"
    t, p, h, fl = dev.read()
    assert fl == F.H_SKIPPED and h == 0 and close(t, 2150, 1)
    sim.fault_skip = "p"
    t, p, h, fl = dev.read()
    assert fl == F.P_SKIPPED and p == 0 and close(h, 4500, 1)
    sim.fault_skip = "t"  # no t_fine: pressure and humidity cannot be compensated either
    assert dev.read() == (0, 0, 0, F.T_SKIPPED | F.P_SKIPPED | F.H_SKIPPED)


def test_oversampling_zero_skips_the_channel():
    sim, dev = setup(osrs_h=0)
    t, p, h, fl = dev.read()
    assert fl == F.H_SKIPPED and h == 0


def test_stuck_measuring_times_out_then_recovers():
    sim, dev = setup()
    dev.init()
    sim.fault_stuck_measuring = True
    e = raises(bme280.SensorTimeout, dev.read)
    assert "measuring" in str(e)
    assert dev.state == "timeout" and dev.errors >= 1 and dev.last_error == str(e)
    sim.fault_stuck_measuring = False
    t, p, h, fl = dev.read()
    assert fl == F.REINIT and close(t, 2150, 1) and dev.state == "ok"


def test_im_update_is_waited_for():
    sim, dev = setup()
    sim.reset_us = 6000   # NVM copy slower than the 2 ms start-up time
    dev.init()
    assert dev.cal == sim.calibration
    sim.fault_stuck_im_update = True
    e = raises(bme280.SensorTimeout, dev.init)
    assert "im_update" in str(e) and dev.state == "timeout"


def test_lost_configuration_is_restored():
    sim, dev = setup(iir=2)
    dev.init()
    dev.read()
    sim.brownout()
    t, p, h, fl = dev.read()
    assert fl == F.REINIT and dev.reinits == 1
    assert close(h, 4500, 1)                  # ctrl_hum restored, humidity measured again
    assert (sim.regs[0xF5] >> 2) & 7 == 1     # filter restored
    assert "configuration lost" in dev.last_error
    assert dev.read()[3] == 0                 # only the first reading after it is flagged


def test_transient_nack_is_retried():
    sim, dev = setup()
    dev.init()
    sim.nack_next = 1
    t, p, h, fl = dev.read()
    assert fl == 0 and close(t, 2150, 1) and dev.errors == 1 and dev.state == "ok"


def test_repeated_nacks_reprobe_and_recover_the_bus():
    sim, dev = setup()
    recovered = []
    dev.i2c.recover = lambda: recovered.append(1)
    dev.init()
    sim.nack_next = 2
    t, p, h, fl = dev.read()
    assert recovered == [1]
    assert fl == F.REINIT and close(t, 2150, 1) and dev.errors == 2


def test_dead_bus_is_reported_missing():
    sim, dev = setup()
    dev.init()
    sim.fault_nack = True
    raises(bme280.SensorMissing, dev.read)
    assert dev.state == "missing" and dev.errors == 3
    sim.fault_nack = False
    t, p, h, fl = dev.read()
    assert fl == F.REINIT and dev.state == "ok"


def test_i2c_errors_name_the_errno():
    sim, dev = setup(address=0x76)
    dev.init()
    sim.nack_next = 2
    dev.read()
    assert "I2C error" in dev.last_error and str(errno.ENODEV) in dev.last_error


def test_plausibility_flags():
    sim, dev = setup()
    dev.init()
    sim.set_environment(80.0, 101325, 20.0)
    assert dev.read()[3] == F.IMPLAUSIBLE
    sim.set_environment(20.0, 40000, 20.0)
    assert dev.read()[3] == F.IMPLAUSIBLE
    sim.set_environment(12.0, 101325, 100.0)
    t, p, h, fl = dev.read()
    assert h == 10000 and fl == F.SATURATED | F.CLAMPED
    sim.set_environment(12.0, 101325, 0.0)
    t, p, h, fl = dev.read()
    assert h == 0 and fl == F.CLAMPED | F.IMPLAUSIBLE


def test_calibration_of_zeros_is_refused():
    sim, dev = setup()
    sim.set_calibration((0,) * 18)
    e = raises(bme280.SensorError, dev.init)
    assert "calibration" in str(e) and dev.state == "error"
