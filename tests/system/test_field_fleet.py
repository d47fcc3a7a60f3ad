# Field failures that show only end to end (issue 10): virtual nodes running the unmodified
# firmware against a real mosquitto. A TLS node after a power-on without NTP (the RTC reads
# 2000 and the virtual board's TLS checks certificate dates against it, as mbedtls on the
# ESP32 does), and a retained config/set larger than the node's packet buffer.
import json
import shutil
import time

import paho.mqtt.client as mqtt
import pytest

import tlscerts
from host_tools.broker import Broker
from laterne import flags
from virtual_fleet import Collector, Fleet, assert_no_gaps

SCALE = 30
FAST = ["--time-scale", str(SCALE), "--sample-interval", "60", "--upload-interval", "120"]


@pytest.fixture
def collector(broker):
    c = Collector(broker.port)
    yield c
    c.stop()


@pytest.fixture
def tls_files():
    files = tlscerts.make_for_broker()
    yield files
    shutil.rmtree(files["ca"].parent, ignore_errors=True)


class TlsRows:
    """Readings rows seen on a TLS broker, per node."""

    def __init__(self, port, ca):
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
            later = [r for r in seen.rows if r["seq"] > top]
            assert all(r["ts"] is None and r["flags"] & flags.TIME_UNKNOWN for r in later)
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
