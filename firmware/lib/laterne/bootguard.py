# Boot-loop detection. A small checksummed record in RTC memory counts crash resets
# (watchdog, panic, reset after an unhandled exception) inside a time window. A brownout
# resets the chip as power_on and clears RTC memory, so brownout loops are counted in a tiny
# file on flash instead: power-on boots that ended before they were stable, in a row. It is
# written twice per power-on boot at most (flash wear), never on other boots; the config is
# never touched.
import struct

from laterne import read_text, write_text
from laterne.spoolrec import crc16

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


BROWNOUT_FILE = "brownout"  # "<short power-on boots in a row> <loops not yet reported>"


def _load_brownout(root):
    try:
        short, loops = read_text(root + BROWNOUT_FILE, "0 0").split()
        return int(short), int(loops)
    except ValueError:
        return 0, 0


def _store_brownout(root, short, loops):
    write_text(root + BROWNOUT_FILE, "%d %d" % (short, loops))


def count_power_on(root, limit):
    """A power-on boot. True when it is the `limit`-th in a row whose predecessors all ended
    before they were stable: a brownout loop (the count then starts again)."""
    short, loops = _load_brownout(root)
    short += 1
    if short >= limit:
        short, loops = 0, loops + 1
    _store_brownout(root, short, loops)
    return short == 0


def power_on_stable(root):
    short, loops = _load_brownout(root)
    if short:
        _store_brownout(root, 0, loops)


def brownout_loops(root, reported=False):
    """Brownout loops not yet reported; with reported=True, forget them."""
    short, loops = _load_brownout(root)
    if reported and loops:
        _store_brownout(root, short, 0)
    return loops
