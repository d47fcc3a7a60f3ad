# The ESP32 adapter: everything the core needs from the chip, in one object. Board pins come
# from /board.json (copied from boards/ at provisioning), never from code. The clock is the
# `time` module on the chip; tests pass the virtual board's clock.
import gc
import json
import random
import struct
import time

import machine
import network

from laterne import bootguard, timebase

CAUSES = {
    machine.PWRON_RESET: "power_on", machine.HARD_RESET: "hard", machine.WDT_RESET: "wdt",
    machine.DEEPSLEEP_RESET: "deep_sleep", machine.SOFT_RESET: "soft",
}
RTC_BOOT = 0                      # RTC memory layout: boot guard record ...
RTC_CLOCK = 16                    # ... device time of the last NTP sync (the clock is known) ...
RTC_BACKOFF = 22                  # ... reconnect backoff across deep sleeps ...
RTC_UPLOAD = 32                   # ... device time of the last upload (deep sleep) ...
RTC_CRASH = 48                    # ... what the next reset is: CRASHED or AT_REPL ...
RTC_SPOOL = 64                    # ... and the rest for the spool's optional fast path
RTC_SIZE = 2048
CRASHED = b"\x01"                 # the crash handler resets: the next boot counts a crash
AT_REPL = b"\x02"                 # a person or tool holds the REPL: a watchdog reset is no crash
FLOOR_STEP_S = 86400              # the clock floor on flash is raised at most once a day
RADIO_SETTLE_MS = 10000           # a boot alive this long after joining Wi-Fi was no brownout


class RtcRegion:
    """A slice of RTC user memory with read()/write(), as the spool and boot guard want.
    The slice starts with the length of what was last written, so read() returns exactly
    that (RTC memory has no file sizes, and stale bytes must not look like data)."""

    def __init__(self, rtc, offset, size):
        self.rtc, self.offset, self.size = rtc, offset, size

    def read(self):
        mem = self.rtc.memory()
        o = self.offset
        if len(mem) < o + 2:
            return b""
        n = mem[o] | mem[o + 1] << 8
        if n > self.size - 2 or len(mem) < o + 2 + n:
            return b""  # never written, or not by us
        return bytes(mem[o + 2:o + 2 + n])

    def write(self, data):
        if len(data) > self.size - 2:
            raise ValueError("RTC region of %d bytes cannot hold %d" % (self.size, len(data)))
        mem = bytearray(self.rtc.memory())
        end = self.offset + 2 + len(data)
        if len(mem) < end:
            mem.extend(bytes(end - len(mem)))
        mem[self.offset] = len(data) & 0xFF
        mem[self.offset + 1] = len(data) >> 8
        mem[self.offset + 2:end] = data
        self.rtc.memory(mem)


class Wifi:
    def __init__(self, clock=time):
        self.wlan = network.WLAN(network.STA_IF)
        self.clock = clock
        self.before_start = None  # called once before the radio starts (brownout watch)
        self.ended = None         # ticks_ms when the last connect() ended

    def connect(self, networks, static_ip, timeout_ms, feed=None, budget_ms=None):
        """Join the first network that answers; each gets timeout_ms, all of them together
        at most budget_ms. Raises OSError naming the last failure."""
        wlan = self.wlan
        clock = self.clock
        if self.before_start is not None:
            self.before_start()
        try:
            self._join(networks, static_ip, timeout_ms, feed, budget_ms)
        finally:
            self.ended = clock.ticks_ms()

    def _join(self, networks, static_ip, timeout_ms, feed, budget_ms):
        wlan = self.wlan
        clock = self.clock
        wlan.active(True)
        if static_ip:
            wlan.ifconfig((static_ip["ip"], static_ip["netmask"], static_ip["gateway"],
                           static_ip["dns"]))
        last = "no network configured"
        begin = clock.ticks_ms()
        for net in networks:
            left = timeout_ms
            if budget_ms is not None:
                left = min(left, budget_ms - clock.ticks_diff(clock.ticks_ms(), begin))
                if left < 1000:
                    last += "; connect time used up"
                    break
            # Until this attempt's first event the ESP32 still reports the previous one's
            # failure (network_wlan.c): only a failure that differs from it ends the wait early.
            stale = wlan.status()
            wlan.connect(net["ssid"], net["password"])
            start = clock.ticks_ms()
            while not wlan.isconnected():
                status = wlan.status()
                if status != stale and status not in (
                        network.STAT_CONNECTING, network.STAT_GOT_IP, network.STAT_IDLE):
                    break
                if clock.ticks_diff(clock.ticks_ms(), start) > left:
                    break
                clock.sleep_ms(100)
            if wlan.isconnected():
                return
            last = "wifi %r: status %s" % (net["ssid"], wlan.status())
            wlan.disconnect()
            if feed is not None:
                feed()
        raise OSError(last)

    def isconnected(self):
        return self.wlan.isconnected()

    def rssi(self):
        try:
            return self.wlan.status("rssi")
        except Exception:
            return None

    def off(self):
        self.wlan.active(False)


class I2CBus:
    """The board's I2C bus, able to free a stuck SDA (clock SCL until the slave lets go)."""

    def __init__(self, spec, clock=time):
        self.spec = spec
        self.clock = clock
        self.bus = None
        self.open()

    def open(self):
        s = self.spec
        self.bus = machine.I2C(s["id"], sda=machine.Pin(s["sda"]), scl=machine.Pin(s["scl"]),
                               freq=s["freq"])
        for name in ("scan", "readfrom_mem", "readfrom_mem_into", "writeto_mem", "readfrom",
                     "readfrom_into", "writeto"):
            setattr(self, name, getattr(self.bus, name))

    def recover(self):
        s = self.spec
        scl = machine.Pin(s["scl"], machine.Pin.OPEN_DRAIN, value=1)
        sda = machine.Pin(s["sda"], machine.Pin.IN)
        for _ in range(9):
            if sda.value():
                break
            scl.value(0)
            self.clock.sleep_us(5)
            scl.value(1)
            self.clock.sleep_us(5)
        self.open()


class Platform:
    def __init__(self, root="", clock=time):
        self.root = root
        self.clock = clock
        self.epoch = clock.gmtime(0)[0]  # 2000 on the ESP32, 1970 on the unix port
        self.rtc = machine.RTC()
        self.cause = CAUSES.get(machine.reset_cause(), "unknown")
        self.uid = bytes(machine.unique_id())
        self.wifi = Wifi(clock)
        self.wdt = None
        self.board = self._load_board()
        self.i2c = None
        self.radio_pending = False     # this power-on boot's radio started and has not settled
        self.floor = None              # the clock floor on flash (Unix seconds), once read
        # every byte of the id counts: seed() keeps only a machine word, and the first bytes
        # of a MAC (the vendor's) are the same across the fleet
        seed = 0
        for b in self.uid:
            seed = (seed * 31 + b) & 0x3FFFFFFF
        # the RTC too: deep-sleep wakes boot alike, the same ticks_us every time
        random.seed(seed ^ clock.ticks_us() ^ clock.time() & 0x3FFFFFFF)
        random.random()  # MicroPython's first number after seed() hardly depends on the seed
        self.random = random.random

    def _load_board(self):
        try:
            with open(self.root + "board.json") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    # -- identity and health -----------------------------------------------------------------
    def mac(self):
        return "".join("%02x" % b for b in self.uid)

    def reset_cause(self):
        return self.cause

    def free_heap(self):
        gc.collect()
        return gc.mem_free()

    def arm_watchdog(self, timeout_ms):
        # a WDT armed earlier (a REPL lease) is the same one, set to the new timeout
        self.wdt = machine.WDT(timeout=timeout_ms)

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def reset(self):
        machine.reset()

    def deepsleep(self, ms):
        machine.deepsleep(max(int(ms), 1))

    # -- time: device seconds <-> Unix seconds happens in laterne.timebase only ---------------
    def clock_known(self):
        """True when NTP set the RTC since power-on (RTC memory says so; a floor does not)."""
        return (self.last_sync_unix() is not None
                and self.time_unix() >= timebase.CLOCK_VALID_AFTER)

    def last_sync_unix(self):
        raw = RtcRegion(self.rtc, RTC_CLOCK, 6).read()
        if len(raw) != 4:
            return None
        return timebase.to_unix(struct.unpack("<I", raw)[0], self.epoch)

    def time_unix(self):
        return timebase.to_unix(self.clock.time(), self.epoch)

    def time_unix_ms(self):
        return timebase.to_unix(self.clock.time_ns() // 1000000, self.epoch, 1000)

    def _set_rtc(self, unix):
        device = unix - timebase.to_unix(0, self.epoch)
        tm = self.clock.gmtime(device)
        self.rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
        return device

    def set_time_unix(self, unix):
        """NTP answered: set the RTC, remember the sync, raise the clock floor."""
        RtcRegion(self.rtc, RTC_CLOCK, 6).write(struct.pack("<I", self._set_rtc(unix)))
        self.keep_clock_floor()

    def apply_clock_floor(self):
        """After a power-on the RTC reads 2000 and mbedtls would find every certificate not
        yet valid: move the RTC up to the last time known on flash. The clock stays unknown
        (readings keep their boot-relative time) until NTP answers. Returns the floor."""
        floor = self._clock_floor()
        if floor and not self.clock_known() and self.time_unix() < floor:
            self._set_rtc(floor)
        return floor

    def keep_clock_floor(self):
        """Raise the floor on flash to the RTC, at most once a day (flash wear)."""
        now = self.time_unix()
        if now >= timebase.CLOCK_VALID_AFTER and now >= self._clock_floor() + FLOOR_STEP_S:
            timebase.store_floor(self.root, now)
            self.floor = now

    def _clock_floor(self):
        if self.floor is None:
            self.floor = timebase.load_floor(self.root)
        return self.floor

    # -- RTC memory ----------------------------------------------------------------------------
    def note_crash(self):
        """Called by the crash handler just before it resets: the next boot counts one crash."""
        RtcRegion(self.rtc, RTC_CRASH, 3).write(CRASHED)

    def boot_guard(self, max_crashes, window_s, safe_s, forgive=False):
        """Safe mode or not: None, "crash loop" or "brownout loop". forgive: the reset belongs
        to an update (its switch or its failed trial), which the loader handles itself."""
        flag = RtcRegion(self.rtc, RTC_CRASH, 3)
        mark = flag.read()
        if mark:
            flag.write(b"")
        region = RtcRegion(self.rtc, RTC_BOOT, bootguard.SIZE + 2)
        cause = "crash" if mark == CRASHED else "repl" if mark == AT_REPL else self.cause
        if forgive:
            cause = "update"
        now = self.clock.time()
        safe, record = bootguard.judge(region.read(), cause, now, max_crashes, window_s, safe_s)
        reason = "crash loop" if safe else None
        if self.cause == "power_on" and not safe:
            # a brownout resets as power_on and clears RTC memory: count on flash instead
            self.wifi.before_start = self._radio_starting
            if bootguard.count_power_on(self.root, max_crashes):
                safe, record, reason = True, bootguard.encode(0, now, now + safe_s), "brownout loop"
        region.write(record)
        return reason

    def _radio_starting(self):
        self.wifi.before_start = None
        bootguard.radio_starting(self.root, True)
        self.radio_pending = True

    def boot_stable(self, sleeping=False):
        """Called often: once the radio of a power-on boot has been up (or tried) for
        RADIO_SETTLE_MS, or when it goes to deep sleep, this boot was no brownout."""
        w = self.wifi
        if self.radio_pending and (sleeping or w.ended is not None and self.clock.ticks_diff(
                self.clock.ticks_ms(), w.ended) >= RADIO_SETTLE_MS):
            self.radio_pending = False
            bootguard.radio_starting(self.root, False)

    def brownout_loops(self):
        return bootguard.brownout_loops(self.root)

    def brownouts_reported(self):
        bootguard.brownout_loops(self.root, reported=True)

    def rtc_spool(self):
        return RtcRegion(self.rtc, RTC_SPOOL, RTC_SIZE - RTC_SPOOL)

    def upload_due(self, interval_s):
        raw = RtcRegion(self.rtc, RTC_UPLOAD, 6).read()
        now = self.clock.time()
        if self.cause != "deep_sleep" or len(raw) < 4:
            return True
        last = struct.unpack("<I", raw)[0]
        return now - last >= interval_s or now < last

    def mark_uploaded(self):
        RtcRegion(self.rtc, RTC_UPLOAD, 6).write(struct.pack("<I", self.clock.time()))

    def load_backoff(self):
        """(failed attempts, device time before which no attempt is made) kept across deep
        sleep, so a city's nodes do not all retry on the same aligned wake."""
        raw = RtcRegion(self.rtc, RTC_BACKOFF, 8).read()
        if len(raw) != 5:
            return 0, 0
        return struct.unpack("<BI", raw)

    def save_backoff(self, attempts, retry_after):
        if (attempts, retry_after) != self.load_backoff():
            RtcRegion(self.rtc, RTC_BACKOFF, 8).write(struct.pack("<BI", min(attempts, 255),
                                                                  retry_after))

    # -- sensor --------------------------------------------------------------------------------
    def sensor(self, scfg):
        """The BME280 on the board's bus; its errors are reported by the driver's state."""
        from laterne.bme280 import BME280
        if self.board is None:
            raise OSError("board.json missing: run `laterne configure`")
        if self.i2c is None:
            self.i2c = I2CBus(self.board["i2c"], self.clock)
        address = scfg["address"] or self.board.get("bme280_address")
        sensor = BME280(self.i2c, address=address, clock=self.clock, osrs_t=scfg["osrs_t"], osrs_p=scfg["osrs_p"],
                        osrs_h=scfg["osrs_h"], iir=scfg["iir"],
                        temp_offset=scfg["temp_offset_centi"], humidity=scfg["model"] != "bmp280")
        try:
            sensor.init()
        except Exception as e:  # reported through sensor.state; read() tries again
            print("sensor:", e)
        return sensor

    def led(self, on):
        spec = self.board and self.board.get("led")
        if spec:
            machine.Pin(spec["pin"], machine.Pin.OUT).value(bool(on) != bool(spec["active_low"]))

