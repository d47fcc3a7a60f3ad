# Time base (epoch conversion, clock state, fix-up of boot-relative readings) and the
# reconnect backoff, on a jumping virtual clock.
from check import raises

import vclock
from laterne import backoff, flags, timebase


def seq_rand(values):
    it = iter(values)
    return lambda: next(it)


def test_epoch_offset_is_2000_01_01():
    # 30 years of 365 days plus 7 leap days (1972..1996)
    assert timebase.EPOCH_OFFSET == (30 * 365 + 7) * 86400
    assert timebase.to_unix(0, 2000) == 946684800
    assert timebase.to_unix(1234, 1970) == 1234
    assert timebase.to_unix(5000, 2000, 1000) == 946684800000 + 5000
    raises(ValueError, timebase.to_unix, 0, 1980)


def test_unsynced_stamp_is_relative_then_absolute_after_sync():
    clock = vclock.VClock()
    cs = timebase.ClockState(clock, boot=7)
    assert not cs.synced() and cs.now_unix() is None and cs.synced_at is None
    clock.sleep(90)
    assert cs.stamp() == (90, flags.TIME_RELATIVE)
    clock.sleep(30)
    cs.mark_synced(1700000000)
    assert cs.synced() and cs.synced_at == 1700000000
    clock.sleep(15)
    assert cs.stamp() == (1700000015, 0)
    assert cs.now_unix() == 1700000015


def test_fix_same_boot_after_sync():
    clock = vclock.VClock()
    cs = timebase.ClockState(clock, boot=3)
    clock.sleep(100)
    ts, f = cs.stamp()
    f |= flags.H_SKIPPED
    # before the sync the reading cannot be placed in time
    assert cs.fix(ts, 3, f) == (None, f)
    clock.sleep(50)  # sync happens at boot+150 s
    cs.mark_synced(1700000150)
    fixed_ts, fixed_flags = cs.fix(ts, 3, f)
    assert fixed_ts == 1700000100
    assert fixed_flags == flags.H_SKIPPED | flags.TIME_FIXED
    assert not fixed_flags & flags.TIME_RELATIVE


def test_fix_other_boot_stays_unknown_and_absolute_passes_through():
    clock = vclock.VClock()
    cs = timebase.ClockState(clock, boot=9)
    clock.sleep(500)
    cs.mark_synced(1700000000)
    assert cs.fix(40, 8, flags.TIME_RELATIVE) == (None, flags.TIME_RELATIVE)
    assert cs.fix(1690000000, 8, flags.CLAMPED) == (1690000000, flags.CLAMPED)
    # a relative ts later than this boot's uptime cannot be from this boot (wrapped counter)
    assert cs.fix(10000, 9, flags.TIME_RELATIVE) == (None, flags.TIME_RELATIVE)


def test_clock_state_survives_tick_wrap():
    clock = vclock.VClock(uptime_us=(vclock.TICKS_PERIOD - 5000) * 1000)
    cs = timebase.ClockState(clock, boot=1)
    for _ in range(20):
        clock.sleep(3600)  # 20 h in hourly samples crosses the 2**30 ms wrap
        cs.stamp()
    assert cs.uptime_s() == 20 * 3600


def test_backoff_full_jitter_bounds_and_growth():
    b = backoff.Backoff(2, 60, seq_rand([0.999999] * 10))
    ceilings = [b.next_delay() for _ in range(8)]
    assert [round(c) for c in ceilings] == [2, 4, 8, 16, 32, 60, 60, 60]
    b.reset()
    assert round(b.next_delay()) == 2


def test_backoff_is_random_within_bounds_not_fixed():
    b = backoff.Backoff(2, 600, seq_rand([0.0, 0.5, 0.25, 0.75]))
    assert b.next_delay() == 0.0
    assert b.next_delay() == 2.0    # ceiling 4
    assert b.next_delay() == 2.0    # ceiling 8
    assert b.next_delay() == 12.0   # ceiling 16


def test_backoff_survives_many_failures_and_bad_rand():
    b = backoff.Backoff(1, 600, lambda: 0.5)
    for _ in range(10000):
        d = b.next_delay()
    assert d == 300
    bad = backoff.Backoff(1, 10, lambda: 7.0)
    assert 0 <= bad.next_delay() <= 10
    raises(ValueError, backoff.Backoff, 0, 10, lambda: 0.5)
    raises(ValueError, backoff.Backoff, 10, 5, lambda: 0.5)


def test_mark_synced_from_device_clock():
    clock = vclock.VClock(time2000=24 * 3600 * 366)  # 2001-01-01 on the ESP32 epoch
    cs = timebase.ClockState(clock, boot=2)
    cs.mark_synced()
    assert cs.now_unix() == 978307200  # 2001-01-01T00:00:00Z
    cs1970 = timebase.ClockState(clock, boot=2, device_epoch=1970)
    cs1970.mark_synced()
    assert cs1970.now_unix() == 24 * 3600 * 366
