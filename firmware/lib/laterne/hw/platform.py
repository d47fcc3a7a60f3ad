# The ESP32 adapter: everything the core needs from the chip, in one object. Board pins come
# from /board.json (copied from boards/ at provisioning), never from code.
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
DEVICE_EPOCH = time.gmtime(0)[0]  # 2000 on the ESP32, 1970 on the unix port
CLOCK_VALID_AFTER = 1704067200    # 2024-01-01: an RTC earlier than this was never set
RTC_BOOT = 0                      # RTC memory layout: boot guard record ...
RTC_UPLOAD = 32                   # ... device time of the last upload (deep sleep) ...
RTC_CRASH = 48                    # ... "the reset that follows is a crash" flag ...
RTC_SPOOL = 64                    # ... and the rest for the spool's optional fast path
RTC_SIZE = 2048


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
    def __init__(self):
        self.wlan = network.WLAN(network.STA_IF)

    def connect(self, networks, static_ip, timeout_ms):
        wlan = self.wlan
        wlan.active(True)
        if static_ip:
            wlan.ifconfig((static_ip["ip"], static_ip["netmask"], static_ip["gateway"],
                           static_ip["dns"]))
        last = "no network configured"
        for net in networks:
            wlan.connect(net["ssid"], net["password"])
            start = time.ticks_ms()
            while not wlan.isconnected():
                status = wlan.status()
                if status not in (network.STAT_CONNECTING, network.STAT_GOT_IP, network.STAT_IDLE):
                    break
                if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
                    break
                time.sleep_ms(100)
            if wlan.isconnected():
                return
            last = "wifi %r: status %s" % (net["ssid"], wlan.status())
            wlan.disconnect()
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

    def __init__(self, spec):
        self.spec = spec
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
            time.sleep_us(5)
            scl.value(1)
            time.sleep_us(5)
        self.open()


class Platform:
    clock = time

    def __init__(self, root=""):
        self.root = root
        self.rtc = machine.RTC()
        self.cause = CAUSES.get(machine.reset_cause(), "unknown")
        self.uid = bytes(machine.unique_id())
        self.wifi = Wifi()
        self.wdt = None
        self.board = self._load_board()
        self.i2c = None
        random.seed(int.from_bytes(self.uid, "little") ^ time.ticks_us())
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
        return self.time_unix() >= CLOCK_VALID_AFTER

    def time_unix(self):
        return timebase.to_unix(time.time(), DEVICE_EPOCH)

    def time_unix_ms(self):
        return timebase.to_unix(time.time_ns() // 1000000, DEVICE_EPOCH, 1000)

    def set_time_unix(self, unix):
        device = unix - timebase.to_unix(0, DEVICE_EPOCH)
        tm = time.gmtime(device)
        self.rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))

    # -- RTC memory ----------------------------------------------------------------------------
    def note_crash(self):
        """Called by the crash handler just before it resets: the next boot counts one crash."""
        RtcRegion(self.rtc, RTC_CRASH, 3).write(b"\x01")

    def boot_guard(self, max_crashes, window_s, safe_s, forgive=False):
        flag = RtcRegion(self.rtc, RTC_CRASH, 3)
        crashed = flag.read() == b"\x01"
        if crashed:
            flag.write(b"")
        region = RtcRegion(self.rtc, RTC_BOOT, bootguard.SIZE + 2)
        cause = "crash" if crashed else self.cause
        if forgive:  # an update's switch or failed trial: the loader handles it, no safe mode
            cause = "update"
        safe, record = bootguard.judge(region.read(), cause, time.time(), max_crashes,
                                       window_s, safe_s)
        region.write(record)
        return safe

    def rtc_spool(self):
        return RtcRegion(self.rtc, RTC_SPOOL, RTC_SIZE - RTC_SPOOL)

    def upload_due(self, interval_s):
        raw = RtcRegion(self.rtc, RTC_UPLOAD, 6).read()
        if self.cause != "deep_sleep" or len(raw) < 4:
            return True
        last = struct.unpack("<I", raw)[0]
        return time.time() - last >= interval_s or time.time() < last

    def mark_uploaded(self):
        RtcRegion(self.rtc, RTC_UPLOAD, 6).write(struct.pack("<I", time.time()))

    # -- sensor --------------------------------------------------------------------------------
    def sensor(self, scfg):
        """The BME280 on the board's bus; its errors are reported by the driver's state."""
        from laterne.bme280 import BME280
        if self.board is None:
            raise OSError("board.json missing: run `laterne configure`")
        if self.i2c is None:
            self.i2c = I2CBus(self.board["i2c"])
        address = scfg["address"] or self.board.get("bme280_address")
        sensor = BME280(self.i2c, address=address, osrs_t=scfg["osrs_t"], osrs_p=scfg["osrs_p"],
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
