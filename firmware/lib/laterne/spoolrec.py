# Spool record codec: one reading as a 20-byte little-endian record with its own CRC.
#   seq u32 | ts u32 | boot u16 | flags u16 | t s16 | p<<14|h u32 | crc16 (over the 18 bytes)
# p takes 17 bits (0..131071 Pa), h 14 bits (0..16383). Out-of-range values are clamped and
# flagged IMPLAUSIBLE instead of refused: a bad sensor value must never cost a reading.
# A record of all 0xFF is a hole (a position that never held a reading), not a corrupt one.
import struct

from laterne import flags as _flags

SIZE = 20
HOLE_SEQ = 0xFFFFFFFF
_BODY = "<IIHHhI"
_FULL = "<IIHHhIH"
_IMPLAUSIBLE = _flags.IMPLAUSIBLE


def _table():
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return t


_T = _table()


def crc16(buf, start=0, end=None, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of buf[start:end] (all small ints: no heap use on MicroPython)."""
    if end is None:
        end = len(buf)
    t = _T
    for i in range(start, end):
        crc = ((crc << 8) & 0xFFFF) ^ t[((crc >> 8) ^ buf[i]) & 0xFF]
    return crc


def _clamp(v, lo, hi):
    if v < lo:
        return lo, True
    if v > hi:
        return hi, True
    return v, False


def pack_into(buf, off, seq, reading):
    """Encode reading (ts, boot, flags, t, p, h) with seq at buf[off:off+SIZE].
    Raises ValueError for a malformed tuple (a programming error, not sensor data)."""
    try:
        ts, boot, fl, t, p, h = reading
        ts = int(ts)
        boot = int(boot) & 0xFFFF  # the boot counter wraps by definition
        fl = int(fl) & 0xFFFF
        t, p, h = int(t), int(p), int(h)
    except (TypeError, ValueError):
        raise ValueError("reading must be (ts, boot, flags, t, p, h) of ints")
    ts, a = _clamp(ts, 0, 0xFFFFFFFF)
    t, b = _clamp(t, -32768, 32767)
    p, c = _clamp(p, 0, 0x1FFFF)
    h, d = _clamp(h, 0, 0x3FFF)
    if a or b or c or d:
        fl |= _IMPLAUSIBLE
    struct.pack_into(_BODY, buf, off, seq, ts, boot, fl, t, (p << 14) | h)
    struct.pack_into("<H", buf, off + 18, crc16(buf, off, off + 18))


def check(buf, off):
    """Classify the record at buf[off]: its seq if valid, -1 if a hole, -2 if corrupt."""
    if crc16(buf, off, off + 18) == buf[off + 18] | (buf[off + 19] << 8):
        seq = struct.unpack_from("<I", buf, off)[0]
        return -1 if seq == HOLE_SEQ else seq
    for i in range(off, off + SIZE):
        if buf[i] != 0xFF:
            return -2
    return -1


def unpack(buf, off):
    """(seq, ts, boot, flags, t, p, h) of a record already known to be valid."""
    seq, ts, boot, fl, t, ph, _ = struct.unpack_from(_FULL, buf, off)
    return (seq, ts, boot, fl, t, ph >> 14, ph & 0x3FFF)


def fill_holes(buf, start=0, end=None):
    if end is None:
        end = len(buf)
    for i in range(start, end):
        buf[i] = 0xFF


# The spool state (written alternately to two files): generation, released-through seq
# (acked or dropped), dropped count, and two seq reservations that next_seq never goes
# below: one for a bulk write in progress, one for the readings held in RTC memory.
STATE_SIZE = 22


def pack_state(gen, floor, dropped, reserve, rtc_reserve):
    b = bytearray(STATE_SIZE)
    struct.pack_into("<IIIII", b, 0, gen, floor, dropped, reserve, rtc_reserve)
    struct.pack_into("<H", b, 20, crc16(b, 0, 20))
    return b


def unpack_state(b):
    """(gen, floor, dropped, reserve, rtc_reserve) or None if the bytes are not a state."""
    if len(b) != STATE_SIZE or crc16(b, 0, 20) != b[20] | (b[21] << 8):
        return None
    return struct.unpack_from("<IIIII", b, 0)
