# Virtual clock with the subset of MicroPython's `time` API the firmware uses.
# ESP32 semantics: time() counts seconds since 2000-01-01 UTC. Virtual time either jumps
# (scale=None: sleep returns at once, ideal for tests) or runs `scale` times faster than the
# host clock (simulated fleets). Hooks run on every sleep (the watchdog uses this).
import time as _host

try:
    _host_us = _host.ticks_us  # MicroPython
    _host_diff = _host.ticks_diff
except AttributeError:  # CPython
    def _host_us():
        return int(_host.monotonic() * 1000000)

    def _host_diff(a, b):
        return a - b

TICKS_PERIOD = 1 << 30
_TICKS_HALF = TICKS_PERIOD >> 1
EPOCH_2000_UNIX = 946684800


class VClock:
    def __init__(self, scale=None, time2000=0, uptime_us=0):
        self.scale = scale
        self._virtual_us = uptime_us  # virtual microseconds since power-on
        self._host_base = _host_us()
        self._rtc_offset = time2000 * 1000000 - uptime_us  # time2000 = (offset + now_us) / 1e6
        self.hooks = []

    # -- core --------------------------------------------------------------------------------
    def now_us(self):
        if self.scale is None:
            return self._virtual_us
        return self._virtual_us + int(_host_diff(_host_us(), self._host_base) * self.scale)

    def advance_us(self, us):
        """Let `us` virtual microseconds pass (really sleeping when scaled)."""
        if us > 0:
            if self.scale is not None:
                _host.sleep(us / 1000000 / self.scale)
            else:
                self._virtual_us += us
        for hook in self.hooks:
            hook(self)

    def set_time(self, time2000, us=0):
        """Set the wall clock (RTC) to `time2000` ESP32 epoch seconds plus `us` microseconds
        (integers: exact on a 32-bit port, whose floats are single precision)."""
        self._rtc_offset = int(time2000) * 1000000 + int(us) - self.now_us()

    # -- MicroPython time API ----------------------------------------------------------------
    def ticks_us(self):
        return self.now_us() % TICKS_PERIOD

    def ticks_ms(self):
        return (self.now_us() // 1000) % TICKS_PERIOD

    def ticks_cpu(self):
        return self.ticks_us()

    def ticks_add(self, t, delta):
        # as the ESP32 (extmod/modtime.c): ticks_diff could not give the interval back
        if not -_TICKS_HALF < delta < _TICKS_HALF:
            raise OverflowError("ticks interval overflow")
        return (t + delta) % TICKS_PERIOD

    def ticks_diff(self, a, b):
        return ((a - b + _TICKS_HALF) % TICKS_PERIOD) - _TICKS_HALF

    def sleep_us(self, us):
        self.advance_us(int(us))

    def sleep_ms(self, ms):
        self.advance_us(int(ms) * 1000)

    def sleep(self, s):
        self.advance_us(int(s * 1000000))

    def time(self):
        return (self._rtc_offset + self.now_us()) // 1000000

    def time_ns(self):
        return (self._rtc_offset + self.now_us()) * 1000

    def gmtime(self, secs=None):
        if secs is None:
            secs = self.time()
        return gmtime2000(secs)

    localtime = gmtime

    def mktime(self, tm):
        return mktime2000(tm)


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468  # days since 1970-01-01


_DAYS_1970_TO_2000 = 10957


def gmtime2000(secs):
    """(year, month, mday, hour, minute, second, weekday 0=Mon, yearday 1..366) like the ESP32."""
    days, rem = divmod(int(secs), 86400)
    z = days + _DAYS_1970_TO_2000 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (m <= 2)
    yday = _days_from_civil(y, m, d) - _days_from_civil(y, 1, 1) + 1
    wday = (days + 5) % 7  # 2000-01-01 was a Saturday
    return (y, m, d, rem // 3600, rem % 3600 // 60, rem % 60, wday, yday)


def mktime2000(tm):
    days = _days_from_civil(tm[0], tm[1], tm[2]) - _DAYS_1970_TO_2000
    return days * 86400 + tm[3] * 3600 + tm[4] * 60 + tm[5]
