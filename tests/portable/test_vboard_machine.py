# The virtual board's `machine` stand-in: I2C errors as the ESP32 port raises them, what RTC
# memory and time survive, watchdog expiry, resets and deep sleep as BoardReset.
import errno

import machine
from bme280_sim import BME280Sim
from check import raises

UID = b"\x24\x0a\xc4\x12\x34\x56"


def fresh():
    board = machine.board
    board.devices.clear()
    board.power_on(uid=UID)
    return board


def test_unanswered_address_is_enodev():
    fresh()
    bus = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21), freq=100000)
    e = raises(OSError, bus.readfrom_mem, 0x76, 0xD0, 1)
    assert e.args[0] == errno.ENODEV
    e = raises(OSError, bus.writeto_mem, 0x40, 0x00, b"\x01")
    assert e.args[0] == errno.ENODEV
    raises(OSError, machine.SoftI2C(scl=machine.Pin(22), sda=machine.Pin(21)).writeto, 0x10, b"")


def test_i2c_reaches_the_attached_device():
    board = fresh()
    sim = BME280Sim(board.clock)
    board.attach(0x77, sim)
    bus = machine.I2C(0)
    assert bus.scan() == [0x77]
    assert bus.readfrom_mem(0x77, 0xD0, 1) == b"\x60"
    buf = bytearray(2)
    bus.readfrom_mem_into(0x77, 0x88, buf)
    assert buf == b"\x00\x00"                  # NVM copy after power-on still running
    board.clock.sleep_ms(2)
    bus.readfrom_mem_into(0x77, 0x88, buf)
    assert buf[0] | buf[1] << 8 == sim.calibration[0]
    bus.writeto_mem(0x77, 0xF5, b"\x08")
    assert sim.regs[0xF5] == 0x08
    bus.writeto(0x77, b"\xd0")                 # register pointer, then a plain read
    assert bus.readfrom(0x77, 1) == b"\x60"
    board.detach(0x77)
    assert bus.scan() == []


def test_i2c_transactions_take_bus_time():
    board = fresh()
    board.attach(0x76, BME280Sim(board.clock))
    before = board.clock.now_us()
    machine.I2C(0, freq=100000).readfrom_mem(0x76, 0xF7, 8)
    assert board.clock.now_us() - before == (8 + 2) * 9 * 10   # 90 us per byte at 100 kHz


def test_rtc_memory_limits():
    fresh()
    rtc = machine.RTC()
    assert rtc.memory() == b""
    rtc.memory(bytes(2048))
    assert len(rtc.memory()) == 2048
    raises(ValueError, rtc.memory, bytes(2049))


def test_rtc_memory_survives_resets_but_not_power_on():
    board = fresh()
    rtc = machine.RTC()
    for cause in (machine.SOFT_RESET, machine.WDT_RESET, machine.DEEPSLEEP_RESET,
                  machine.HARD_RESET):
        rtc.memory(b"kept %d" % cause)
        board.after_reset(cause)
        assert machine.RTC().memory() == b"kept %d" % cause
        assert machine.reset_cause() == cause
    board.power_on(uid=UID)
    assert machine.RTC().memory() == b""
    assert machine.reset_cause() == machine.PWRON_RESET


def test_rtc_datetime_drives_the_board_clock():
    board = fresh()
    rtc = machine.RTC()
    rtc.datetime((2026, 3, 1, 6, 12, 30, 15, 250000))   # a Sunday
    assert board.clock.time() == 9556 * 86400 + 45015   # 2000-01-01 .. 2026-03-01 12:30:15
    dt = rtc.datetime()
    assert dt[:7] == (2026, 3, 1, 6, 12, 30, 15)
    board.clock.sleep_ms(800)
    assert rtc.datetime()[6] == 16
    board.after_reset(machine.SOFT_RESET)
    assert rtc.datetime()[:4] == (2026, 3, 1, 6)
    board.power_on(uid=UID)
    assert rtc.datetime()[:3] == (2000, 1, 1)          # RTC time lost with the power


def test_state_survives_a_process_restart():
    board = fresh()
    machine.RTC().memory(b"spool head")
    machine.RTC().datetime((2030, 1, 2, 2, 3, 4, 5, 0))
    saved = board.state_bytes()
    board.power_on(uid=UID)              # the runner's new process starts from scratch
    board.load_state(saved)
    board.after_reset(machine.DEEPSLEEP_RESET)
    assert machine.RTC().memory() == b"spool head"
    assert machine.RTC().datetime()[:7] == (2030, 1, 2, 2, 3, 4, 5)
    assert machine.reset_cause() == machine.DEEPSLEEP_RESET
    assert machine.wake_reason() == machine.TIMER_WAKE
    raises(ValueError, board.load_state, saved[:-3])


def test_watchdog_expiry_resets_the_board():
    board = fresh()
    wdt = machine.WDT(timeout=2000)
    for _ in range(5):
        board.clock.sleep_ms(1500)
        wdt.feed()
    e = raises(machine.BoardReset, board.clock.sleep_ms, 2500)
    assert e.cause == machine.WDT_RESET
    board.clock.sleep_ms(10000)          # disarmed by its own reset


def test_resets_are_not_swallowed_by_except_exception():
    fresh()

    def firmware_loop():
        try:
            machine.deepsleep(60000)
        except Exception:
            return "swallowed"

    e = raises(machine.BoardReset, firmware_loop)
    assert e.cause == machine.DEEPSLEEP_RESET and e.sleep_ms == 60000
    assert raises(machine.BoardReset, machine.reset).cause == machine.HARD_RESET
    e = raises(machine.BoardReset, machine.soft_reset)
    assert e.cause == machine.SOFT_RESET and e.sleep_ms is None


def test_identity_and_pins():
    fresh()
    assert machine.unique_id() == UID
    assert machine.PWRON_RESET == 1 and machine.SOFT_RESET == 5 and machine.WDT_RESET == 3
    assert machine.freq() > 0
    raises(ValueError, machine.board.power_on, b"\x01\x02")
    led = machine.Pin(2, machine.Pin.OUT, value=0)
    assert led.value() == 0
    led.on()
    assert led.value() == 1
    led.off()
    assert led() == 0
    before = machine.board.clock.now_us()
    machine.lightsleep(20)
    machine.idle()
    assert machine.board.clock.now_us() - before >= 20000


def test_watchdog_is_the_esp32_one_no_deinit_survives_soft_reset():
    board = fresh()
    wdt = machine.WDT(timeout=2000)
    assert not hasattr(wdt, "deinit")
    machine.WDT(timeout=60000)                 # a second WDT() only sets a new timeout
    board.clock.sleep_ms(30000)
    board.after_reset(machine.SOFT_RESET)      # a soft reset keeps it running
    e = raises(machine.BoardReset, board.clock.sleep_ms, 31000)
    assert e.cause == machine.WDT_RESET
    machine.WDT(timeout=2000)
    board.after_reset(machine.HARD_RESET)      # a chip reset ends it
    board.clock.sleep_ms(10000)


def test_watchdog_and_rtc_memory_survive_a_process_restart_across_a_soft_reset():
    board = fresh()
    machine.WDT(timeout=10000)
    machine.RTC().memory(b"flag")
    board.clock.sleep_ms(4000)
    saved = board.state_bytes() + bytes(7)     # runners pad the state to one size
    board.power_on(uid=UID)
    board.load_state(saved)
    board.after_reset(machine.SOFT_RESET)
    assert machine.RTC().memory() == b"flag" and 5990 <= board.wdt_left_ms() <= 6000
    raises(machine.BoardReset, board.clock.sleep_ms, 6100)
