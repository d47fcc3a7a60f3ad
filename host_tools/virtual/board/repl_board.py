# MicroPython side of `laterne virtual-board`: boots a node the way an ESP32 does, then leaves
# the interpreter at the unix port's own REPL (run as `micropython -i repl_board.py STATE MODE
# CAUSE`). The host folder STATE/fs becomes the device's "/" (so mpremote's absolute and
# relative paths land there), /lib is on sys.path, boot.py runs, then main.py unless the board
# restarts into the raw REPL. A reset (machine.reset/soft_reset/deepsleep, watchdog) writes
# STATE/reset.json and prints RESET_MARK; the bridge (host_tools/virtual/pty_board.py) then ends
# and restarts the process. RTC memory and the watchdog are carried over in STATE/rtc.bin
# (rewritten whenever they change); STATE/wdt holds the host time (ns) when the watchdog fires,
# so the bridge resets a board that sits idle at the REPL, as the chip's task watchdog would.
import json
import sys

import vfs

UP_MARK = "\x00vboard-up\x00"  # tells the bridge: set up, Ctrl-C may now interrupt
RAW_MARK = "\x00vboard-raw\x00"  # tells the bridge: boot done, switch to the raw REPL
RESET_MARK = "\x00vboard-reset\x00"  # tells the bridge: restart me (STATE/reset.json: why)


class BoardFs:
    """The board's filesystem: a host folder behind VfsPosix(root). A wrapper, not a subclass
    (a subclass breaks imports), because VfsPosix(root).rename resolves both paths into one
    shared buffer and fails with ENOENT; rename goes through a root-less VfsPosix instead."""

    def __init__(self, root):
        self.fs = vfs.VfsPosix(root)
        self.host_root = root
        self.plain = vfs.VfsPosix()
        for name in ("mount", "umount", "open", "ilistdir", "chdir", "getcwd", "mkdir",
                     "remove", "rmdir", "stat", "statvfs"):
            setattr(self, name, getattr(self.fs, name))

    def rename(self, old, new):
        self.plain.rename(self._host(old), self._host(new))

    def _host(self, path):
        return self.host_root + path if path.startswith("/") else path


def run_file(name):
    try:
        with open(name) as f:
            code = f.read()
    except OSError:
        return
    exec(code, {"__name__": "__main__", "__file__": name})


def main(state, mode, cause):
    with open(state + "/vboard.json") as f:
        spec = json.load(f)
    import time as host_time
    import vclock
    import vsocket
    sys.modules["socket"] = vsocket  # name lookups as slow as network.env.dns_ms says

    # Real-time clock; like the chip's RTC it starts at 2000-01-01 on power-on and carries on
    # across resets (load_state below moves it to the saved time).
    scale = spec.get("scale", 1)
    clock = vclock.VClock(scale=scale)
    sys.modules["time"] = clock
    import machine
    import network
    for name in spec.get("preload", ()):  # other stand-ins the firmware may import later
        __import__(name)

    board = machine.board
    board.power_on(uid=bytes.fromhex(spec["uid"]), clock=clock)
    if cause != "power_on":
        try:
            with open(state + "/rtc.bin", "rb") as f:
                board.load_state(f.read())
        except (OSError, ValueError):  # the last run was killed before it saved: RTC lost
            pass
        board.after_reset(machine.CAUSE_BY_NAME[cause])
    if spec.get("sensor", True):
        import bme280_sim
        sim = bme280_sim.BME280Sim(clock)  # starts at 21.5 degC, 101325 Pa, 45 %RH
        if "environment" in spec:
            sim.set_environment(*spec["environment"])
        board.attach(spec.get("sensor_address", 0x76), sim)
    network.env.clock = clock
    network.env.mac = bytes.fromhex(spec["uid"])

    # Host files the bridge reads, opened before "/" is replaced by the device filesystem.
    reset_file = open(state + "/reset.json", "w")
    rtc_file = open(state + "/rtc.bin", "wb")
    wdt_file = open(state + "/wdt", "w")
    published = [None, 0, None]  # deadline last written, host ns of that write, its timeout

    def save_rtc():
        data = board.state_bytes()
        rtc_file.seek(0)
        rtc_file.write(data + bytes(machine.STATE_MAX - len(data)))  # one size: no truncate
        rtc_file.flush()

    def publish_wdt():
        left = board.wdt_left_ms()
        now = host_time.time_ns()
        deadline = 0 if left is None else now + int(left * 1000000 // scale)
        # a feed moves the deadline on: write it at most every 0.2 s (the bridge allows 1 s)
        if (deadline and published[0] and deadline > published[0]
                and board.wdt_timeout_ms == published[2] and now - published[1] < 200000000):
            return
        published[0], published[1], published[2] = deadline, now, board.wdt_timeout_ms
        wdt_file.seek(0)
        wdt_file.write("%20d" % deadline)
        wdt_file.flush()

    def on_change():
        publish_wdt()
        if board.rtc_memory != saved_memory[0]:
            saved_memory[0] = bytes(board.rtc_memory)
            save_rtc()

    saved_memory = [bytes(board.rtc_memory)]
    save_rtc()
    publish_wdt()
    board.on_change = on_change
    sys.atexit(save_rtc)

    def leave(reset):
        # sys.exit would land in the REPL (-i), so the bridge ends this process instead.
        reset_file.write(json.dumps({"cause": getattr(reset, "cause", machine.CAUSE_BY_NAME["hard"]),
                                     "sleep_ms": getattr(reset, "sleep_ms", None)}))
        reset_file.close()
        save_rtc()
        wdt_file.seek(0)
        wdt_file.write("%20d" % 0)  # the reset ends this process's watchdog
        wdt_file.flush()
        sys.stdout.write(RESET_MARK)
        while True:
            host_time.sleep(1)

    vfs.umount("/")
    vfs.mount(BoardFs(state + "/fs"), "/")
    sys.path[:] = ["", ".frozen", "/lib"]
    # The virtual radio finds the access points the node is configured for.
    try:
        with open("/config.json") as f:
            for net in json.load(f).get("wifi") or ():
                network.env.add_ap(net["ssid"], net.get("password", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass

    # A reset must end the process so the bridge can restart it (at the REPL as in main.py).
    def resetting(fn):
        def call(*args, **kw):
            try:
                return fn(*args, **kw)
            except machine.BoardReset as reset:
                leave(reset)
        return call

    for name in ("reset", "soft_reset", "deepsleep"):
        if hasattr(machine, name):
            setattr(machine, name, resetting(getattr(machine, name)))
    sys.stdout.write(UP_MARK)
    for name in ("boot.py", "main.py") if mode == "friendly" else ("boot.py",):
        try:
            run_file(name)
        except machine.BoardReset as reset:
            leave(reset)
        except KeyboardInterrupt as e:  # Ctrl-C: like the device, drop to the REPL
            sys.print_exception(e)
            break
        except Exception as e:
            sys.print_exception(e)

    if mode == "raw":
        sys.stdout.write(RAW_MARK)


main(sys.argv[1], sys.argv[2], sys.argv[3])
del main, run_file, BoardFs  # keep the REPL's namespace close to a fresh board's
