# `laterne monitor` as a real process against a real mosquitto, fed by a test publisher (paho)
# speaking the MQTT contract: JSON lines, the readings CSV (deduped), TLS and error exits.
import csv
import json
import os
import shutil
import signal
import subprocess
import sys

import paho.mqtt.client as paho
import pytest

import tlscerts
from host_tools.broker import Broker


LATERNE = [sys.executable, "-m", "host_tools.cli"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def publisher(port, **tls):
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-publisher")
    if tls:
        c.tls_set(ca_certs=tls["ca"])
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def send(client, topic, payload, retain=False):
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


def monitor(*args, env=None):
    return subprocess.Popen(LATERNE + ["monitor"] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, **(env or {})))


def read_until(proc, predicate):
    """Lines of JSON from the monitor until one matches (or the process ends)."""
    seen = []
    for line in proc.stdout:
        seen.append(json.loads(line))
        if predicate(seen[-1]):
            break
    return seen


def test_json_lines_and_csv_from_a_live_fleet(broker, tmp_path):
    pub = publisher(broker.port)
    send(pub, "laterne/lamp-01/status", json.dumps({"v": 1, "node": "lamp-01", "online": True,
                                                    "fw": "0.4.0", "rssi": -60, "spool_depth": 3,
                                                    "dropped": 0}), retain=True)
    send(pub, "laterne/lamp-02/status", '{"v":1,"node":"lamp-02","online":false}', retain=True)
    out_csv = tmp_path / "readings.csv"
    proc = monitor("--broker", broker.url, "--json", "--csv", str(out_csv), "--duration", "6")
    try:
        first = read_until(proc, lambda e: e.get("node") == "lamp-02" and e["type"] == "status")
        assert {"type": "status", "node": "lamp-01", "online": True, "fw": "0.4.0", "rssi": -60,
                "spool_depth": 3, "dropped": 0} in first
        batch = {"v": 1, "node": "lamp-01", "cols": ["seq", "ts", "t", "p", "h", "flags"],
                 "rows": [[41, 1800000000, 1234, 101325, 5678, 0],
                          [42, None, None, 99000, 4000, 64]]}
        send(pub, "laterne/lamp-01/readings", json.dumps(batch))
        send(pub, "laterne/lamp-01/readings", json.dumps(batch))  # redelivered batch
        send(pub, "laterne/lamp-01/readings", b"\x00garbage")
        batch["rows"] = [[43, 1800000060, 1240, 101320, 5600, 0]]
        send(pub, "laterne/lamp-01/readings", json.dumps(batch))
        rest = read_until(proc, lambda e: e.get("seq") == 43)
        proc.wait(20)
    finally:
        proc.kill()
        pub.loop_stop()
    readings = [e for e in first + rest if e["type"] == "reading"]
    assert [r["seq"] for r in readings] == [41, 42, 43]
    assert readings[0] == {"type": "reading", "node": "lamp-01", "seq": 41, "ts": 1800000000,
                           "t_c": 12.34, "p_hpa": 1013.25, "h_pct": 56.78, "flags": 0}
    assert readings[1]["t_c"] is None and readings[1]["ts"] is None
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["node", "seq", "ts", "t_c", "p_hpa", "h_pct", "flags"]
    assert [r[1] for r in rows[1:]] == ["41", "42", "43"]
    assert rows[1] == ["lamp-01", "41", "1800000000", "12.34", "1013.25", "56.78", "0"]
    assert proc.returncode == 1  # lamp-02 is offline


def test_once_prints_the_table_and_passes_when_all_are_online(broker):
    pub = publisher(broker.port)
    send(pub, "laterne/lamp-07/status", json.dumps({"v": 1, "node": "lamp-07", "online": True,
                                                    "fw": "0.4.0", "spool_depth": 0,
                                                    "dropped": 5, "rssi": -70}), retain=True)
    pub.loop_stop()
    proc = monitor("--broker", broker.url, "--once")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.strip().splitlines()
    assert "node(s)" in lines[0] and lines[1].startswith("node")
    assert "lamp-07" in lines[2] and "online" in lines[2] and "0.4.0" in lines[2]
    assert "\x1b[" not in out  # not a terminal: no colour codes


def test_tls_broker_needs_the_right_ca():
    certs = tlscerts.make_for_broker()
    with Broker(kind="mosquitto", tls=(certs["ca"], certs["cert"], certs["key"])) as b:
        pub = publisher(b.port, ca=str(certs["ca"]))
        send(pub, "laterne/lamp-09/status", '{"v":1,"node":"lamp-09","online":true}', retain=True)
        pub.loop_stop()
        ok = monitor("--broker", b.url, "--cafile", str(certs["ca"]), "--once")
        out, err = ok.communicate(timeout=30)
        assert ok.returncode == 0, err
        assert "lamp-09" in out
        bad = monitor("--broker", b.url, "--cafile", str(certs["other_ca"]), "--once")
        out, err = bad.communicate(timeout=30)
        assert bad.returncode == 2
        assert "not trusted" in err and "--cafile" in err and "Traceback" not in err
    shutil.rmtree(certs["ca"].parent)


def test_unreachable_broker_is_a_clear_error():
    from host_tools.broker import free_port
    proc = monitor("--broker", "mqtt://127.0.0.1:%d" % free_port(), "--once",
                   "--username", "ops", env={"LATERNE_MQTT_PASSWORD": "s3cret-pw"})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "cannot reach the broker" in err and "hint:" in err and "Traceback" not in err
    assert "s3cret-pw" not in out + err


def test_monitor_reconnects_after_a_broker_restart(broker):
    pub = publisher(broker.port)
    send(pub, "laterne/lamp-04/status", '{"v":1,"node":"lamp-04","online":true}', retain=True)
    proc = monitor("--broker", broker.url, "--json")
    try:
        assert read_until(proc, lambda e: e.get("node") == "lamp-04")[-1]["online"] is True
        broker.restart()  # same port, retained messages gone (no persistence)
        pub.loop_stop()
        pub = publisher(broker.port)
        send(pub, "laterne/lamp-05/status", '{"v":1,"node":"lamp-05","online":true}', retain=True)
        # delivered only if the monitor reconnected and subscribed again
        assert read_until(proc, lambda e: e.get("node") == "lamp-05")[-1]["type"] == "status"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        pub.loop_stop()
    assert proc.returncode == 130 and "Traceback" not in err
