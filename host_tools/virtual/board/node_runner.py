# Boots the unmodified firmware on the virtual board (MicroPython unix port).
# Usage: micropython node_runner.py STATE_DIR   (STATE_DIR/run.json says what to run)
#    or: micropython -m node_runner STATE_DIR   (the 32-bit build, where the board is frozen)
# STATE_DIR holds the node's flash image, its RTC state and the files a supervisor uses to
# play power cuts, deep sleep and outages; with run.json's `configure` the run only does what
# `laterne configure` would (see configure()), and puts the `preload` readings in the spool.
# The exit code tells the supervisor why it ended.
# Clock: `scale` times faster than the host, or with `skip_idle` virtual time jumps over every
# idle wait (vselect.SkipSelect). STATE_DIR/heap.json: the live heap, per virtual day.
import json
import os
import sys
import time as host_time

import vfs

# The exit code is the reset cause (machine.HARD_RESET=2, WDT_RESET=3, DEEPSLEEP_RESET=4,
# SOFT_RESET=5); 0 when the run's `stop_after_s` of virtual time is over (or main.py ended);
# anything else ends like a panic (2).


class Stop(BaseException):
    """The run's virtual time is over (not an Exception: the firmware must not catch it)."""


def read_file(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def write_file(path, data, mode="w"):
    with open(path + ".tmp", mode) as f:
        f.write(data)
    os.rename(path + ".tmp", path)


def main(state):
    run = json.loads(read_file(state + "/run.json"))
    sys.path.insert(0, run["firmware"] + "/lib")
    import vclock

    # The RTC keeps running while the chip sleeps or resets, but not across a power cut.
    cause = run.get("cause", "power_on")
    saved = read_file(state + "/rtc.json")
    saved = json.loads(saved) if saved and cause != "power_on" else None
    skip = run.get("skip_idle", False)
    scale = 1 if skip else run["scale"]
    clock = vclock.VClock(scale=None if skip else scale, time2000=0)
    faults = read_faults(state)
    if saved:
        elapsed = (host_time.time_ns() - saved["host_ns"]) * scale // 1000
        if cause == "deep_sleep":  # asleep, the RTC counts on its RC oscillator
            elapsed += elapsed * faults.get("rtc-drift", 0) // 1000000
        rtc_us = saved["rtc_us"] + elapsed
        clock.set_time(rtc_us // 1000000, rtc_us % 1000000)
    sys.modules["time"] = clock
    import vsocket
    sys.modules["socket"] = vsocket  # name lookups take network.env.dns_ms
    try:
        import vssl
        sys.modules["ssl"] = vssl    # certificate dates checked against the board's RTC
    except ImportError:              # a build without TLS
        pass
    if skip:
        import socket
        import vselect
        sys.modules["select"] = vselect.SkipSelect(clock)
        sys.modules["socket"] = vselect.SkipSockets(socket)
    elif scale != 1:
        import vselect
        sys.modules["select"] = vselect.ScaledSelect(scale)

    import machine
    import network
    import bme280_sim
    import blockdev
    import weather

    board = machine.board
    uid = bytes.fromhex(run["uid"])
    board.power_on(uid=uid, clock=clock)
    if saved:
        board.load_state(bytes.fromhex(saved["board"]))
        board.after_reset(machine.CAUSE_BY_NAME[cause])

    if run.get("sensor", True):
        sim = bme280_sim.BME280Sim(clock)
        last = [None]

        def follow_weather(c):
            now = c.time() + 946684800 if skip else world_unix(run)  # RTC time (2000 epoch)
            if now // 60 != last[0]:
                last[0] = now // 60
                sim.set_environment(*weather.environment(now, run["seed"]))

        clock.hooks.append(follow_weather)
        follow_weather(clock)
        board.attach(0x76, sim)

    network.env.clock = clock
    network.env.dns_ms = faults.get("slow-dns", 0)
    network.env.link_file = state + "/link"
    network.env.mac = uid
    for ap in run["aps"]:
        network.env.add_ap(ap["ssid"], ap["password"], ap.get("rssi", -62))

    bdev = blockdev.FileBlockDev(state + "/flash.img", 4096, run["flash_blocks"])
    if run.get("measure_board"):  # what the board itself holds, without the firmware
        for name in [n for n in sys.modules if n.startswith("laterne")]:
            del sys.modules[name]  # the driver the simulator borrowed is the node's
        write_file(state + "/board_heap", str(HeapWatch(state).board))
        sys.exit(0)
    heap = HeapWatch(state, run.get("board_share"))
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, "/flash")
    os.chdir("/flash")

    if run.get("configure"):  # a process of its own: the node boots on a clean heap
        configure(state)
        if run.get("preload") and read_file(state + "/preloaded") is None:
            write_file(state + "/preloaded", "1")  # once, even if this run dies halfway
            preload(run["preload"], run["config_spool_bytes"])
        sys.exit(0)
    inject_faults(state)

    heap.stop_us = run["stop_after_s"] * 1000000 if run.get("stop_after_s") else None
    clock.hooks.append(heap.hook)
    try:
        # compiled from the file like the chip does (no source string kept alive meanwhile)
        execfile(run["firmware"] + "/main.py", {"__name__": "__main__"})  # noqa: F821
        exit_code = 0
    except Stop:
        exit_code = 0
    except machine.BoardReset as reset:
        exit_code = reset.cause if reset.cause in (2, 3, 4, 5) else 2
        if reset.sleep_ms is not None:
            write_file(state + "/sleep_ms", str(reset.sleep_ms))
    except Exception as e:  # escaped main.py: like a panic on the real chip
        sys.print_exception(e)
        exit_code = 2
    heap.save()
    write_file(state + "/rtc.json", json.dumps({
        "host_ns": host_time.time_ns(), "rtc_us": clock.time_ns() // 1000,
        "board": board.state_bytes().hex()}))
    sys.exit(exit_code)


def configure(state):
    """What `laterne configure` does over USB (a process of its own, like that REPL session
    and the reset after it): STATE/config.json stored with config.save on the board (it
    checks it and leaves config.json, config.bak and config.ok), STATE/board.json, and the
    node's update key STATE/ota.key when there is one."""
    from laterne import config
    config.save("", json.loads(read_file(state + "/config.json")))
    write_file("board.json", read_file(state + "/board.json"))
    key = read_file(state + "/ota.key")
    if key is not None:
        write_file("ota.key", key)


def read_faults(state):
    """Lasting faults in STATE/fault: `slow-dns MS` (every name lookup takes MS virtual ms),
    `rtc-drift PPM` (the RTC gains PPM millionths while the chip sleeps). {name: number}."""
    found = {}
    for line in (read_file(state + "/fault") or "").split("\n"):
        words = line.split()
        if len(words) == 2 and words[0] in ("slow-dns", "rtc-drift"):
            found[words[0]] = int(words[1])
    return found


def inject_faults(state):
    """Faults a test asks for in STATE/fault, one per line:
    `crash N`: the node's main loop raises at its next N boots (a firmware bug);
    `corrupt-config`: config.json on flash is garbage at this boot (a torn write, a bad flash);
    the next start configures the node again, as a technician would;
    `corrupt-backup`: config.bak too;
    lasting faults (read_faults) stay in the file.
    """
    text = read_file(state + "/fault")
    if not text:
        return
    keep = []
    for line in text.split("\n"):
        words = line.split()
        if words[:1] == ["crash"] and int(words[1]) > 0:
            from laterne import node

            def broken_run(self):
                raise RuntimeError("injected fault: main loop crashed")

            node.Node.run = broken_run
            node.Node.run_once_deep_sleep = broken_run
            if int(words[1]) > 1:
                keep.append("crash %d" % (int(words[1]) - 1))
        elif words[:1] == ["corrupt-config"]:
            write_file("config.json", '{"node_id": "lamp-0\x00\xff')
            try:
                os.remove(state + "/configured")
            except OSError:
                pass
        elif words[:1] == ["corrupt-backup"]:
            write_file("config.bak", '{"node_id": "lamp-0\x00\xff')
        elif words[:1] in (["slow-dns"], ["rtc-drift"]):
            keep.append(line)
    write_file(state + "/fault", "\n".join(keep))


def world_unix(run):
    """The simulated world's Unix time (the supervisor's NTP server tells the same)."""
    return run["epoch_unix"] + (host_time.time_ns() - run["epoch_host_ns"]) * run["scale"] // 1000000000


class HeapWatch:
    """The live heap (after a collection), sampled once a virtual minute: its peak over every
    boot (STATE/heap_peak) and, for this boot, the least and the most of each virtual day
    from its third minute on (STATE/heap.json). `board` is what the virtual board holds of
    that (measured before the firmware starts; a supervisor gives the interpreter that much
    on top of the node's budget and passes the figure in). Finished days go to a file at
    once, so that watching a week takes no more heap than watching a day."""

    def __init__(self, state, board=None):
        import gc
        self.gc = gc
        self.state = state
        self.peak = int(read_file(state + "/heap_peak") or 0)
        self.last = None
        self.day = None
        self.lo = self.hi = 0
        self.stop_us = None
        write_file(state + "/heap_days", "")
        gc.collect()
        self.board = gc.mem_alloc() if board is None else board

    def hook(self, clock):
        now = clock.now_us()
        minute = now // 60000000
        if minute != self.last:
            self.last = minute
            self.gc.collect()
            live = self.gc.mem_alloc()
            self.peak = max(self.peak, live)
            if minute >= 2:  # not while it still boots
                day = minute // 1440
                if day != self.day:
                    if self.day is not None:
                        with open(self.state + "/heap_days", "a") as f:
                            f.write("%d %d\n" % (self.lo, self.hi))
                    self.day, self.lo, self.hi = day, live, live
                self.lo = min(self.lo, live)
                self.hi = max(self.hi, live)
            if minute % 10 == 0:
                self.save()
        if self.stop_us is not None and now >= self.stop_us:
            self.stop_us = None
            raise Stop()

    def save(self):
        days = [[int(v) for v in line.split()]
                for line in read_file(self.state + "/heap_days").split("\n") if line]
        if self.day is not None:
            days.append([self.lo, self.hi])
        write_file(self.state + "/heap_peak", str(self.peak))
        write_file(self.state + "/heap.json", json.dumps(
            {"board": self.board, "peak": self.peak, "days": days}))


def preload(spec, capacity):
    """Readings already spooled, as after an outage: `n` readings ending at `end_unix`."""
    import gc
    import weather
    from laterne.spool import Spool
    spool = Spool("", capacity)
    n, end, step = spec["n"], spec["end_unix"], spec["interval_s"]
    chunk = []
    for i in range(n):
        ts = end - (n - i) * step
        t, p, h = weather.environment(ts, spec["seed"])
        chunk.append((ts, int(t * 100), int(p), int(h * 100), 0, 0))
        if len(chunk) == 30:  # small steps: the preload runs within the node's own heap
            spool.extend(chunk)
            chunk = []
            gc.collect()
    if chunk:
        spool.extend(chunk)


main(sys.argv[1])
