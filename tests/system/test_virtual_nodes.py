# The unmodified firmware on virtual nodes (MicroPython unix port) against a real mosquitto:
# normal operation, broker restarts, a black-holed link, power cuts, unknown time, remote
# configuration and a broker that sends garbage. The invariants are the MQTT contract's:
# per node, delivered seqs have no gaps, every sampled reading arrives at least once,
# timestamps are right or null-and-flagged, status and last will tell the truth.
import json
import random
import socket
import threading
import time

import pytest

from virtual_fleet import Collector, Fleet, assert_no_gaps
from mqtt_helpers import Proxy
from laterne import flags



SCALE = 30  # one virtual minute every two real seconds
FAST = ["--time-scale", str(SCALE), "--sample-interval", "60", "--upload-interval", "120"]


@pytest.fixture
def collector(broker):
    c = Collector(broker.port)
    yield c
    c.stop()


def run_fleet(tmp_path, url, nodes=1, extra=FAST):
    return Fleet(tmp_path / "state", url, nodes, extra)


def check_timestamps(rows, started_unix, ended_unix):
    for r in rows:
        if r["ts"] is None:
            assert r["flags"] & flags.TIME_UNKNOWN, r
        else:
            assert not r["flags"] & flags.TIME_UNKNOWN, r
            assert started_unix - 60 <= r["ts"] <= ended_unix + 60, (r, started_unix, ended_unix)


def world_span(started_real):
    """Unix range of the simulated world since `started_real` (the sim's epoch is its start)."""
    return started_real, started_real + (time.time() - started_real) * SCALE


def test_fleet_delivers_every_reading_in_order(tmp_path, broker, collector):
    started = time.time()
    fleet = run_fleet(tmp_path, broker.url, nodes=2)
    try:
        collector.wait(lambda: all(len(collector.seqs(n)) >= 6 for n in ("lamp-001", "lamp-002")),
                       90, "six readings from each node")
        collector.wait(lambda: all(any(s.get("online") for s in collector.status.get(n, []))
                                   for n in ("lamp-001", "lamp-002")), 30, "online status")
    finally:
        fleet.stop()
    lo, hi = world_span(started)
    for node in ("lamp-001", "lamp-002"):
        seqs = collector.seqs(node)
        assert_no_gaps(seqs)
        assert seqs[0] == 1
        rows = collector.rows[node]
        check_timestamps(rows, lo, hi)
        assert all(r["ts"] is not None for r in rows[1:]), "time was known from NTP"
        for r in rows:
            assert -4000 < r["t"] < 5000 and 90000 < r["p"] < 110000 and 0 <= r["h"] <= 10000
        status = [s for s in collector.status[node] if s.get("online")][-1]
        for key in ("fw", "uptime_s", "reset_cause", "free_heap", "rssi", "spool_depth",
                    "dropped", "sensor", "last_error", "time_synced"):
            assert key in status, key
        assert status["sensor"] == "ok" and status["time_synced"] is True
        assert "password" not in json.dumps(collector.status[node])


def test_broker_restart_loses_nothing(tmp_path, broker, collector):
    fleet = run_fleet(tmp_path, broker.url)
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 3, 60, "first readings")
        collector.stop()
        broker.stop()
        time.sleep(8)  # four virtual minutes without a broker
        broker.start()
        fresh = Collector(broker.port)
        try:
            # readings from before the outage may come again (at-least-once); count both
            fresh.wait(lambda: len(fresh.seqs("lamp-001")) >= 6, 90, "backlog after restart")
            seqs = sorted(set(collector.seqs("lamp-001")) | set(fresh.seqs("lamp-001")))
        finally:
            fresh.stop()
    finally:
        fleet.stop()
    assert_no_gaps(seqs)
    assert seqs[0] == 1 and len(seqs) >= 6


def test_black_holed_link_is_detected_and_rebuilt(tmp_path, broker, collector):
    proxy = Proxy(broker.port)
    try:
        fleet = run_fleet(tmp_path, "mqtt://127.0.0.1:%d" % proxy.port)
        try:
            collector.wait(lambda: len(collector.seqs("lamp-001")) >= 2, 60, "first readings")
            proxy.black_hole()
            before = len(collector.seqs("lamp-001"))
            time.sleep(10)  # five virtual minutes of a link that swallows everything
            assert len(collector.seqs("lamp-001")) == before
            proxy.restore()
            collector.wait(lambda: len(collector.seqs("lamp-001")) >= before + 4, 90,
                           "readings sampled during the black hole")
        finally:
            fleet.stop()
    finally:
        proxy.close()
    assert_no_gaps(collector.seqs("lamp-001"))


def test_power_cuts_at_random_moments_lose_nothing(tmp_path, broker, collector):
    rng = random.Random(7)
    fleet = run_fleet(tmp_path, broker.url)
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 2, 60, "first readings")
        for _ in range(3):
            time.sleep(rng.uniform(0.5, 4.0))
            fleet.power_cut("lamp-001")
            time.sleep(0.2)
        collector.wait(lambda: any(not s.get("online") for s in collector.status.get("lamp-001", [])),
                       30, "last will after a power cut")
        top = max(collector.seqs("lamp-001"))
        collector.wait(lambda: max(collector.seqs("lamp-001")) >= top + 4, 120,
                       "readings after the power cuts")
        collector.wait(lambda: collector.status["lamp-001"][-1].get("online") is True, 60,
                       "online again")
    finally:
        fleet.stop()
    assert_no_gaps(collector.seqs("lamp-001"))
    causes = {s.get("reset_cause") for s in collector.status["lamp-001"] if s.get("online")}
    assert "power_on" in causes


def test_time_unknown_at_boot_is_published_null_and_flagged(tmp_path, broker, collector):
    """No NTP answers: the node keeps sampling; readings carry ts null and the flag."""
    fleet = run_fleet(tmp_path, broker.url, extra=FAST + ["--no-ntp"])
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 4, 90, "readings without time")
    finally:
        fleet.stop()
    rows = collector.rows["lamp-001"]
    assert all(r["ts"] is None and r["flags"] & flags.TIME_UNKNOWN for r in rows)
    assert_no_gaps(collector.seqs("lamp-001"))
    online = [s for s in collector.status["lamp-001"] if s.get("online")]
    assert online and all(s["time_synced"] is False for s in online)


def test_remote_config_valid_applied_invalid_rejected(tmp_path, broker, collector):
    fleet = run_fleet(tmp_path, broker.url)
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 1, 60, "first reading")
        topic = "laterne/lamp-001/config/set"
        collector.publish(topic, json.dumps({"id": "r1", "set": {"wifi": []}}))
        collector.publish(topic, b"\xff not json")
        collector.publish(topic, json.dumps({"id": "r3", "set": {"sample_interval_s": 5}}))
        collector.publish(topic, json.dumps({"id": "r4", "set": {"sample_interval_s": 120}}))
        collector.wait(lambda: len(collector.results) >= 4, 60, "four config results")
    finally:
        fleet.stop()
    by_id = {r.get("id"): r for r in collector.results}
    assert by_id["r1"]["ok"] is False and "wifi" in json.dumps(by_id["r1"]["errors"])
    assert by_id["r3"]["ok"] is False and "sample_interval_s" in json.dumps(by_id["r3"]["errors"])
    assert by_id["r4"]["ok"] is True
    assert any(r.get("ok") is False and r.get("id") is None for r in collector.results)
    stored = json.loads((tmp_path / "state" / "lamp-001" / "config.json").read_text())
    assert stored["sample_interval_s"] == 60  # the supervisor's copy is untouched ...
    # ... while the node's own flash holds the new value: it survives a power cut
    fleet2 = run_fleet(tmp_path, broker.url)
    try:
        collector.wait(lambda: collector.status["lamp-001"][-1].get("online") is True, 60, "back")
    finally:
        fleet2.stop()


class GarbageBroker(threading.Thread):
    """Accepts MQTT connections and answers with junk bytes."""

    def __init__(self):
        threading.Thread.__init__(self, daemon=True)
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(8)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self.running = True

    def run(self):
        rng = random.Random(3)
        while self.running:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self.accepted += 1
            try:
                conn.recv(1024)
                junk = [b"\x20\xff\xff\xff\xff\x7f", b"\xf0\x00", bytes(rng.getrandbits(8) for _ in range(64))]
                conn.sendall(junk[self.accepted % 3])
                time.sleep(0.2)
            except OSError:
                pass
            conn.close()

    def stop(self):
        self.running = False
        self.server.close()


def test_broker_garbage_never_crashes_the_node(tmp_path, broker, collector):
    garbage = GarbageBroker()
    garbage.start()
    proxy_port = garbage.port
    try:
        fleet = run_fleet(tmp_path, "mqtt://127.0.0.1:%d" % proxy_port)
        try:
            deadline = time.monotonic() + 60
            while garbage.accepted < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert garbage.accepted >= 3, "the node kept retrying"
        finally:
            fleet.stop()
    finally:
        garbage.stop()
    console = fleet.console("lamp-001")
    assert "Traceback" not in console, console[-2000:]
    # the same flash, now with a real broker: everything sampled meanwhile arrives
    state = tmp_path / "state"
    for node_dir in state.glob("lamp-*"):
        cfg = json.loads((node_dir / "config.json").read_text())
        assert cfg["broker"]["port"] == proxy_port
    fleet = run_fleet(tmp_path, broker.url)
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 4, 90, "readings after garbage")
    finally:
        fleet.stop()
    seqs = collector.seqs("lamp-001")
    assert seqs[0] == 1
    assert_no_gaps(seqs)


@pytest.mark.parametrize("rtc_fast_path", [False, True])
def test_deep_sleep_nodes_batch_uploads_and_leave_cleanly(tmp_path, broker, collector,
                                                          rtc_fast_path):
    """With the RTC fast path, readings wait in RTC memory across sleeps: still none lost."""
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"rtc_fast_path": rtc_fast_path}))
    fleet = run_fleet(tmp_path, broker.url, extra=[
        "--time-scale", str(SCALE), "--sample-interval", "60", "--upload-interval", "300",
        "--deep-sleep", "--config", str(patch)])
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 10, 90, "ten readings")
    finally:
        fleet.stop()
    assert_no_gaps(collector.seqs("lamp-001"))
    causes = [s.get("reset_cause") for s in collector.status["lamp-001"] if s.get("online")]
    assert "deep_sleep" in causes
    # DISCONNECT before every sleep: the broker never fired the last will while it ran
    statuses = collector.status["lamp-001"]
    assert all(s.get("online") for s in statuses[:-1]), statuses
    # a reading per wake, an upload every fifth wake or so: several readings per message
    assert collector.messages["lamp-001"] * 2 <= len(collector.rows["lamp-001"])


def test_crash_loop_enters_safe_mode_then_reports_the_crash(tmp_path, broker, collector):
    """A firmware bug crashes the main loop at three boots in a row: the node enters safe
    mode (radio off, still sampling), leaves it after safe_s, and publishes the traceback."""
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"safe_mode": {"crashes": 3, "window_s": 600, "safe_s": 60}}))
    (tmp_path / "state" / "lamp-001").mkdir(parents=True)
    (tmp_path / "state" / "lamp-001" / "fault").write_text("crash 3\n")
    fleet = run_fleet(tmp_path, broker.url, extra=FAST + ["--config", str(patch)])
    try:
        collector.wait(lambda: any(s.get("crash") for s in collector.status.get("lamp-001", [])),
                       120, "status carrying the crash report")
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 3, 60, "readings")
    finally:
        fleet.stop()
    console = fleet.console("lamp-001")
    assert console.count("injected fault") >= 3
    assert "safe mode: crash loop detected" in console
    report = [s for s in collector.status["lamp-001"] if s.get("crash")][0]
    assert "injected fault" in report["crash"]
    assert report["safe_mode"] is False and report["reset_cause"] == "hard"
    assert_no_gaps(collector.seqs("lamp-001"))
    # the crash report is published once, not with every status
    later = collector.status["lamp-001"][collector.status["lamp-001"].index(report) + 1:]
    assert not any(s.get("crash") for s in later)


def test_corrupt_config_falls_back_to_the_last_good_copy(tmp_path, broker, collector):
    fleet = run_fleet(tmp_path, broker.url)
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 2, 60, "first readings")
    finally:
        fleet.stop()
    (tmp_path / "state" / "lamp-001" / "fault").write_text("corrupt-config\n")
    fleet = run_fleet(tmp_path, broker.url)
    try:
        collector.wait(lambda: any(s.get("config_source") == "backup"
                                   for s in collector.status["lamp-001"]), 60,
                       "status reporting the backup config")
        top = max(collector.seqs("lamp-001"))
        collector.wait(lambda: max(collector.seqs("lamp-001")) >= top + 2, 60, "more readings")
    finally:
        fleet.stop()
    assert_no_gaps(collector.seqs("lamp-001"))
    assert "config" in fleet.console("lamp-001")


def test_no_usable_config_keeps_sampling_offline(tmp_path, broker, collector):
    """A node whose only config is garbage never goes online, says why on its console, and
    keeps every reading; once configured, the backlog arrives."""
    (tmp_path / "state" / "lamp-001").mkdir(parents=True)
    (tmp_path / "state" / "lamp-001" / "fault").write_text("corrupt-config\ncorrupt-backup\n")
    fleet = run_fleet(tmp_path, broker.url)
    try:
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline and "no usable config" not in fleet.console("lamp-001"):
            time.sleep(0.5)
        time.sleep(6)  # three virtual minutes offline
    finally:
        fleet.stop()
    assert "no usable config" in fleet.console("lamp-001")
    assert not collector.seqs("lamp-001")
    fleet = run_fleet(tmp_path, broker.url)
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 4, 60, "offline backlog")
    finally:
        fleet.stop()
    seqs = collector.seqs("lamp-001")
    assert seqs[0] == 1
    assert_no_gaps(seqs)


@pytest.fixture
def tls_files():
    import shutil

    import tlscerts
    files = tlscerts.make_for_broker()
    yield files
    shutil.rmtree(files["ca"].parent, ignore_errors=True)


def test_tls_with_the_right_ca_delivers_and_a_wrong_ca_is_refused(tmp_path, tls_files, collector):
    from host_tools.broker import Broker
    with Broker(kind="mosquitto", tls=(tls_files["ca"], tls_files["cert"], tls_files["key"])) as tls:
        url = "mqtts://127.0.0.1:%d" % tls.port
        # the plain collector listens on the other broker: bridge by subscribing here too
        import paho.mqtt.client as mqtt
        seen = []
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        sub.tls_set(ca_certs=str(tls_files["ca"]))
        sub.on_message = lambda c, u, m: seen.append(m.topic)
        sub.on_connect = lambda c, u, f, rc, p: c.subscribe("laterne/#", 1)
        sub.connect("127.0.0.1", tls.port)
        sub.loop_start()
        try:
            good = run_fleet(tmp_path / "good", url, extra=FAST + ["--cafile", str(tls_files["ca"])])
            try:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and "laterne/lamp-001/readings" not in seen:
                    time.sleep(0.3)
            finally:
                good.stop()
            assert "laterne/lamp-001/readings" in seen
            seen.clear()
            bad = run_fleet(tmp_path / "bad", url,
                            extra=FAST + ["--cafile", str(tls_files["other_ca"])])
            try:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and "trusted" not in bad.console("lamp-001"):
                    time.sleep(0.3)
            finally:
                bad.stop()
            assert not any(t.endswith("/readings") for t in seen)
            assert "not trusted by the configured CA" in bad.console("lamp-001")
        finally:
            sub.loop_stop()
            sub.disconnect()


def test_monitor_follows_the_virtual_fleet(tmp_path, broker, collector):
    """`laterne monitor --json --csv` against nodes running the real firmware."""
    import subprocess
    import sys

    from virtual_fleet import ROOT
    fleet = run_fleet(tmp_path, broker.url, nodes=2)
    try:
        collector.wait(lambda: all(len(collector.seqs(n)) >= 2 for n in ("lamp-001", "lamp-002")),
                       60, "readings from both nodes")
        csv_path = tmp_path / "readings.csv"
        out = subprocess.run(
            [sys.executable, "-m", "host_tools.cli", "monitor", "--broker", broker.url, "--json",
             "--csv", str(csv_path), "--duration", "6"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        fleet.stop()
    events = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    status = {e["node"]: e for e in events if e["type"] == "status" and e.get("online")}
    assert set(status) == {"lamp-001", "lamp-002"}, out.stdout[-2000:] + out.stderr[-2000:]
    readings = [e for e in events if e["type"] == "reading"]
    assert {r["node"] for r in readings} == {"lamp-001", "lamp-002"}
    for r in readings:  # the monitor's units against the node's wire units
        wire = next(x for x in collector.rows[r["node"]] if x["seq"] == r["seq"])
        assert abs(r["t_c"] - wire["t"] / 100) < 1e-9 and abs(r["h_pct"] - wire["h"] / 100) < 1e-9
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("node,seq,ts") and len(rows) - 1 == len(
        {(r["node"], r["seq"]) for r in readings})
    assert out.returncode == 0, out.stderr


# -- issue 10: field failures that show only end to end ---------------------------------------
class TlsRows:
    """Readings rows seen on a TLS broker, per node."""

    def __init__(self, port, ca):
        import paho.mqtt.client as mqtt
        self.rows = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.tls_set(ca_certs=str(ca))
        self.client.on_message = lambda c, u, m: self.rows.extend(
            dict(zip(json.loads(m.payload)["cols"], r)) for r in json.loads(m.payload)["rows"])
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("laterne/+/readings", 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.2)
        raise AssertionError("timed out waiting for " + what)

    def stop(self):
        self.client.loop_stop()
        self.client.disconnect()


def test_tls_node_without_ntp_after_a_power_on_gets_in_on_its_clock_floor(tmp_path, tls_files):
    """After a power-on the RTC reads 2000 and the virtual board's TLS checks certificate
    dates against it, as mbedtls on the ESP32 does: the clock floor on flash gets it in."""
    from host_tools.broker import Broker
    with Broker(kind="mosquitto", tls=(tls_files["ca"], tls_files["cert"], tls_files["key"])) as b:
        url = "mqtts://127.0.0.1:%d" % b.port
        tls = ["--cafile", str(tls_files["ca"])]
        seen = TlsRows(b.port, tls_files["ca"])
        try:
            fleet = Fleet(tmp_path / "state", url, 1, FAST + tls)  # NTP answers: a floor
            try:
                seen.wait(lambda: len(seen.rows) >= 2, 60, "readings with NTP")
            finally:
                fleet.stop()
            top = max(r["seq"] for r in seen.rows)
            # power returns (the sim starts every node as after a power-on), NTP is gone
            fleet = Fleet(tmp_path / "state", url, 1, FAST + tls + ["--no-ntp"])
            try:
                seen.wait(lambda: any(r["seq"] > top + 1 for r in seen.rows), 90,
                          "readings after a power-on without NTP")
            finally:
                fleet.stop()
            # readings the first boot stored but did not send yet come first, with their
            # time; every one sampled after the power-on has none and says so
            later = sorted((r for r in seen.rows if r["seq"] > top), key=lambda r: r["seq"])
            unknown = [i for i, r in enumerate(later) if r["ts"] is None]
            assert unknown and unknown[0] <= 2, later  # an upload interval holds two at most
            assert all(r["ts"] is None and r["flags"] & flags.TIME_UNKNOWN
                       for r in later[unknown[0]:]), later
            # a node that never knew the time says why it does not connect
            fresh = Fleet(tmp_path / "fresh", url, 1, FAST + tls + ["--no-ntp"])
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and "TLS waits" not in fresh.console("lamp-001"):
                    time.sleep(0.3)
            finally:
                fresh.stop()
            assert "TLS waits for the clock" in fresh.console("lamp-001")
        finally:
            seen.stop()
    assert_no_gaps(sorted({r["seq"] for r in seen.rows}))


def test_retained_config_set_too_large_for_the_node_does_not_stop_it(tmp_path, broker,
                                                                     collector):
    """Before: the broker resent it on every subscribe, the node dropped the link and
    reconnected at once, thousands of times, and sent nothing."""
    topic = "laterne/lamp-001/config/set"
    big = json.dumps({"id": "big", "set": {"sample_interval_s": 60, "pad": "x" * 6000}})
    collector.publish(topic, big, qos=1, retain=True)
    fleet = Fleet(tmp_path / "state", broker.url, 1, FAST)
    try:
        collector.wait(lambda: len(collector.seqs("lamp-001")) >= 4, 90, "readings")
        collector.wait(lambda: collector.results, 30, "a config/result")
    finally:
        fleet.stop()
        collector.publish(topic, b"", qos=1, retain=True)
    assert_no_gaps(collector.seqs("lamp-001"))
    result = collector.results[0]
    assert result["id"] is None and result["ok"] is False and "exceeds" in result["errors"][0]
    online = [s for s in collector.status["lamp-001"] if s.get("online")]
    assert len(online) <= 8, "reconnects: %d status messages" % len(online)
    assert fleet.console("lamp-001").count("uplink:") <= 2
