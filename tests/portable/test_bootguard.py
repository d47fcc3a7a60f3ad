# Crash-loop detection: counts crash resets in a window, enters safe mode at the limit,
# leaves it when its time is up, and ignores power-on resets and corrupt RTC memory.
from laterne import bootguard

LIMIT, WINDOW, SAFE = 3, 600, 3600


def boot(raw, cause, now):
    return bootguard.judge(raw, cause, now, LIMIT, WINDOW, SAFE)


def test_three_crashes_in_the_window_enter_safe_mode():
    raw = None
    safe, raw = boot(raw, "wdt", 1000)
    assert not safe
    safe, raw = boot(raw, "hard", 1100)
    assert not safe
    safe, raw = boot(raw, "crash", 1200)
    assert safe


def test_safe_mode_holds_until_its_time_is_up_then_clears():
    raw = None
    for t in (1000, 1010, 1020):
        safe, raw = boot(raw, "wdt", t)
    assert safe
    safe, raw = boot(raw, "soft", 1020 + SAFE - 1)
    assert safe
    safe, raw = boot(raw, "soft", 1020 + SAFE + 1)
    assert not safe
    assert bootguard.decode(raw)[0] == 0


def test_crashes_spread_beyond_the_window_do_not_accumulate():
    raw = None
    for i in range(10):
        safe, raw = boot(raw, "wdt", 1000 + i * (WINDOW + 1))
        assert not safe


def test_power_on_and_deep_sleep_are_not_crashes():
    raw = None
    for i in range(10):
        safe, raw = boot(raw, "deep_sleep" if i % 2 else "soft", 1000 + i)
        assert not safe


def test_corrupt_or_foreign_rtc_memory_reads_as_no_record():
    assert bootguard.decode(b"\xff" * bootguard.SIZE) == (0, 0, 0)
    good = bootguard.encode(2, 500, 0)
    flipped = bytearray(good)
    flipped[3] ^= 0x10
    assert bootguard.decode(bytes(flipped)) == (0, 0, 0)
    assert bootguard.decode(good) == (2, 500, 0)
    assert bootguard.decode(b"") == (0, 0, 0)


def test_clock_going_backwards_restarts_the_window():
    raw = None
    safe, raw = boot(raw, "wdt", 5000)
    safe, raw = boot(raw, "wdt", 10)  # RTC was reset: do not count as within the window
    assert bootguard.decode(raw)[0] == 1
