# `laterne ingest` in a subprocess for system tests and benches, and a paho publisher that
# plays nodes sending readings batches.
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent.parent
COLS = ["seq", "ts", "t", "p", "h", "flags"]


class IngestProc:
    """`laterne ingest --broker URL --db URL ...`; its output goes to `log_path`."""

    def __init__(self, broker_url, db_url, log_path, extra=(), env=None):
        self.cmd = [sys.executable, "-m", "host_tools.cli", "ingest", "--broker", broker_url,
                    "--db", db_url, "--progress", "1"] + list(extra)
        self.log_path = Path(log_path)
        self.env = env
        self.proc = None
        self.start()

    def start(self):
        self._log = open(self.log_path, "ab")
        self._since = self._log.tell()  # wait_for looks at what this run printed
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, **(self.env or {})))
        self.wait_for("Ctrl-C stops", 30)
        return self

    def output(self):
        return self.log_path.read_text(errors="replace")

    def _this_run(self):
        with open(self.log_path, "rb") as f:
            f.seek(self._since)
            return f.read().decode(errors="replace")

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while text not in self._this_run():
            if self.proc.poll() is not None:
                raise AssertionError("ingest exited (%s):\n%s" % (self.proc.returncode,
                                                                   self.output()[-3000:]))
            if time.monotonic() > deadline:
                raise AssertionError("ingest never said %r:\n%s" % (text, self.output()[-3000:]))
            time.sleep(0.05)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self, timeout=20):
        """SIGTERM (a clean stop); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def batch_json(node, seqs, t0=None):
    t0 = int(time.time()) - 86400 if t0 is None else t0
    rows = [[s, t0 + 60 * s, 2000 + s % 500, 100000 + s % 900, 5000 + s % 300, 0] for s in seqs]
    return json.dumps({"v": 1, "node": node, "cols": COLS, "rows": rows},
                      separators=(",", ":"))


class Publisher:
    """A paho client publishing readings batches with QoS 1 (several in flight)."""

    def __init__(self, port, client_id, username=None, password=None, inflight=100):
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if username:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(inflight)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, node, seqs, prefix="laterne", t0=None):
        return self.client.publish("%s/%s/readings" % (prefix, node), batch_json(node, seqs, t0), 1)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()
