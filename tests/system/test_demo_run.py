# `make demo` as a user runs it (through make, with a short DURATION, and stopped with Ctrl-C),
# and its recorder against both brokers the demo may use.
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from host_tools.broker import Broker
from host_tools.demo.procs import alive
from host_tools.demo.recorder import Recorder
from host_tools.demo.run import SCALE

ROOT = Path(__file__).resolve().parent.parent.parent
PY = sys.executable
T0 = 1795000000  # a virtual Unix time


def reading_msg(node, rows):
    return json.dumps({"v": 1, "node": node, "cols": ["seq", "ts", "t", "p", "h", "flags"],
                       "rows": rows})


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])  # the demo uses amqtt without mosquitto
def test_recorder_collects_readings_and_status_from_a_broker(kind):
    with Broker(kind=kind) as broker:
        _recorder_against(broker)


def _recorder_against(broker):
    heard = []
    rec = Recorder("127.0.0.1", broker.port, client_id="test-recorder",
                   listener=lambda topic, payload: heard.append(topic)).start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        msgs = [("laterne/lamp-001/readings", reading_msg("lamp-001", [[0, T0, 1, 2, 3, 0],
                                                                        [1, T0 + 60, 1, 2, 3, 0]])),
                ("laterne/lamp-001/readings", reading_msg("lamp-001", [[1, T0 + 60, 1, 2, 3, 0]])),
                ("laterne/lamp-002/readings", reading_msg("lamp-002", [[7, None, 5, 6, 7, 64]])),
                ("laterne/lamp-002/readings", "garbage"),
                ("other/lamp-003/readings", reading_msg("lamp-003", [[0, T0, 1, 2, 3, 0]]))]
        for topic, payload in msgs:
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        pub.publish("laterne/lamp-001/status", json.dumps({"v": 1, "node": "lamp-001",
                                                            "online": True}), 1, True)
        pub.publish("laterne/lamp-002/status", json.dumps({"v": 1, "node": "lamp-002",
                                                            "online": False}), 1, True
                    ).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (rec.store.rejected < 1 or len(heard) < 6):
            time.sleep(0.05)
    finally:
        pub.loop_stop()
        pub.disconnect()
        rec.stop()
    assert [(r["node"], r["seq"]) for r in rec.store.rows()] == [
        ("lamp-001", 0), ("lamp-001", 1), ("lamp-002", 7)]
    assert rec.store.duplicates == 1 and rec.store.rejected == 1
    assert sorted(heard) == ["laterne/lamp-001/readings"] * 2 + ["laterne/lamp-001/status"] + \
        ["laterne/lamp-002/readings"] * 2 + ["laterne/lamp-002/status"]


def _cmdlines_mentioning(text):
    hits = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if text.encode() in f.read() and alive(int(pid)):
                    hits.append(int(pid))
        except OSError:
            pass
    return hits


def test_make_demo_runs_the_fleet_through_an_outage_and_cleans_up(tmp_path):
    nodes = 3
    out = tmp_path / "demo"
    p = subprocess.run(["make", "demo", "DURATION=75", "NODES=%d" % nodes], cwd=ROOT,
                       capture_output=True, text=True, timeout=400,
                       env=dict(os.environ, LATERNE_DEMO_OUT=str(out)))
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-3000:]
    assert "loses its network" in log and "network back" in log
    assert "Traceback" not in log
    # the ingest ran too: the database holds every node's seqs 1..last once
    assert "database: every reading once" in log
    from host_tools.ingest import db
    with db.open_db("sqlite:///%s" % (out / "laterne.db"), create=False) as database:
        counts, stored = database.node_counts(), database.watermarks()
    for i in range(nodes):
        node = "lamp-%03d" % (i + 1)
        n, lo, hi = counts[node]
        assert (n, lo) == (hi, 1) and re.search(r"^%s\s+%d\s+1-%d\s+\d+ 1-%d, match$"
                                                % (node, n, n, n), log, re.M), node
        assert stored[node] > 10

    run = json.loads((out / "run.json").read_text())
    rows = list(csv.DictReader(open(out / "readings.csv")))
    by_node = {}
    for r in rows:
        by_node.setdefault(r["node"], []).append(r)
    assert sorted(by_node) == ["lamp-%03d" % (i + 1) for i in range(nodes)]
    for node, rs in by_node.items():
        assert len(rs) > 10, node
        seqs = sorted(int(r["seq"]) for r in rs)
        assert seqs == list(range(seqs[0], seqs[-1] + 1)), "seq gap at %s" % node
        values = [(float(r["t_c"]), float(r["p_hpa"]), float(r["h_pct"])) for r in rs]
        assert len(set(values)) > 1, "%s readings do not change" % node
        assert all(-40 < t < 50 and 800 < p_ < 1100 and 0 <= h <= 100
                   for t, p_, h in values), node

    # the outage node: nothing arrived while its link was down, and what it sampled meanwhile
    # arrived after the link came back (its seqs continue without a gap, checked above)
    outage = run["outage"]
    down, up = outage["down_host"], outage["up_host"]
    assert down < up
    mine = [r for r in by_node[outage["node"]] if r["ts"]]
    assert not [r for r in mine if down + 2 < float(r["received"]) < up], \
        "readings arrived while the link was down"
    last_before = max(int(r["ts"]) for r in mine if float(r["received"]) <= down + 2)
    offline_end = last_before + (up - down) * SCALE  # virtual time when the link returned
    backlog = [r for r in mine if float(r["received"]) >= up
               and last_before < int(r["ts"]) < offline_end]
    assert len(backlog) >= 5, "the backlog taken offline was not delivered"
    assert any(int(r["ts"]) > offline_end for r in mine), "no reading after the outage"

    import matplotlib.image as mpimg
    img = mpimg.imread(str(out / "readings.png"))
    assert img.shape[0] > 400 and img.shape[1] > 600
    assert len({tuple(px[:3]) for px in img.reshape(-1, img.shape[2])[::7]}) > 10

    # nothing left behind: by the pids it recorded, by its state folder, by the port
    pids = [run["pids"]["sim"], run["pids"]["ingest"], run["broker_pid"]] + run["node_pids"]
    assert run["node_pids"] and run["broker_pid"]
    assert [pid for pid in pids if alive(pid)] == []
    assert _cmdlines_mentioning(run["state"]) == []
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", run["broker_port"]))


def test_ctrl_c_stops_the_demo_cleanly_and_keeps_what_it_saw(tmp_path):
    out = tmp_path / "demo"
    log = tmp_path / "stdout"
    with open(log, "w") as f:
        p = subprocess.Popen([PY, "-m", "host_tools.demo", "--nodes", "2"], cwd=ROOT,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                             env=dict(os.environ, LATERNE_DEMO_OUT=str(out)))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not re.search(
                r"^lamp-002\s+online\s+\d", log.read_text(), re.M):
            assert p.poll() is None, log.read_text()
            time.sleep(0.5)
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C on the terminal does
        assert p.wait(60) == 0, log.read_text()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    text = log.read_text()
    assert "stopping the fleet" in text and "Traceback" not in text
    nodes = {r["node"] for r in csv.DictReader(open(out / "readings.csv"))}
    assert nodes == {"lamp-001", "lamp-002"}
    run = json.loads((out / "run.json").read_text())
    assert [pid for pid in [run["pids"]["sim"], run["broker_pid"]] + run["node_pids"]
            if alive(pid)] == []
    assert _cmdlines_mentioning(run["state"]) == []
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", run["broker_port"]))
