# Test helpers for running `laterne sim` against a real broker and checking what arrived:
# a subprocess fleet and an MQTT collector (the link-cutting proxy is mqtt_helpers.Proxy).
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent.parent


class Fleet:
    """`laterne sim` in a subprocess; stop() leaves no process behind."""

    def __init__(self, state, broker_url, nodes=1, extra=()):
        self.state = Path(state)
        self.state.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "host_tools.cli", "sim", "--nodes", str(nodes),
               "--broker", broker_url, "--state", str(self.state)] + list(extra)
        self.log = open(self.state.parent / ("%s-sim.log" % self.state.name), "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def pid(self, node_id, timeout=20):
        path = self.state / node_id / "pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return int(path.read_text())
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
        raise TimeoutError("no pid for %s" % node_id)

    def power_cut(self, node_id):
        os.kill(self.pid(node_id), signal.SIGKILL)

    def set_link(self, node_id, up):
        (self.state / node_id / "link").write_text("up" if up else "down")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def console(self, node_id):
        try:
            return (self.state / node_id / "console.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""


class Collector:
    """Subscribes to everything under the prefix and keeps it for assertions."""

    def __init__(self, port, prefix="laterne"):
        self.prefix = prefix
        self.rows = {}        # node -> list of row dicts (every delivery, duplicates kept)
        self.status = {}      # node -> list of status dicts in arrival order
        self.results = []     # config/result payloads
        self.messages = {}    # node -> number of readings messages
        self.arrivals = {}    # node -> [monotonic time of first, of last readings message]
        self.garbage = []
        self.lock = threading.RLock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(prefix + "/#", 1)
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        parts = msg.topic.split("/")
        try:
            data = json.loads(msg.payload)
        except ValueError:
            self.garbage.append(msg.payload)
            return
        with self.lock:
            if parts[-1] == "readings":
                self.messages[data["node"]] = self.messages.get(data["node"], 0) + 1
                span = self.arrivals.setdefault(data["node"], [time.monotonic(), 0])
                span[1] = time.monotonic()
                cols = data["cols"]
                for row in data["rows"]:
                    self.rows.setdefault(data["node"], []).append(dict(zip(cols, row)))
            elif parts[-1] == "status":
                self.status.setdefault(parts[1], []).append(data)
            elif parts[-1] == "result":
                self.results.append(data)

    def seqs(self, node):
        with self.lock:
            return sorted({r["seq"] for r in self.rows.get(node, [])})

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return
            time.sleep(0.2)
        raise AssertionError("timed out waiting for " + what)

    def publish(self, topic, payload, qos=1, retain=False):
        self.client.publish(topic, payload, qos, retain).wait_for_publish(5)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def assert_no_gaps(seqs):
    assert seqs, "no readings"
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), "seq gaps: %s" % sorted(
        set(range(seqs[0], seqs[-1] + 1)) - set(seqs))
