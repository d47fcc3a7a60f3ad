# Boot-loop detection. A small checksummed record in RTC memory counts crash resets
# (watchdog, panic, reset after an unhandled exception) inside a time window. A brownout
# (a weak supply when Wi-Fi starts) resets the chip as power_on and clears RTC memory, so
# brownout loops are counted in a tiny file on flash instead: power-on boots in a row that
# died while their radio was starting. Power cut at any other moment (a lamp switched off, a
# flicker) does not count. The file is written about twice per power-on boot (radio starting,
# radio settled), never on other boots; the config is never touched.
import struct

from laterne import read_text, write_text
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


BROWNOUT_FILE = "brownout"  # "<boots that died starting the radio, in a row> <loops not yet
#                             reported> <1 while this power-on boot's radio is starting>"


def _load_brownout(root):
    try:
        short, loops, starting = read_text(root + BROWNOUT_FILE, "0 0 0").split()
        return int(short), int(loops), int(starting)
    except ValueError:
        return 0, 0, 0


def _store_brownout(root, record):
    write_text(root + BROWNOUT_FILE, "%d %d %d" % record)


def count_power_on(root, limit):
    """A power-on boot. True when the last `limit` boots in a row all died while their radio
    was starting: a brownout loop (the count then starts again)."""
    short, loops, starting = old = _load_brownout(root)
    short = short + 1 if starting else 0
    looped = short >= limit
    if looped:
        short, loops = 0, loops + 1
    if (short, loops, 0) != old:
        _store_brownout(root, (short, loops, 0))
    return looped


def radio_starting(root, starting):
    """The radio of a power-on boot starts (True), or started and the boot lived on (False)."""
    short, loops, _ = _load_brownout(root)
    _store_brownout(root, (0 if not starting else short, loops, 1 if starting else 0))


def brownout_loops(root, reported=False):
    """Brownout loops not yet reported; with reported=True, forget them."""
    short, loops, starting = _load_brownout(root)
    if reported and loops:
        _store_brownout(root, (short, 0, starting))
    return loops
