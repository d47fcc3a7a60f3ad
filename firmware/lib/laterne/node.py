# The node: samples on a wall-clock-aligned interval into the spool, uploads on its own
# interval, reports health, takes remote configuration. Hardware arrives as `hw` (see
# laterne/hw/platform.py); this module is pure logic and runs on the virtual board unchanged.
import gc
import os
import sys

from laterne import VERSION, payload, read_text, timebase, write_text
from laterne.spool import Spool
from laterne.uplink import Uplink

_current = None  # the running node, for `snapshot()` from the REPL (laterne check)
IDLE_MS = 30000   # longest sleep with the link down (the watchdog is fed in between)


def snapshot():
    """Health fields of the node running in this interpreter, or None."""
    return _current.health() if _current is not None else None


class Node:
    def __init__(self, hw, cfg, cfg_source, root="", log=print):
        global _current
        self.hw = hw
        self.clock = hw.clock
        self.cfg = cfg
        self.cfg_source = cfg_source
        self.root = root
        self.log = log
        self.node_id = cfg["node_id"]
        text = read_text(root + "boot", "0")
        self.boot = ((int(text) if text.isdigit() else 0) + 1) & 0xFFFF
        write_text(root + "boot", str(self.boot))
        self.timebase = timebase.ClockState(self.clock, self.boot)
        if hw.clock_known():
            self.timebase.mark_synced(hw.time_unix(), hw.last_sync_unix())
        else:
            hw.apply_clock_floor()  # for TLS only: readings keep boot-relative time
        # the uplink's packet buffers first, while the heap is whole: a spool recovering from
        # a power cut leaves holes that a 4 KB buffer would no longer fit in
        self.uplink = Uplink(hw, cfg, self.node_id, self.timebase, self._on_message, log, hw.random)
        self.spool = Spool(root, cfg["spool_bytes"], rtc=hw.rtc_spool(),
                           rtc_loss_ok=cfg["rtc_fast_path"])
        self.errors = 0
        self.memory_errors = 0  # steps that ran out of heap (the drain counts its own too)
        self.last_error = None
        self.sensor = None
        self._open_sensor()
        self.safe_mode = False
        self.crash_report = self._take_crash_report()
        self.pending_results = []
        self.drained_once = False
        self.ota_state = None  # the update record the loader booted (set by laterne.hw.app)
        self.updater = None    # laterne.ota.Updater while an update is under way
        _current = self

    # -- health ------------------------------------------------------------------------------
    def health(self):
        tb = self.timebase
        s = self.sensor
        rssi = self.hw.wifi.rssi() if self.uplink.is_up() else None
        oldest = self.spool.peek(1)  # every lower seq has left the spool (see docs/mqtt.md)
        return {
            "fw": VERSION, "boot": self.boot,
            "uptime_s": tb.uptime_s(),
            "reset_cause": self.hw.reset_cause(), "free_heap": self.hw.free_heap(),
            "rssi": rssi, "spool_depth": self.spool.depth(), "dropped": self.spool.dropped,
            "spool_first": oldest[0][0] if oldest else self.spool.next_seq,
            "corrupt": self.spool.corrupt, "sensor": s.state if s else "missing",
            "sensor_errors": s.errors if s else 0, "errors": self.errors,
            "memory_errors": self.memory_errors + self.uplink.memory_errors,
            "last_error": self.last_error or self.uplink.last_error,
            "time_synced": tb.synced(), "synced_at": tb.synced_at,
            "clock": self.uplink.clock_source(),
            "safe_mode": bool(self.safe_mode), "config_source": self.cfg_source,
            "wifi": self.hw.wifi.isconnected(), "broker": self.uplink.state,
            "power_mode": self.cfg["power_mode"],
            "fw_previous": (self.ota_state or {}).get("previous"),
            "update": self.updater.report() if self.updater else (self.ota_state or {}).get("last"),
        }

    def fail(self, where, e):
        """A step failed: count it, remember it, carry on."""
        self.errors += 1
        self.last_error = "%s: %s: %s" % (where, type(e).__name__, e)
        self.log(self.last_error)

    def _take_crash_report(self):
        path = self.root + "crash.txt"
        try:
            with open(path) as f:
                text = f.read(1500)
        except OSError:
            return None
        return text

    # -- steps -------------------------------------------------------------------------------
    def _open_sensor(self):
        """A missing board file or bus is a reported error, never a crash; retried later."""
        try:
            self.sensor = self.hw.sensor(self.cfg["sensor"])
        except Exception as e:
            self.fail("sensor", e)

    def sample(self):
        ts, tflags = self.timebase.stamp()
        if self.sensor is None:
            self._open_sensor()
            if self.sensor is None:
                return None
        try:
            t, p, h, rflags = self.sensor.read()
        except Exception as e:
            self.fail("sensor", e)
            return None
        return self.spool.append((ts, t, p, h, tflags | rflags, self.boot))

    def publish_status(self):
        fields = self.health()
        if self.crash_report:
            fields["crash"] = self.crash_report
        brownouts = self.hw.brownout_loops()
        if brownouts:
            fields["brownout_loops"] = brownouts
        self.uplink.publish("status", payload.status_json(self.node_id, fields), True, 1)
        self.hw.keep_clock_floor()
        if brownouts:
            self.hw.brownouts_reported()
        if self.crash_report:
            self.crash_report = None
            try:
                os.remove(self.root + "crash.txt")
            except OSError:
                pass

    def upload(self):
        """Link up, drain the spool, report. Returns True when the spool was drained."""
        if not self.uplink.ensure():
            return False
        self.hw.feed()
        if self.uplink.sync_due():  # a link that stays up for days resyncs too
            self.uplink.sync_time()
        self.publish_status()
        self.uplink.drain(self.spool, self.cfg["batch_size"], self.hw.feed, 60000)
        drained = self.uplink.is_up() and self.spool.depth() == 0
        if drained and not self.drained_once:
            self.drained_once = True
            self.publish_status()  # tell watchers the backlog is gone
        if self.updater is not None:
            self.updater.after_upload(drained)
        return drained

    def service(self, timeout_ms):
        self.uplink.service(timeout_ms)
        if self.updater is not None:
            self.updater.pump()
        while self.pending_results and self.uplink.is_up():
            topic_leaf, message = self.pending_results.pop(0)
            self.uplink.publish(topic_leaf, message, False, 1)

    # -- remote configuration ----------------------------------------------------------------
    def _on_message(self, topic, message):
        if "/ota/" in topic:
            return self.guard("update", self.ota_message, topic, message)
        if not topic.endswith("/config/set"):
            return
        request_id = None
        try:
            if message is None:  # larger than the packet buffer: its payload was not read
                raise ValueError("config/set: message exceeds %d bytes" % payload.CONFIG_SET_MAX)
            request_id, patch = payload.parse_config_set(message)
            from laterne import config  # loaded for the change only, let go after it
            new_cfg, errors = config.apply_remote(self.cfg, patch)
            if not errors:
                config.save(self.root, new_cfg, checked=True)
                self.cfg.update(new_cfg)
                self.apply_config()
            config.release()
            keys = sorted(patch) if not errors else []
        except Exception as e:
            errors, keys = [str(e)], []
        if errors:
            self.log("config/set rejected: %s" % "; ".join(errors))
        self.pending_results.append(("config/result", payload.config_result_json(
            self.node_id, request_id, not errors, errors, keys)))

    def apply_config(self):
        if self.sensor is not None:
            self.sensor.configure(self.cfg["sensor"])

    # -- updates over the air: laterne/ota.py, imported only while an update is under way --
    def ota(self):
        if self.updater is None:
            from laterne import ota
            self.updater = ota.Updater(self)
        return self.updater

    def ota_message(self, topic, message):
        self.ota().on_message(topic, message)

    # -- scheduling --------------------------------------------------------------------------
    def next_sample_delay_ms(self, interval_s):
        """Milliseconds to the next multiple of the interval on the wall clock (or uptime)."""
        now = self.timebase.now_unix()
        period = interval_s * 1000
        if now is None:
            return period - self.timebase.phase_ms(interval_s)
        return period - self.hw.time_unix_ms() % period

    def run(self):
        """Always-on mode: never returns. Running out of heap anywhere in the loop is counted
        and reported (status memory_errors); the loop then starts over and goes on."""
        while True:
            try:
                self._run()
            except MemoryError:
                self.out_of_memory("loop")

    def _run(self):
        clock = self.clock
        cfg = self.cfg
        tb = self.timebase
        next_sample = clock.ticks_add(clock.ticks_ms(), self.next_sample_delay_ms(cfg["sample_interval_s"]))
        next_upload = clock.ticks_ms()
        next_status = clock.ticks_add(clock.ticks_ms(), cfg["status_interval_s"] * 1000)
        leave_safe_s = None  # safe mode lasts up to 7 days: seconds, not ticks (2**29 ms max)
        if self.safe_mode:  # after its time, restart into normal operation and report it
            leave_safe_s = cfg["safe_mode"]["safe_s"] + 1
        self.sample()  # one reading right away: a node that just got power shows life
        while True:
            self.hw.feed()
            now = clock.ticks_ms()
            up = tb.uptime_s()
            self.hw.boot_stable()
            if leave_safe_s is not None and up >= leave_safe_s:
                self.log("safe mode over: restarting")
                self.hw.reset()
            if clock.ticks_diff(now, next_sample) >= 0:
                self.guard("sample", self.sample)
                next_sample = clock.ticks_add(clock.ticks_ms(), self.next_sample_delay_ms(cfg["sample_interval_s"]))
            if clock.ticks_diff(now, next_upload) >= 0:
                if self.guard("upload", self.upload):
                    next_upload = clock.ticks_add(now, cfg["upload_interval_s"] * 1000)
                else:  # try again when the backoff allows; keep sampling meanwhile
                    next_upload = clock.ticks_add(now, self.uplink.retry_in_ms())
            if clock.ticks_diff(now, next_status) >= 0 and self.uplink.is_up():
                self.guard("status", self.publish_status)
                next_status = clock.ticks_add(now, cfg["status_interval_s"] * 1000)
            now = clock.ticks_ms()
            wait = min(clock.ticks_diff(next_sample, now), clock.ticks_diff(next_upload, now))
            if self.uplink.is_up():
                self.guard("service", self.service, max(min(wait, 1000), 0))
            elif wait > 0:
                clock.sleep_ms(min(wait, IDLE_MS))

    def guard(self, where, step, *args):
        try:
            return step(*args)
        except MemoryError:
            self.out_of_memory(where)
        except Exception as e:
            self.fail(where, e)
        return None

    def out_of_memory(self, where):
        """Short of heap is bad input, not a crash: count it; the message is made only
        after a collection, and if even that fails the count alone tells."""
        self.memory_errors += 1
        gc.collect()
        try:
            self.last_error = where + ": MemoryError"
            self.log(self.last_error)
        except MemoryError:
            self.last_error = "MemoryError"

    def run_once_deep_sleep(self):
        """Deep-sleep mode: one wake. Sample, upload when due, leave cleanly, sleep."""
        cfg = self.cfg
        self.guard("sample", self.sample)
        due = self.hw.upload_due(cfg["upload_interval_s"])
        if due or self.crash_report:
            if self.guard("upload", self.upload):
                self.hw.mark_uploaded()
            if self.updater is not None:  # a download goes on over this and later wakes
                self.guard("update", self.updater.stay_awake)
            self.uplink.close()
        self.hw.boot_stable(True)
        self.hw.deepsleep(self.next_sample_delay_ms(cfg["sample_interval_s"]))


def fallback_config(mac):
    """No usable config: measure into the spool with the defaults, radio off."""
    from laterne import config
    cfg = config.defaults()
    cfg["node_id"] = "esp32-" + mac
    cfg["wifi"] = []
    return cfg


def safe_mode_config(cfg):
    """Crash loop: radio off, slow cadence; everything else as configured."""
    cfg = dict(cfg)
    cfg["wifi"] = []
    cfg["power_mode"] = "always_on"
    cfg["sample_interval_s"] = max(cfg["sample_interval_s"], 600)
    return cfg


def save_crash(root, exc):
    """Keep the traceback of a crash on flash; it is published after the next boot."""
    try:
        import io
        buf = io.StringIO()
        if hasattr(sys, "print_exception"):
            sys.print_exception(exc, buf)
        else:
            import traceback
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=buf)
        with open(root + "crash.txt", "w") as f:
            f.write(buf.getvalue()[-1500:])
    except Exception:
        pass
