# `laterne sim`: a fleet of virtual nodes, each the unmodified firmware in its own MicroPython
# unix-port process (host_tools/virtual/board/node_runner.py) with its flash image and RTC state in
# STATE/<node_id>/. The supervisor plays the world around them: it restarts a node that was
# SIGKILLed (a power cut) after a short delay, wakes deep-sleeping nodes on time, and serves
# the simulated world's time over SNTP, which runs `time_scale` times faster than the host.
# With mpy32 the nodes run on the 32-bit build with the board's GC heap: the node's budget
# plus what the virtual board itself holds there (measured once, see HeapWatch.board).
import json
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from host_tools import paths

POWER_RETURNS_S = 1.0
NTP_DELTA = 2208988800  # 1900 -> 1970
SIM_AP = {"ssid": "laterne-sim", "password": "street-lamp-sim", "rssi": -61}
FLASH_BLOCKS = 512  # 2 MB of 4 KB blocks: the vfs partition of ESP32_GENERIC on 4 MB flash


class World:
    """The simulated world's clock: Unix time running `scale` times faster than the host."""

    def __init__(self, scale, epoch_unix=None):
        self.scale = scale
        self.epoch_unix = int(epoch_unix if epoch_unix is not None else time.time())
        self.epoch_host_ns = time.time_ns()

    def now(self):
        return self.epoch_unix + (time.time_ns() - self.epoch_host_ns) * self.scale / 1e9


class NtpServer(threading.Thread):
    """SNTP (RFC 4330) on a loopback UDP port, answering with the world's time."""

    def __init__(self, world):
        threading.Thread.__init__(self, daemon=True)
        self.world = world
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.running = True

    def run(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(512)
            except OSError:
                continue
            if len(data) < 48:
                continue
            now = self.world.now() + NTP_DELTA
            secs, frac = int(now), int((now % 1) * (1 << 32))
            reply = struct.pack("!BBBb11I", 0x24, 2, 6, -20, 0, 0, 0, secs, frac,
                                *struct.unpack("!II", data[40:48]), secs, frac, secs, frac)
            try:
                self.sock.sendto(reply, addr)
            except OSError:
                pass

    def stop(self):
        self.running = False
        self.sock.close()


class Interpreter:
    """The MicroPython a node runs on: the 64-bit unix port, or the 32-bit build with the
    board's heap shape (first area, then further areas up to the budget)."""

    def __init__(self, mpy32=False, board=None):
        self.mpy32 = mpy32
        self.exe = paths.micropython32_exe() if mpy32 else paths.micropython_exe()
        heap = (board or {}).get("gc_heap") or {"first_area_kb": 56, "budget_kb": 96}
        self.first_area = heap["first_area_kb"] * 1024
        self.board_budget = heap["budget_kb"] * 1024
        self.board_share = 0  # bytes the virtual board holds: given on top of the budget

    def command(self, state_dir, budget):
        runner = ["-m", "node_runner"] if self.mpy32 else [str(paths.VBOARD / "node_runner.py")]
        return [self.exe, "-X", "heapsize=%d" % (budget + self.board_share)] + runner + [
            str(state_dir)]

    def env(self):
        if self.mpy32:
            return paths.micropython32_env(self.first_area + self.board_share)
        return paths.micropython_env()

    def measure_board(self, run_spec, scratch):
        """What the virtual board and its runner hold before the firmware starts."""
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / "run.json").write_text(json.dumps(dict(run_spec, measure_board=True)))
        subprocess.run(self.command(scratch, 1 << 20), env=self.env(), check=True,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        self.board_share = int((scratch / "board_heap").read_text())
        shutil.rmtree(scratch, ignore_errors=True)
        return self.board_share


def parse_size(text):
    """Bytes from "96k", "1M" or "98304"; ValueError for anything else."""
    t = str(text).strip().lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(t[-1:], 1)
    try:
        n = int(t[:-1] if mult > 1 else t) * mult
    except ValueError:
        raise ValueError("heap size %r: give bytes, or KB/MB like 96k or 1M" % text)
    if n < 16 * 1024:
        raise ValueError("heap size %r: at least 16k" % text)
    return n


def install_firmware(dest, exe=None):
    """The firmware as a deploy would put it on a node (lib precompiled to .mpy for the unix
    port), so a virtual node's heap carries what a real node's does, not the compiler's."""
    from host_tools.usb import deploy
    out = subprocess.run([exe or paths.micropython_exe(), "-c",
                          "import sys; print(sys.implementation._mpy)"],
                         capture_output=True, text=True, check=True).stdout
    files = deploy.build(paths.FIRMWARE, {"mpy": int(out)})
    if dest.exists():
        shutil.rmtree(dest)
    for name, data in files.items():
        path = dest / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dest


def merge(base, overrides):
    """base with overrides applied; nested objects are merged key by key."""
    out = dict(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def node_config(node_id, broker_host, broker_port, ntp_port, opts):
    """A virtual node's config, built like a real node's (host_tools/inventory.py): the site
    defaults of the simulated city, the node's inventory row and the access point's secrets.
    Validated in VirtualNode.prepare, after the --config overrides."""
    from host_tools import inventory
    site = {
        "broker": {"host": broker_host, "port": broker_port, "tls": opts["ca"] is not None,
                   "ca": opts["ca"], "keepalive_s": 30},
        "topic_prefix": opts["prefix"],
        "sample_interval_s": opts["sample_interval"],
        "upload_interval_s": opts["upload_interval"],
        "status_interval_s": max(opts["upload_interval"], 60),
        "batch_size": 50,
        "ntp_servers": ["127.0.0.1:%d" % (ntp_port if opts["ntp"] else 9)],  # 9: discard
        "power_mode": "deep_sleep" if opts["deep_sleep"] else "always_on",
        "backoff_min_s": 2, "backoff_max_s": 120,
    }
    row = {"node_id": node_id, "lamp_post": "sim-" + node_id[-3:], "lat": 52.52, "lon": 13.405,
           "board": opts["board_name"], "notes": "virtual"}
    secrets = {"LATERNE_WIFI_SSID": SIM_AP["ssid"], "LATERNE_WIFI_PASSWORD": SIM_AP["password"]}
    return inventory.build_config(site, node_id, row["board"], row, secrets)


class VirtualNode:
    def __init__(self, index, state_root, world, opts):
        self.index = index
        self.node_id = "lamp-%03d" % index
        self.dir = Path(state_root) / self.node_id
        self.world = world
        self.opts = opts
        self.proc = None
        self.restart_at = None
        self.cause = "power_on"
        self.restarts = 0
        self.finished = False
        self.log = None

    def prepare(self, config, board, ota_key=None):
        from laterne import config as schema
        self.dir.mkdir(parents=True, exist_ok=True)
        config = merge(config, self.opts["overrides"])
        cfg, errors = schema.validate(config)
        if errors:
            raise ValueError("sim config for %s: %s" % (self.node_id, "; ".join(errors)))
        (self.dir / "config.json").write_text(json.dumps(cfg, sort_keys=True))
        (self.dir / "board.json").write_text(json.dumps(board, sort_keys=True))
        if ota_key is not None:  # what `laterne configure --keys` puts on a node
            (self.dir / "ota.key").write_text(ota_key)
        fresh = not (self.dir / "flash.img").exists()
        preload = None
        if fresh and self.opts["preload"]:
            preload = {"n": self.opts["preload"], "end_unix": int(self.world.now()),
                       "interval_s": self.opts["sample_interval"], "seed": self.index}
        self.run_spec = {
            "firmware": str(self.opts["firmware"]), "scale": self.opts["time_scale"],
            "skip_idle": self.opts["skip_idle"], "stop_after_s": self.opts["stop_after_s"],
            "uid": "240ac4%06x" % self.index, "seed": self.index, "aps": [SIM_AP],
            "flash_blocks": FLASH_BLOCKS, "epoch_unix": self.world.epoch_unix,
            "epoch_host_ns": self.world.epoch_host_ns, "preload": preload,
            "config_spool_bytes": cfg["spool_bytes"], "cause": "power_on",
        }

    def start(self):
        interp = self.opts["interpreter"]
        key = self.dir / "ota.key"
        wanted = (self.dir / "config.json").read_text() + (key.read_text() if key.exists() else "")
        marker = self.dir / "configured"
        preload = self.run_spec["preload"] and not (self.dir / "preloaded").exists()
        if preload or not marker.exists() or marker.read_text() != wanted:  # over "USB"
            (self.dir / "run.json").write_text(json.dumps(dict(self.run_spec, configure=True)))
            subprocess.run(interp.command(self.dir, 1 << 20), env=interp.env(), check=True,
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
            marker.write_text(wanted)
        self.run_spec["cause"] = self.cause
        (self.dir / "run.json").write_text(json.dumps(self.run_spec))
        self.log = open(self.dir / "console.log", "ab")
        self.proc = subprocess.Popen(
            interp.command(self.dir, self.opts["heap"]), env=interp.env(),
            stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)  # Ctrl-C reaches us, not them
        (self.dir / "pid").write_text("%d\n" % self.proc.pid)
        self.restart_at = None

    def check(self, now):
        """Restart the node when its process ended the way a real chip would restart."""
        if self.proc is not None:
            code = self.proc.poll()
            if code is None:
                return
            self.proc = None
            self.log.close()
            if code == 0:  # its run is over (or main.py returned): a chip would sit at the REPL
                self.finished = True
                return
            self.restarts += 1
            if code == 4:  # deep sleep: the RTC timer wakes it
                sleep_ms = int((self.dir / "sleep_ms").read_text() or 1000)
                self.cause, delay = "deep_sleep", sleep_ms / 1000 / self.opts["time_scale"]
            elif code in (2, 3, 5):
                self.cause, delay = {2: "hard", 3: "wdt", 5: "soft"}[code], 0.05
            else:  # SIGKILL (power cut) or anything unexpected: power returns later
                self.cause, delay = "power_on", POWER_RETURNS_S
            self.restart_at = now + delay
        if self.restart_at is not None and now >= self.restart_at:
            self.start()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self.log:
            self.log.close()
        try:
            (self.dir / "pid").unlink()
        except FileNotFoundError:
            pass


class DrainWatch:
    """Watches the retained status messages: a node has drained when it says spool_depth 0."""

    def __init__(self, host, port, prefix, node_ids):
        import paho.mqtt.client as mqtt
        self.pending = set(node_ids)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="laterne-sim-watch")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(prefix + "/+/status", 1)
        self.client.connect(host, port, 30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        try:
            status = json.loads(msg.payload)
        except ValueError:
            return
        if status.get("online") and status.get("spool_depth") == 0:
            self.pending.discard(status.get("node"))

    def done(self):
        return not self.pending

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def parse_broker(url):
    """(host, port, tls) of the broker URL, read the same way `laterne monitor` reads it."""
    from host_tools.fleet.monitor import parse_broker_url
    host, port, tls, _user = parse_broker_url(url)
    return host, port, tls


def run_fleet(nodes, broker, state, sample_interval=60, upload_interval=300, time_scale=1.0,
              preload=0, exit_when_drained=False, duration=None, deep_sleep=False,
              prefix="laterne", heap=None, board=None, ntp=True, ca=None, overrides=None,
              keys=None, mpy32=False, skip_idle=False, stop_after_s=None, log=print):
    """heap: the node's GC heap budget (bytes or "96k"); None: the board file's budget on the
    32-bit build, 256k on the 64-bit port. keys: the fleet's update key file (created when
    missing; each node gets its own key). skip_idle: virtual time jumps over idle waits
    (time_scale then only paces the world's NTP time). stop_after_s: each node stops after
    that much virtual time of a boot."""
    host, port, tls = parse_broker(broker)
    if tls and ca is None:
        raise ValueError("an mqtts:// broker needs the CA certificate that signed it (--cafile)")
    if board is None:
        board = json.loads((paths.BOARDS / "esp32-devkitc.json").read_text())
    interp = Interpreter(mpy32, board)
    budget = parse_size(heap) if heap is not None else (
        interp.board_budget if mpy32 else 256 * 1024)
    state = Path(state)
    state.mkdir(parents=True, exist_ok=True)
    world = World(1 if skip_idle else time_scale)
    ntp_server = NtpServer(world)
    ntp_server.start()
    opts = {"sample_interval": sample_interval, "upload_interval": upload_interval,
            "time_scale": time_scale, "preload": preload, "deep_sleep": deep_sleep,
            "prefix": prefix, "heap": budget, "ntp": ntp, "ca": ca if tls else None,
            "overrides": overrides, "interpreter": interp, "skip_idle": skip_idle,
            "stop_after_s": stop_after_s, "board_name": board["name"]}
    opts["firmware"] = install_firmware(state / ".firmware", interp.exe)
    fleet = [VirtualNode(i + 1, state, world, opts) for i in range(nodes)]
    master = None
    if keys is not None:
        from host_tools.ota import keys as ota_keys
        master = ota_keys.load_or_create(keys, log)
    watch = DrainWatch(host, port, prefix, [n.node_id for n in fleet]) if exit_when_drained else None
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        for n in fleet:
            n.prepare(node_config(n.node_id, host, port, ntp_server.port, opts), board,
                      ota_keys.node_key(master, n.node_id).hex() if master else None)
        interp.measure_board(fleet[0].run_spec, state / ".measure")
        for n in fleet:
            n.run_spec["board_share"] = interp.board_share
            n.start()
        log("sim: %d nodes in %s, broker %s:%d, %s, %s heap %d KB (+%d KB virtual board)" % (
            nodes, state, host, port, "idle time skipped" if skip_idle else "time x%g" % time_scale,
            "32-bit" if mpy32 else "64-bit", budget // 1024, interp.board_share // 1024))
        while not stopping:
            now = time.monotonic()
            for n in fleet:
                n.check(now)
            if duration is not None and now - started >= duration:
                break
            if all(n.finished for n in fleet):
                log("sim: every node ended its run")
                break
            if watch is not None and watch.done():
                log("sim: every node drained its spool")
                break
            time.sleep(0.1)
    finally:
        for n in fleet:
            n.stop()
        if watch is not None:
            watch.stop()
        ntp_server.stop()
        for s, handler in old.items():
            signal.signal(s, handler)
    return {n.node_id: n.restarts for n in fleet}
