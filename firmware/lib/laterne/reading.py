# A reading: its fields in their one order, and its 20-byte record on flash.
#   (seq, ts, t, p, h, flags, boot)   what the spool returns, oldest first
#   (ts, t, p, h, flags, boot)        what the spool takes (it gives the seq)
#   [seq, ts, t, p, h, flags]         a row on the wire (docs/mqtt.md): the first six fields
# The sensor's (t, p, h, flags) is the same order. Units: docs/DEVELOPING.md.
# Record (little-endian): seq u32 | ts u32 | boot u16 | flags u16 | t s16 | p<<14|h u32 |
# crc16 over the 18 bytes. p takes 17 bits (0..131071 Pa), h 14 bits (0..16383). Out-of-range
# values are clamped and flagged IMPLAUSIBLE instead of refused: a bad sensor value must never
# cost a reading. A record of all 0xFF is a hole (a position that never held a reading).
import struct

from laterne import flags as _flags

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

FIELDS = ("seq", "ts", "t", "p", "h", "flags", "boot")
SIZE = const(20)
# where each field sits in a record (p and h share the u32 at PH)
AT_SEQ = const(0)
AT_TS = const(4)
AT_BOOT = const(8)
AT_FLAGS = const(10)
AT_T = const(12)
AT_PH = const(14)
HOLE_SEQ = 0xFFFFFFFF
_BODY = "<IIHHhI"
_FULL = "<IIHHhIH"


def _table():
    t = bytearray(512)  # CRC-16/CCITT-FALSE per byte value, big-endian pairs
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t[2 * i] = (c >> 8) & 0xFF
        t[2 * i + 1] = c & 0xFF
    return t


_T = _table()


def crc16(buf, start=0, end=None, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of buf[start:end] (all small ints: no heap use on MicroPython)."""
    if end is None:
        end = len(buf)
    t = _T
    for i in range(start, end):
        k = (((crc >> 8) ^ buf[i]) & 0xFF) << 1
        crc = ((crc << 8) & 0xFFFF) ^ (t[k] << 8 | t[k + 1])
    return crc


def _clamp(v, lo, hi):
    if v < lo:
        return lo, True
    if v > hi:
        return hi, True
    return v, False


def pack_into(buf, off, seq, reading):
    """Encode reading (ts, t, p, h, flags, boot) with seq at buf[off:off+SIZE].
    Raises ValueError for a malformed tuple (a programming error, not sensor data)."""
    try:
        ts, t, p, h, fl, boot = reading
        ts = int(ts)
        boot = int(boot) & 0xFFFF  # the boot counter wraps by definition
        fl = int(fl) & 0xFFFF
        t, p, h = int(t), int(p), int(h)
    except (TypeError, ValueError):
        raise ValueError("reading must be (ts, t, p, h, flags, boot) of ints")
    ts, a = _clamp(ts, 0, 0xFFFFFFFF)
    t, b = _clamp(t, -32768, 32767)
    p, c = _clamp(p, 0, 0x1FFFF)
    h, d = _clamp(h, 0, 0x3FFF)
    if a or b or c or d:
        fl |= _flags.IMPLAUSIBLE
    struct.pack_into(_BODY, buf, off, seq, ts, boot, fl, t, (p << 14) | h)
    struct.pack_into("<H", buf, off + 18, crc16(buf, off, off + 18))


def check(buf, off):
    """Classify the record at buf[off]: its seq if valid, -1 if a hole, -2 if corrupt."""
    if crc16(buf, off, off + 18) == buf[off + 18] | (buf[off + 19] << 8):
        # by hand, not struct: no tuple per record (seqs stay below 2**30 for 2,000 years)
        seq = buf[off] | buf[off + 1] << 8 | buf[off + 2] << 16 | buf[off + 3] << 24
        return -1 if seq == HOLE_SEQ else seq
    for i in range(off, off + SIZE):
        if buf[i] != 0xFF:
            return -2
    return -1


def unpack(buf, off):
    """(seq, ts, t, p, h, flags, boot) of a record already known to be valid."""
    seq, ts, boot, fl, t, ph, _ = struct.unpack_from(_FULL, buf, off)
    return (seq, ts, t, ph >> 14, ph & 0x3FFF, fl, boot)


def fill_holes(buf, start=0, end=None):
    if end is None:
        end = len(buf)
    for i in range(start, end):
        buf[i] = 0xFF
