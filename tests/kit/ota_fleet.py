# Helpers for the fleet proofs of updates over the air: bundles built by the real `laterne
# ota build` from a firmware copy (good, or broken on purpose), the real `laterne ota push`
# in a subprocess, a watcher of the update topics, and per-reading arrival times for
# delay checks against the simulated world's clock.
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from virtual_fleet import ROOT, Collector

FIRMWARE = ROOT / "firmware"


def laterne(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "host_tools.cli"] + [str(a) for a in args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def build(tmp_path, version, patch=None):
    """`laterne ota build` of a firmware copy; patch(lib_dir) may break it first."""
    fw = tmp_path / ("fw-" + version)
    shutil.copytree(FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    if patch:
        patch(fw / "lib" / "laterne")
    out = tmp_path / ("bundle-%s.zip" % version)
    run = laterne("ota", "build", "--out", out, "--firmware", fw, "--version", version)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def every_file_changed(lib):
    """One more global in every module: each compiled file differs (a comment or a shifted
    line would not: deploy compiles without line numbers), so nothing can be copied from the
    running app and the whole app travels."""
    for path in lib.rglob("*.py"):
        path.write_text(path.read_text() + "\n_ota_test_build = 1\n")


def edit(path, old, new):
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


class Push:
    """`laterne ota push` running in the background."""

    def __init__(self, broker_url, bundle, keys, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host_tools.cli", "ota", "push", "--broker", broker_url,
             "--bundle", str(bundle), "--keys", str(keys)] + [str(a) for a in args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError("push still running after %d s:\n%s" % (timeout, out))
        return self.proc.returncode, out


def table(out):
    """{node: (outcome, reason)} from the push's final table."""
    lines = out.splitlines()
    head = max(i for i, line in enumerate(lines) if line.startswith("node "))
    cols = [lines[head].index(c) for c in ("outcome", "reason")]
    rows = {}
    for line in lines[head + 1:]:
        if line.strip():
            rows[line.split()[0]] = (line[cols[0]:cols[1]].strip(), line[cols[1]:].strip())
    return rows


class Watch:
    """Every message on the update and status topics in the order one subscriber got them
    (the broker forwards in the order it received them); `on_get(node, n)` is called for a
    node's n-th request."""

    def __init__(self, port, prefix="laterne", on_get=None):
        self.messages = []  # (time, topic, payload)
        self.gets = {}
        self.on_get = on_get
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(prefix + "/+/ota/offer", 1), (prefix + "/+/ota/get", 0), (prefix + "/+/status", 1)])
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.lock:
            self.messages.append((time.time(), msg.topic, msg.payload))
        node = msg.topic.split("/")[-3]
        if msg.topic.endswith("/get"):
            self.gets[node] = self.gets.get(node, 0) + 1
            if self.on_get:
                self.on_get(node, self.gets[node])

    def offers(self, node):
        """(index, offer dict) of each non-empty offer published to `node`."""
        with self.lock:
            return [(i, json.loads(m[2])) for i, m in enumerate(self.messages)
                    if m[1].endswith("/%s/ota/offer" % node) and m[2]]

    def first_status(self, node, predicate):
        """Index of the first status of `node` for which predicate(status) holds."""
        with self.lock:
            for i, (t, topic, payload) in enumerate(self.messages):
                if topic.endswith("/%s/status" % node) and payload:
                    if predicate(json.loads(payload)):
                        return i
        return None

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


class TimedCollector(Collector):
    """A Collector that also keeps when each (node, seq) first arrived (host time)."""

    def __init__(self, port, prefix="laterne"):
        self.first = {}  # (node, seq) -> (host time, ts)
        Collector.__init__(self, port, prefix)

    def _on_message(self, client, userdata, msg):
        Collector._on_message(self, client, userdata, msg)
        if not msg.topic.endswith("/readings"):
            return
        now = time.time()
        try:
            data = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            for row in data["rows"]:
                self.first.setdefault((data["node"], row[0]), (now, row[1]))


def world_clock(state, node_id):
    """host time -> the simulated world's Unix time, from the node's run.json."""
    run = json.loads((Path(state) / node_id / "run.json").read_text())
    return lambda host: run["epoch_unix"] + (host * 1e9 - run["epoch_host_ns"]) * run["scale"] / 1e9


def statuses(collector, node):
    with collector.lock:
        return [s for s in collector.status.get(node, []) if s.get("online")]
