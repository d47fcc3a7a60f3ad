# Boots the unmodified firmware on the virtual board (MicroPython unix port).
# Usage: micropython node_runner.py STATE_DIR   (STATE_DIR/run.json says what to run)
# STATE_DIR holds the node's flash image, its RTC state and the files a supervisor uses to
# play power cuts, deep sleep and outages. The exit code tells the supervisor why it ended.
import json
import os
import sys
import time as host_time

import vfs

# The exit code is the reset cause (machine.HARD_RESET=2, WDT_RESET=3, DEEPSLEEP_RESET=4,
# SOFT_RESET=5); anything else ends like a panic (2).


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
    clock = vclock.VClock(scale=run["scale"], time2000=0)
    faults = read_faults(state)
    if saved:
        elapsed = (host_time.time_ns() - saved["host_ns"]) * run["scale"] // 1000
        if cause == "deep_sleep":  # asleep, the RTC counts on its RC oscillator
            elapsed += elapsed * faults.get("rtc-drift", 0) // 1000000
        clock.set_time((saved["rtc_us"] + elapsed) / 1000000)
    sys.modules["time"] = clock
    if run["scale"] != 1:
        import vselect
        sys.modules["select"] = vselect.ScaledSelect(run["scale"])

    import machine
    import network
    import vsocket
    sys.modules["socket"] = vsocket  # name lookups take network.env.dns_ms
    try:
        import vssl
        sys.modules["ssl"] = vssl    # certificate dates checked against the board's RTC
    except ImportError:              # a build without TLS
        pass
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
            now = world_unix(run)
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
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
    vfs.mount(fs, "/flash")
    os.chdir("/flash")

    # What `laterne configure` would have written over USB.
    for name in ("config.json", "board.json", "ota.key"):
        wanted = read_file(state + "/" + name)
        if wanted is not None and read_file(name) != wanted:
            write_file(name, wanted)
    inject_faults(state)
    if run.get("preload") and read_file(state + "/preloaded") is None:
        write_file(state + "/preloaded", "1")  # once, even if this boot dies halfway
        preload(run["preload"], run["config_spool_bytes"])

    heap = HeapWatch(state)
    clock.hooks.append(heap.hook)
    try:
        code = read_file(run["firmware"] + "/main.py")
        exec(code, {"__name__": "__main__"})
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
        elif words[:1] in (["slow-dns"], ["rtc-drift"]):
            keep.append(line)
    write_file(state + "/fault", "\n".join(keep))


def world_unix(run):
    """The simulated world's Unix time (the supervisor's NTP server tells the same)."""
    return run["epoch_unix"] + (host_time.time_ns() - run["epoch_host_ns"]) * run["scale"] // 1000000000


class HeapWatch:
    """Peak of the live heap (after a collection), sampled once a virtual minute."""

    def __init__(self, state):
        import gc
        self.gc = gc
        self.path = state + "/heap_peak"
        self.peak = int(read_file(self.path) or 0)
        self.last = None

    def hook(self, clock):
        minute = clock.now_us() // 60000000
        if minute != self.last:
            self.last = minute
            self.gc.collect()
            self.peak = max(self.peak, self.gc.mem_alloc())
            if minute % 10 == 0:
                self.save()

    def save(self):
        write_file(self.path, str(self.peak))


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
        chunk.append((ts, 0, 0, int(t * 100), int(p), int(h * 100)))
        if len(chunk) == 200:
            spool.extend(chunk)
            chunk = []
            gc.collect()
    if chunk:
        spool.extend(chunk)


main(sys.argv[1])
