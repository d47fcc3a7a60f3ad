# Stand-in for the ESP32 port's `machine` module on the virtual board (MicroPython unix port
# and CPython). All board state lives in `board`: the clock, RTC memory, reset cause, unique
# id, the devices on the I2C bus and the watchdog. Resets, deep sleep and a watchdog expiry
# raise BoardReset, which the runner catches to restart the firmware like the chip would.
# The watchdog is the ESP32's (machine_wdt.c): no deinit, a new WDT() only sets a new timeout,
# and it survives soft resets; `board.on_change` lets a runner publish it and RTC memory.
import errno

import vclock

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
# The names the runners and the supervisor use for reset causes (same words as laterne.hw).
CAUSE_BY_NAME = {"power_on": PWRON_RESET, "hard": HARD_RESET, "wdt": WDT_RESET,
                 "deep_sleep": DEEPSLEEP_RESET, "soft": SOFT_RESET}

TIMER_WAKE = 4   # esp_sleep_wakeup_cause_t ESP_SLEEP_WAKEUP_TIMER
RTC_MEMORY_SIZE = 2048
_STATE_VERSION = 2  # 1: without the watchdog
STATE_MAX = 18 + RTC_MEMORY_SIZE


class BoardReset(BaseException):
    """The chip resets (firmware `except Exception` must not swallow this)."""

    def __init__(self, cause, sleep_ms=None):
        super().__init__(cause, sleep_ms)
        self.cause = cause
        self.sleep_ms = sleep_ms


class VirtualBoard:
    def __init__(self):
        self.clock = None
        self.devices = {}
        self._hook = self._wdt_hook  # one bound method, so it can be found and removed
        self.on_change = None        # called after RTC memory or the watchdog changed
        self.power_on()

    # -- what survives what ----------------------------------------------------------------
    def power_on(self, uid=b"\x24\x0a\xc4\x00\x00\x01", clock=None):
        """Power applied: RTC memory cleared, RTC time as the (new) clock has it, cause
        PWRON. Without a clock a fresh one starts at 2000-01-01 (the RTC time is lost)."""
        if len(uid) != 6:
            raise ValueError("uid must be 6 bytes (the MAC)")
        self.uid = bytes(uid)
        self.rtc_memory = bytearray()
        self.reset_cause_value = PWRON_RESET
        self.wake_reason_value = 0
        self._use_clock(clock if clock is not None else vclock.VClock())
        self.wdt_timeout_ms = None
        self.timers = []
        for dev in self.devices.values():
            if hasattr(dev, "brownout"):
                dev.brownout()  # the sensor loses power too

    def after_reset(self, cause):
        """A reset that keeps RTC memory and RTC time (soft, WDT, deep-sleep, hard). Only a
        soft reset keeps the watchdog running: the chip stays up, the task watchdog with it."""
        self.reset_cause_value = cause
        self.wake_reason_value = TIMER_WAKE if cause == DEEPSLEEP_RESET else 0
        if cause != SOFT_RESET:
            self.wdt_timeout_ms = None
        self.timers = []  # no machine.Timer survives a reset (soft ones included)

    def wdt_left_ms(self):
        """Milliseconds until the watchdog fires, or None when it is not running."""
        if self.wdt_timeout_ms is None:
            return None
        clock = self.clock
        return self.wdt_timeout_ms - clock.ticks_diff(clock.ticks_ms(), self.wdt_fed_ms)

    def changed(self):
        if self.on_change is not None:
            self.on_change()

    def _use_clock(self, clock):
        if self.clock is not None and self._hook in self.clock.hooks:
            self.clock.hooks.remove(self._hook)
        self.clock = clock
        if self._hook not in clock.hooks:
            clock.hooks.append(self._hook)

    def state_bytes(self):
        """RTC memory, RTC time, pending reset cause and the watchdog, for a runner to carry
        across a process restart: version, cause, RTC microseconds (8 bytes), watchdog timeout
        and ms left (3 bytes each, 0: off), length, memory."""
        us = self.clock.time_ns() // 1000
        n = len(self.rtc_memory)
        left = self.wdt_left_ms()
        timeout, left = (0, 0) if left is None else (self.wdt_timeout_ms, max(left, 1))
        head = bytes((_STATE_VERSION, self.reset_cause_value)) + us.to_bytes(8, "little")
        head += timeout.to_bytes(3, "little") + left.to_bytes(3, "little")
        return head + n.to_bytes(2, "little") + bytes(self.rtc_memory)

    def load_state(self, data):
        """Restore state_bytes() (trailing padding allowed). The RTC never runs backwards
        across a reset: a clock the runner already moved past the saved time is kept."""
        if len(data) < 12 or data[0] not in (1, _STATE_VERSION):
            raise ValueError("not a virtual board state")
        at = 10 if data[0] == 1 else 16
        n = int.from_bytes(data[at:at + 2], "little")
        if len(data) < at + 2 + n or n > RTC_MEMORY_SIZE:
            raise ValueError("virtual board state truncated")
        self.reset_cause_value = data[1]
        us = int.from_bytes(data[2:10], "little")
        if self.clock.time_ns() // 1000 < us:
            self.clock.set_time(us // 1000000, us % 1000000)
        self.rtc_memory = bytearray(data[at + 2:at + 2 + n])
        timeout = int.from_bytes(data[10:13], "little") if at == 16 else 0
        if timeout:
            left = int.from_bytes(data[13:16], "little")
            self.wdt_timeout_ms = timeout
            self.wdt_fed_ms = self.clock.ticks_add(self.clock.ticks_ms(), left - timeout)

    # -- I2C devices -----------------------------------------------------------------------
    def attach(self, address, device):
        self.devices[address] = device

    def detach(self, address):
        self.devices.pop(address, None)

    def device(self, address):
        dev = self.devices.get(address)
        if dev is None:
            raise OSError(errno.ENODEV)  # no ACK, as the ESP32 port reports it
        return dev

    # -- watchdog --------------------------------------------------------------------------
    def _wdt_hook(self, clock):
        if self.wdt_timeout_ms is not None:
            if clock.ticks_diff(clock.ticks_ms(), self.wdt_fed_ms) > self.wdt_timeout_ms:
                self.wdt_timeout_ms = None
                raise BoardReset(WDT_RESET)
        if self.timers:  # (no list copy on every sleep of a board without timers)
            for timer in list(self.timers):
                timer._check(clock)


board = VirtualBoard()


# -- I2C --------------------------------------------------------------------------------------
class I2C:
    def __init__(self, id=0, scl=None, sda=None, freq=400000, timeout=50000):
        self.id = id
        self.scl = scl
        self.sda = sda
        self.freq = freq
        self.timeout = timeout

    def _bus_time(self, nbytes):
        # address + register + data bytes, 9 clocks each; virtual time only (jumping clock)
        clock = board.clock
        if clock.scale is None:
            clock.advance_us((nbytes + 2) * 9000000 // self.freq)

    def scan(self):
        return sorted(a for a in board.devices if 0x08 <= a <= 0x77)

    def readfrom_mem_into(self, addr, memaddr, buf, addrsize=8):
        self._bus_time(len(buf))
        board.device(addr).readfrom_mem_into(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, addrsize=8):
        self._bus_time(len(buf))
        board.device(addr).writeto_mem(memaddr, buf)

    def readfrom_into(self, addr, buf, stop=True):
        self._bus_time(len(buf) - 1)
        board.device(addr).readfrom_into(buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf)
        return bytes(buf)

    def writeto(self, addr, buf, stop=True):
        self._bus_time(len(buf) - 1)
        board.device(addr).writeto(buf)
        return len(buf)


class SoftI2C(I2C):
    def __init__(self, scl=None, sda=None, freq=400000, timeout=50000):
        I2C.__init__(self, -1, scl, sda, freq, timeout)


# -- pins -------------------------------------------------------------------------------------
class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        # an input with nothing driving it reads high (I2C lines have pull-ups)
        self._value = 1 if value is None else int(bool(value))

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self._value = int(bool(value))

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = int(bool(v))

    __call__ = value

    def on(self):
        self._value = 1

    def off(self):
        self._value = 0


# -- RTC ----------------------------------------------------------------------------------------
class RTC:
    def __init__(self, id=0):
        pass

    def memory(self, data=None):
        if data is None:
            return bytes(board.rtc_memory)
        if len(data) > RTC_MEMORY_SIZE:
            raise ValueError("buffer too long")
        board.rtc_memory = bytearray(data)
        board.changed()

    def datetime(self, dt=None):
        """(year, month, day, weekday 0=Mon, hours, minutes, seconds, microseconds)."""
        clock = board.clock
        if dt is None:
            ns = clock.time_ns()
            secs = ns // 1000000000
            tm = vclock.gmtime2000(secs)
            return (tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5],
                    (ns // 1000) % 1000000)
        secs = vclock.mktime2000((dt[0], dt[1], dt[2], dt[4], dt[5], dt[6]))
        sub = dt[7] if len(dt) > 7 else 0
        clock.set_time(secs, sub)

    def init(self, dt):
        self.datetime(dt)


# -- watchdog -----------------------------------------------------------------------------------
class WDT:
    """The one task watchdog: WDT() again sets its timeout and feeds it; it has no deinit."""

    def __init__(self, id=0, timeout=5000):
        if timeout < 1:
            raise ValueError("WDT timeout too short")
        board.wdt_timeout_ms = timeout
        self.feed()

    def feed(self):
        if board.wdt_timeout_ms is not None:
            board.wdt_fed_ms = board.clock.ticks_ms()
            board.changed()


# -- power and identity -------------------------------------------------------------------------
def reset():
    raise BoardReset(HARD_RESET)


def soft_reset():
    raise BoardReset(SOFT_RESET)


def deepsleep(ms=0):
    """The chip powers down; it restarts with DEEPSLEEP_RESET after `ms` (0: no timer).
    The runner plays the sleep: this only raises."""
    raise BoardReset(DEEPSLEEP_RESET, ms)


def lightsleep(ms=None):
    board.clock.sleep_ms(ms or 0)


def idle():
    board.clock.sleep_us(1000)


def reset_cause():
    return board.reset_cause_value


def wake_reason():
    return board.wake_reason_value


def unique_id():
    return board.uid


def freq(hz=None):
    if hz is None:
        return 160000000


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


# -- timers -------------------------------------------------------------------------------------
class Timer:
    """A hardware timer on the board clock. As on the ESP32 port the callback is not an
    interrupt: it runs when the firmware next gives the board time (here: a sleep), an
    exception in it is printed and dropped, and machine.reset() in it resets the board."""
    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id, **kwargs):
        self.id = id
        self._due = None
        if kwargs:
            self.init(**kwargs)

    def init(self, mode=PERIODIC, period=-1, callback=None):
        self.deinit()
        self._mode, self._period, self._callback = mode, period, callback
        self._due = board.clock.ticks_add(board.clock.ticks_ms(), period)
        board.timers.append(self)

    def deinit(self):
        if self in board.timers:
            board.timers.remove(self)

    def _check(self, clock):
        if clock.ticks_diff(clock.ticks_ms(), self._due) < 0:
            return
        if self._mode == Timer.ONE_SHOT:
            self.deinit()
        else:
            self._due = clock.ticks_add(self._due, self._period)
        if self._callback is not None:
            try:
                self._callback(self)
            except Exception as e:  # BoardReset (a reset) is no Exception: it goes through
                print("Timer callback failed:", repr(e))
