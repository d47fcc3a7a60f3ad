# Crash-loop detection. A small checksummed record in RTC memory counts crash resets
# (watchdog, panic, reset after an unhandled exception) inside a time window. RTC memory is
# lost on power-on, so a lamp whose power flickers is never mistaken for a crash loop, and
# nothing on flash (least of all the config) is touched.
import struct

from laterne.reading import crc16

_MAGIC = 0x4C42  # "LB"
_FMT = "<HHIIH"  # magic, crashes, window start (device seconds), safe until, crc
SIZE = struct.calcsize(_FMT)
CRASH_CAUSES = ("wdt", "hard", "crash")


def decode(raw):
    """(crashes, window_start, safe_until) from RTC bytes; zeros when absent or corrupt."""
    if raw is None or len(raw) < SIZE:
        return 0, 0, 0
    magic, crashes, start, safe_until, crc = struct.unpack(_FMT, bytes(raw[:SIZE]))
    if magic != _MAGIC or crc != crc16(raw, 0, SIZE - 2):
        return 0, 0, 0
    return crashes, start, safe_until


def encode(crashes, start, safe_until):
    body = struct.pack("<HHII", _MAGIC, crashes & 0xFFFF, start, safe_until)
    return body + struct.pack("<H", crc16(body))


def judge(raw, cause, now, max_crashes, window_s, safe_s):
    """Decide at boot. Returns (safe_mode, record_to_store)."""
    crashes, start, safe_until = decode(raw)
    if safe_until and now < safe_until:
        return True, encode(crashes, start, safe_until)
    if cause in CRASH_CAUSES:
        if crashes == 0 or now - start > window_s or now < start:
            crashes, start = 1, now
        else:
            crashes += 1
        if crashes >= max_crashes:
            return True, encode(0, now, now + safe_s)
        return False, encode(crashes, start, 0)
    return False, encode(crashes, start, 0)
