# Starts `laterne virtual-board` as its own process (the real command, real pty, real
# MicroPython) for the deploy/configure/check/provision tests, and stops it with SIGTERM.
import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
SECRETS = {"LATERNE_WIFI_SSID": "depot-net", "LATERNE_WIFI_PASSWORD": "wifi-Secret-8311",
           "LATERNE_MQTT_USERNAME": "lamp-user", "LATERNE_MQTT_PASSWORD": "mqtt-Secret-4417"}
# what must never be shown (laterne.configschema.SECRET_KEYS); the SSID is not a secret
SECRET_VALUES = ("wifi-Secret-8311", "lamp-user", "mqtt-Secret-4417")
SITE = {"broker": {"host": "127.0.0.1", "port": 1883}, "topic_prefix": "laterne",
        "ntp_servers": ["pool.ntp.org"], "sample_interval_s": 60, "upload_interval_s": 300}
INVENTORY = ("node_id,lamp_post,lat,lon,board,notes\n"
             "lp-0001,LP-17,52.5200,13.4050,esp32-devkitc,corner of Main St\n"
             "lp-0002,LP-18,52.5210,13.4060,esp32-c3-devkitm,\n")


class Board:
    def __init__(self, pty, state, proc):
        self.pty, self.state, self.proc = str(pty), Path(state), proc
        self.fs = self.state / "fs"
        self.output = []

    def child_pids(self):
        """Pids of the MicroPython processes the board reported starting."""
        return [int(m) for line in self.output for m in re.findall(r"pid (\d+)", line)]


@contextmanager
def running_board(tmp_path, sensor=True, node_id="vb-test", state=None, extra=()):
    pty = tmp_path / ("board-%s.pty" % node_id)
    state = state or tmp_path / "state"
    cmd = [sys.executable, "-m", "host_tools.cli", "virtual-board", "--pty", str(pty),
           "--state", str(state), "--node-id", node_id]
    if not sensor:
        cmd.append("--no-sensor")
    cmd += list(extra)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    board = Board(pty, state, proc)
    deadline = time.monotonic() + 20
    while not pty.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("virtual board did not start: %s" % proc.stdout.read())
        time.sleep(0.05)
    try:
        yield board
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        board.output = out.splitlines()


@pytest.fixture
def vboard(tmp_path):
    with running_board(tmp_path) as b:
        yield b


@pytest.fixture
def vboard_nosensor(tmp_path):
    with running_board(tmp_path, sensor=False) as b:
        yield b


def write_inputs(tmp_path, site=None, secrets=None):
    """site.json, fleet.csv and a private secrets file; returns their paths."""
    site_path = tmp_path / "site.json"
    site_path.write_text(json.dumps(SITE if site is None else site))
    inv = tmp_path / "fleet.csv"
    inv.write_text(INVENTORY)
    sec = tmp_path / "secrets.env"
    sec.write_text("".join("%s=%s\n" % kv for kv in (secrets or SECRETS).items()))
    os.chmod(sec, 0o600)
    return site_path, inv, sec


def laterne(*args, env=None, timeout=120):
    """Run the real `laterne` command; returns CompletedProcess (text)."""
    e = dict(os.environ)
    for k in SECRETS:
        e.pop(k, None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "host_tools.cli"] + [str(a) for a in args],
                          cwd=REPO, capture_output=True, text=True, timeout=timeout, env=e)
