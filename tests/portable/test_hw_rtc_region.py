# The ESP32 adapter's RTC memory regions: each returns exactly what was last written to it,
# never stale bytes of a longer earlier write, and regions do not disturb each other.
import machine
from laterne.hw.platform import RtcRegion


def fresh_rtc():
    machine.board.power_on(uid=b"\x24\x0a\xc4\x00\x00\x07")
    return machine.RTC()


def test_read_returns_exactly_the_last_write():
    rtc = fresh_rtc()
    r = RtcRegion(rtc, 64, 600)
    assert r.read() == b""
    r.write(b"x" * 300)
    r.write(b"short")
    assert r.read() == b"short"


def test_regions_are_independent():
    rtc = fresh_rtc()
    a, b = RtcRegion(rtc, 0, 16), RtcRegion(rtc, 32, 6)
    b.write(b"\x01\x02\x03\x04")
    a.write(b"guard-record")
    assert b.read() == b"\x01\x02\x03\x04" and a.read() == b"guard-record"


def test_oversized_write_is_refused_and_foreign_bytes_read_as_empty():
    rtc = fresh_rtc()
    r = RtcRegion(rtc, 64, 10)
    try:
        r.write(b"0123456789")
        raise AssertionError("a write larger than the region must fail")
    except ValueError:
        pass
    rtc.memory(b"\x00" * 64 + b"\xff\xff" + b"junk")  # someone else's bytes
    assert r.read() == b""


def test_power_on_loses_the_regions():
    rtc = fresh_rtc()
    RtcRegion(rtc, 64, 600).write(b"kept across deep sleep only")
    rtc = fresh_rtc()
    assert RtcRegion(rtc, 64, 600).read() == b""
