# The register-level BME280 simulator on its own: timing of the status bits, modes, the
# ctrl_hum latch, write protocol, calibration encoding (CPython and MicroPython).
from bme280_sim import BME280Sim, encode_calibration
from laterne import bme280
from vclock import VClock


def status(sim):
    b = bytearray(1)
    sim.readfrom_mem_into(0xF3, b)
    return b[0]


def data(sim):
    b = bytearray(8)
    sim.readfrom_mem_into(0xF7, b)
    return ((b[3] << 12) | (b[4] << 4) | (b[5] >> 4), (b[0] << 12) | (b[1] << 4) | (b[2] >> 4),
            (b[6] << 8) | b[7])


def ready_sim():
    clock = VClock()
    sim = BME280Sim(clock)
    clock.sleep_ms(3)
    return clock, sim


def test_power_on_values():
    clock, sim = ready_sim()
    assert data(sim) == (0x80000, 0x80000, 0x8000)    # nothing converted yet
    b = bytearray(1)
    sim.readfrom_mem_into(0xD0, b)
    assert b[0] == 0x60


def test_soft_reset_sets_im_update_and_clears_configuration():
    clock, sim = ready_sim()
    sim.writeto_mem(0xF2, b"\x01")
    sim.writeto_mem(0xF5, b"\x10")
    sim.writeto_mem(0xE0, b"\xb6")
    assert status(sim) & 0x01
    b = bytearray(26)
    sim.readfrom_mem_into(0x88, b)
    assert b == bytearray(26)                       # calibration not readable yet
    clock.sleep_us(sim.reset_us)
    assert status(sim) == 0
    sim.readfrom_mem_into(0x88, b)
    assert b[0] | b[1] << 8 == sim.calibration[0]
    assert sim.regs[0xF2] == 0 and sim.regs[0xF5] == 0


def test_forced_conversion_timing_and_measuring_lag():
    clock, sim = ready_sim()
    sim.writeto_mem(0xF2, b"\x01")
    sim.writeto_mem(0xF4, bytes(((1 << 5) | (1 << 2) | 1,)))
    assert status(sim) & 0x08 == 0                  # the datasheet's early-read pitfall
    clock.sleep_us(sim.status_lag_us)
    assert status(sim) & 0x08
    assert data(sim)[0] == 0x80000                   # shadowed: still the old data
    clock.sleep_us(8000 - sim.status_lag_us)         # typical x1/x1/x1 conversion: 8 ms
    assert status(sim) & 0x08 == 0
    assert data(sim) == sim.raw
    assert sim.regs[0xF4] & 0x03 == 0                # back to sleep
    assert sim.measurements == 1


def test_ctrl_hum_takes_effect_with_the_next_ctrl_meas_write():
    clock, sim = ready_sim()
    sim.writeto_mem(0xF4, b"\x25")                   # forced, humidity oversampling still 0
    sim.writeto_mem(0xF2, b"\x01")
    clock.sleep_ms(20)
    assert data(sim)[2] == 0x8000
    sim.writeto_mem(0xF4, b"\x25")
    clock.sleep_ms(20)
    assert data(sim)[2] == sim.raw[2]


def test_normal_mode_keeps_converting():
    clock, sim = ready_sim()
    sim.writeto_mem(0xF5, bytes((6 << 5,)))         # t_sb code 6: 10 ms standby
    sim.writeto_mem(0xF2, b"\x01")
    sim.writeto_mem(0xF4, b"\x27")                   # normal mode
    clock.sleep_ms(1000)
    status(sim)
    cycles = sim.measurements
    assert 50 <= cycles <= 60, cycles                # 18.5 ms per cycle, ~54 in a second
    assert data(sim) == sim.raw
    sim.writeto_mem(0xF4, b"\x24")                   # sleep: conversions stop
    clock.sleep_ms(1000)
    status(sim)
    assert sim.measurements <= cycles + 1


def test_register_value_pairs_in_one_write():
    clock, sim = ready_sim()
    sim.writeto_mem(0xF2, bytes((0x03, 0xF5, 0x0C)))  # ctrl_hum=3, then config=0x0C
    assert sim.regs[0xF2] == 3 and sim.regs[0xF5] == 0x0C
    sim.writeto(b"\xd0")
    b = bytearray(1)
    sim.readfrom_into(b)
    assert b[0] == 0x60


def test_calibration_encoding_round_trips_through_the_driver_parser():
    cal = (30000, -1234, 50, 40000, -10000, 3000, 7000, -100, -7, 9000, -11000, 4000,
           75, -300, 200, -1000, -2000, -60)
    b88, be1 = encode_calibration(cal)
    assert bme280.parse_calibration(b88, be1) == cal


def test_bmp280_has_no_humidity():
    clock, sim = ready_sim()
    sim.chip_id = 0x58
    sim.writeto_mem(0xF2, b"\x01")
    sim.writeto_mem(0xF4, b"\x25")
    clock.sleep_ms(20)
    assert data(sim)[2] == 0x8000 and data(sim)[0] == sim.raw[0]


def test_iir_filter_converges_on_a_step():
    clock, sim = ready_sim()
    sim.writeto_mem(0xF5, bytes((4 << 2,)))          # coefficient 16
    first = sim.raw[0]
    sim.writeto_mem(0xF4, b"\x25")
    clock.sleep_ms(20)
    assert data(sim)[0] == first
    sim.set_environment(30.0, 101325, 45.0)
    sim.writeto_mem(0xF4, b"\x25")
    clock.sleep_ms(20)
    moved = data(sim)[0]
    assert first < moved < sim.raw[0]                # one sixteenth of the way
    assert abs((moved - first) * 16 - (sim.raw[0] - first)) <= 16
