# Time on the node: the single place converting device epoch seconds to Unix seconds, the
# clock state of this boot (never synced / synced at), timestamps for new readings and their
# fix-up at publish time, and a small SNTP client over a plain UDP socket.
import socket
import struct

from laterne import flags, read_text, write_text

EPOCH_OFFSET = 946684800   # seconds from 1970-01-01 to 2000-01-01 (the ESP32 epoch)
CLOCK_VALID_AFTER = 1704067200  # 2024-01-01: an RTC earlier than this was never set
NTP_DELTA = 2208988800     # seconds from 1900-01-01 (NTP era 0) to 1970-01-01


def to_unix(device_value, device_epoch_year, per_second=1):
    """Device time (seconds, or `per_second` units) since 1 Jan of device_epoch_year -> Unix."""
    if device_epoch_year == 1970:
        return device_value
    if device_epoch_year == 2000:
        return device_value + EPOCH_OFFSET * per_second
    raise ValueError("unsupported device epoch %r" % (device_epoch_year,))


class ClockState:
    """What this boot knows about the time. Boot-relative time comes from ticks_ms (immune to
    the RTC being set), accumulated in whole seconds plus a millisecond remainder, so neither
    the 2**30 ms tick wrap nor 31-bit small ints matter over years of uptime as long as the
    state is consulted at least every few days (every sample and every loop pass does)."""

    def __init__(self, clock, boot, device_epoch=2000):
        self.clock = clock
        self.boot = boot
        self.device_epoch = device_epoch
        self._ticks = clock.ticks_ms()
        self._secs = 0            # whole seconds since this state was made (= since boot) ...
        self._ms = 0              # ... and the milliseconds beyond them
        self._sync_unix = None    # Unix seconds at the sync ...
        self._sync_secs = 0       # ... and _secs, _ms at that moment
        self._sync_ms = 0
        self.synced_at = None     # Unix seconds of the last sync, or None

    def _advance(self):
        now = self.clock.ticks_ms()
        ms = self._ms + self.clock.ticks_diff(now, self._ticks)
        self._ticks = now
        self._secs += ms // 1000
        self._ms = ms % 1000

    def elapsed_ms(self):
        self._advance()
        return self._secs * 1000 + self._ms

    def uptime_s(self):
        self._advance()
        return self._secs

    def phase_ms(self, period_s):
        """Milliseconds since the last multiple of period_s of boot-relative time."""
        self._advance()
        return self._secs % period_s * 1000 + self._ms

    def synced(self):
        return self._sync_unix is not None

    def mark_synced(self, unix=None, at=None):
        """The clock is known: `unix` is the current Unix time in seconds (int); None takes
        it from the device clock (an RTC that kept the time, e.g. across deep sleep). `at`:
        Unix time of the NTP answer it rests on (default: now)."""
        if unix is None:
            unix = to_unix(self.clock.time(), self.device_epoch)
        unix = int(unix)
        self._advance()
        self._sync_secs, self._sync_ms = self._secs, self._ms
        self._sync_unix = unix
        self.synced_at = unix if at is None else at

    def now_unix(self):
        """Current Unix seconds, or None when this boot has not learnt the time."""
        if self._sync_unix is None:
            return None
        self._advance()
        return self._sync_unix + self._secs - self._sync_secs + (self._ms - self._sync_ms) // 1000

    def stamp(self):
        """(ts, flags) for a reading taken now."""
        now = self.now_unix()
        if now is not None:
            return now, 0
        return self.uptime_s(), flags.TIME_RELATIVE

    def fix(self, ts, boot, rflags):
        """(ts or None, flags) for publication of a stored reading."""
        if not rflags & flags.TIME_RELATIVE:
            return ts, rflags
        if boot == self.boot and self._sync_unix is not None and 0 <= ts <= self.uptime_s():
            boot_unix = self._sync_unix - self._sync_secs
            return boot_unix + ts, (rflags & ~flags.TIME_RELATIVE) | flags.TIME_FIXED
        return None, rflags


FLOOR_FILE = "clock"  # Unix seconds the clock is known to have passed (text)


def load_floor(root):
    text = read_text(root + FLOOR_FILE, "")
    return int(text) if text.isdigit() else 0


def store_floor(root, unix):
    write_text(root + FLOOR_FILE, str(int(unix)))


def ntp_query(host, clock, timeout_ms, port=123):
    """Ask one SNTP server; returns Unix seconds (int). Raises OSError on timeout or a reply
    that is not a usable server answer."""
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
    if not ai:
        raise OSError("cannot resolve %s" % host)
    family, _, _, _, addr = ai[0][:5]
    req = bytearray(48)
    req[0] = 0x23  # LI 0, version 4, mode 3 (client)
    # a random-looking transmit timestamp we expect echoed back as the originate timestamp
    tag = clock.ticks_us() & 0xFFFFFFFF
    struct.pack_into("!I", req, 44, tag)
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        start = clock.ticks_ms()
        s.settimeout(timeout_ms / 1000)
        s.connect(addr)
        s.send(req)
        while True:
            left = timeout_ms - clock.ticks_diff(clock.ticks_ms(), start)
            if left <= 0:
                raise OSError("ntp %s: no answer within %d ms" % (host, timeout_ms))
            s.settimeout(left / 1000)
            try:
                data = s.recv(64)
            except OSError as e:  # timeout, or ICMP port unreachable
                raise OSError("ntp %s: no answer within %d ms (%s)" % (host, timeout_ms, e))
            if len(data) < 48:
                continue
            mode = data[0] & 7
            stratum = data[1]
            if mode != 4 or struct.unpack_from("!I", data, 28)[0] != tag:
                continue  # not the answer to our question
            if stratum == 0 or stratum > 15 or data[0] >> 6 == 3:
                raise OSError("ntp %s: server not synchronised (stratum %d)" % (host, stratum))
            secs, frac = struct.unpack_from("!II", data, 40)
            if secs == 0:
                raise OSError("ntp %s: empty transmit timestamp" % host)
            # NTP era 0 ends in 2036; later timestamps have wrapped (RFC 4330 section 3)
            unix = secs - NTP_DELTA if secs >= 0x80000000 else secs + 0x100000000 - NTP_DELTA
            return unix + (1 if frac >= 0x80000000 else 0)
    finally:
        s.close()
