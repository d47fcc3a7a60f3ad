# The MQTT client against real peers: mosquitto (plain and TLS), a black-holing proxy and a
# fake broker sending garbage; on CPython in-process and on MicroPython in a subprocess.
import subprocess
import sys
import time
from pathlib import Path

import pytest

import vclock
from host_tools.broker import Broker
from host_tools.paths import micropython_env, micropython_exe
from laterne import net
from laterne.mqttclient import (MQTTClient, MQTTConnectionError, MQTTError, MQTTProtocolError,
                                MQTTRefused, MQTTTimeout)

import mqtt_helpers
import tlscerts


KIT = Path(__file__).parent.parent / "kit"


def client(port, host="127.0.0.1", ctx=None, **kw):
    return MQTTClient(kw.pop("cid", "py-node"), lambda: net.open_socket(host, port, 3000, ctx, host),
                      vclock.VClock(scale=1), **kw)


def run_mp(*args, timeout=60):
    proc = subprocess.run([micropython_exe(), str(KIT / "mp_mqtt_scenarios.py")] +
                          [str(a) for a in args], env=micropython_env(), capture_output=True,
                          text=True, timeout=timeout)
    found = mqtt_helpers.json_lines(proc.stdout)
    assert proc.returncode == 0 and found, proc.stdout + proc.stderr
    return found[-1]


def until_acked(c, pids, limit=200):
    acked = []
    for _ in range(limit):
        if len(acked) >= len(pids):
            break
        c.poll(100)
        acked += c.acked()
    return acked


@pytest.fixture
def observer(broker):
    o = mqtt_helpers.Observer(broker.port)
    yield o
    o.close()


# -- CPython client against mosquitto ------------------------------------------------------
def test_qos1_several_in_flight_acked_and_delivered(broker, observer):
    c = client(broker.port, max_inflight=5)
    assert c.connect() is False
    pids = [c.publish("py/data", "m%d" % i, 1) for i in range(5)]
    assert pids == [1, 2, 3, 4, 5] and c.inflight() == 5 and not c.can_publish()
    with pytest.raises(MQTTError, match="in flight"):
        c.publish("py/data", "too many", 1)
    acked = until_acked(c, pids)
    assert sorted(acked) == pids and c.inflight() == 0 and c.acked() == []
    assert c.publish("py/data", "qos0") is None
    observer.wait_for(lambda m: sum(1 for t, _, _ in m if t == "py/data") == 6)
    got = [p for t, p, _ in observer.messages if t == "py/data"]
    assert got == [b"m0", b"m1", b"m2", b"m3", b"m4", b"qos0"]
    c.disconnect()


def test_subscribe_and_receive_qos0_and_qos1(broker, observer):
    got = []
    c = client(broker.port, on_message=lambda t, m: got.append((t, m)))
    c.connect()
    assert c.subscribe("lamp/config/set", 1) == 1
    observer.publish("lamp/config/set", b'{"id":"a"}', qos=1)
    observer.publish("lamp/config/set", b"second", qos=0)
    observer.publish("lamp/other", b"not for us", qos=1)
    for _ in range(100):
        if len(got) == 2:
            break
        c.poll(100)
    assert got == [("lamp/config/set", b'{"id":"a"}'), ("lamp/config/set", b"second")]
    c.disconnect()


def test_keepalive_pings_keep_an_idle_link_up(broker):
    c = client(broker.port, keepalive_s=1, timeout_ms=2000)
    c.connect()
    # mosquitto drops a client silent for 1.5 keepalives; only our PINGREQs prevent that
    deadline = time.monotonic() + 4
    pongs = 0
    while time.monotonic() < deadline:
        pongs += c.poll(200)
    assert pongs >= 2  # PINGRESPs handled
    pid = c.publish("py/alive", "yes", 1)
    assert until_acked(c, [pid]) == [pid]
    c.disconnect()


def test_last_will_on_drop_not_on_disconnect(broker, observer):
    will = ("py/lamp/status", b'{"v":1,"node":"lamp","online":false}', True, 1)
    c = client(broker.port, will=will, cid="lamp-a")
    c.connect()
    c.disconnect()
    c2 = client(broker.port, will=will, cid="lamp-b")
    c2.connect()
    c2.publish("py/marker", "after clean disconnect", 1)
    until_acked(c2, [1])
    c2.close()  # like a power cut: no DISCONNECT
    observer.wait_for(lambda m: any(t == "py/lamp/status" for t, _, _ in m))
    wills = [(p, r) for t, p, r in observer.messages if t == "py/lamp/status"]
    assert wills == [(will[1], False)]  # once (from lamp-b only), live delivery
    late = mqtt_helpers.Observer(broker.port, topics=("py/lamp/status",))
    try:
        late.wait_for(lambda m: m)
        assert late.messages == [("py/lamp/status", will[1], True)]  # retained
    finally:
        late.close()


def test_packet_ids_wrap_and_skip_ids_in_flight(broker):
    c = client(broker.port)
    c.connect()
    assert c.publish("py/w", "a", 1) == 1  # stays in flight (not polled yet)
    c.pid = 65533
    pids = [c.publish("py/w", "x", 1) for _ in range(3)]
    assert pids == [65534, 65535, 2]  # never 0, and 1 is still in flight
    assert sorted(until_acked(c, [1] + pids)) == [1, 2, 65534, 65535]
    c.disconnect()


def test_black_holed_link_detected_by_missing_puback(broker):
    proxy = mqtt_helpers.Proxy(broker.port, marker=b"HOLE")
    try:
        c = client(proxy.port, keepalive_s=60, timeout_ms=1500)
        c.connect()
        c.publish("py/hole", "HOLE", 1)
        with pytest.raises(MQTTTimeout, match="PUBACK"):
            for _ in range(100):  # a hang guard, not a speed requirement
                c.poll(200)
        assert not c.is_connected()
    finally:
        proxy.close()


def test_black_holed_idle_link_detected_by_keepalive(broker):
    proxy = mqtt_helpers.Proxy(broker.port)
    try:
        c = client(proxy.port, keepalive_s=1, timeout_ms=1500)
        c.connect()
        proxy.black_hole()
        with pytest.raises(MQTTTimeout, match="PINGRESP"):
            for _ in range(100):
                c.poll(200)
    finally:
        proxy.close()


GARBAGE = [
    (b"\xff\xff\xff\xff\xff", None, MQTTProtocolError),               # not a CONNACK at all
    (b"\x20\x02\x00\x00", b"\x30\xff\xff\xff\xff\x7f", MQTTProtocolError),  # after connect
    (b"\x40\x02\x00\x01", None, MQTTProtocolError),                   # PUBACK before CONNACK
    (b"\x20\x02\x00\x00", b"\x40\x02\x12\x34", MQTTProtocolError),    # PUBACK nobody awaited
    (b"\x20\x02\x00\x00\x20\x02\x00\x00", None, MQTTProtocolError),   # second CONNACK
    (b"\x20\x02\x00\x05", None, MQTTRefused),
    (b"", None, MQTTConnectionError),                                 # closes at once
    (None, None, MQTTTimeout),                                        # never answers
]


@pytest.mark.parametrize("reply,later,exc", GARBAGE)
def test_broker_garbage_raises_protocol_errors(reply, later, exc):
    fake = mqtt_helpers.FakeBroker(reply, later)
    try:
        c = client(fake.port, timeout_ms=1500)
        with pytest.raises(exc) as info:
            c.connect()
            c.subscribe("x", 1)
            for _ in range(20):
                c.poll(100)
        assert str(info.value)
        assert not c.is_connected()
    finally:
        fake.close()


def test_refused_names_the_return_code():
    fake = mqtt_helpers.FakeBroker(b"\x20\x02\x00\x04")
    try:
        with pytest.raises(MQTTRefused, match="bad user name or password") as info:
            client(fake.port).connect()
        assert info.value.rc == 4
    finally:
        fake.close()


def test_unreachable_broker_is_a_connection_error():
    from host_tools.broker import free_port
    c = client(free_port(), timeout_ms=500)  # nothing listens there: connection refused
    with pytest.raises(MQTTConnectionError, match="cannot reach broker"):
        c.connect()
    assert not c.is_connected()


# -- TLS -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls_broker():
    paths = tlscerts.make_for_broker()
    b = Broker(kind="mosquitto", tls=(str(paths["ca"]), str(paths["cert"]), str(paths["key"])))
    b.start()
    yield b, paths
    b.stop()


def test_tls_with_configured_ca(tls_broker):
    b, paths = tls_broker
    ctx = net.make_tls_context(paths["ca"].read_text())
    c = client(b.port, host="localhost", ctx=ctx)
    c.connect()
    pid = c.publish("py/tls", "secure", 1)
    assert until_acked(c, [pid]) == [pid]
    c.disconnect()


def test_tls_with_a_ca_bundle_whose_right_ca_comes_second(tls_broker):
    b, paths = tls_broker
    c = client(b.port, host="localhost", ctx=net.make_tls_context(paths["bundle"].read_text()))
    c.connect()
    c.disconnect()


def test_tls_wrong_ca_refused_clearly(tls_broker):
    b, paths = tls_broker
    ctx = net.make_tls_context(str(paths["other_ca"]))  # a path works too
    with pytest.raises(MQTTConnectionError, match="not trusted by the configured CA"):
        client(b.port, host="localhost", ctx=ctx).connect()


def test_tls_other_host_name_refused(tls_broker):
    b, paths = tls_broker
    ctx = net.make_tls_context(paths["ca"].read_bytes())
    c = MQTTClient("py", lambda: net.open_socket("127.0.0.1", b.port, 3000, ctx, "evil.example"),
                   vclock.VClock(scale=1))
    with pytest.raises(MQTTConnectionError, match="another host name"):
        c.connect()


def test_tls_context_rejects_unusable_ca():
    with pytest.raises(net.TLSError, match="no CERTIFICATE"):
        net.make_tls_context("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(net.TLSError):
        net.make_tls_context(None)


# -- the same client on MicroPython ----------------------------------------------------------
def test_micropython_client_against_mosquitto(broker):
    obs = mqtt_helpers.Observer(broker.port, topics=("mp/#",))
    try:
        import threading

        def answer():  # send the node a message once it says it is subscribed
            obs.wait_for(lambda m: any(t == "mp/ready" for t, _, _ in m), 30)
            obs.publish("mp/in", b"hello node", qos=1)

        threading.Thread(target=answer, daemon=True).start()
        r = run_mp("basic", broker.port)
        assert r["sp"] is False and r["granted"] == 1
        assert r["sent"] == list(range(2, 12))  # id 1 went to SUBSCRIBE
        assert sorted(r["acked"]) == r["sent"] and r["inflight_max"] == 4
        assert r["got"] == [["mp/in", "hello node"]]
        assert r["wrap"] == [65534, 65535, 1, 2] and sorted(r["wrap_acked"]) == [1, 2, 65534, 65535]
        obs.wait_for(lambda m: any(t == "mp/status" for t, _, _ in m))
        data = [p for t, p, _ in obs.messages if t == "mp/data"]
        assert data == [b"reading %d" % i for i in range(10)]
    finally:
        obs.close()


@pytest.mark.parametrize("qos,missing", [(1, "PUBACK"), (0, "PINGRESP")])
def test_micropython_black_hole_detected(broker, qos, missing):
    proxy = mqtt_helpers.Proxy(broker.port, marker=b"HOLE")
    try:
        r = run_mp("blackhole", proxy.port, qos)
    finally:
        proxy.close()
    assert r["error"] == "MQTTTimeout" and missing in r["reason"]
    assert r["connected"] is False


@pytest.mark.parametrize("reply,later,exc", GARBAGE[:5])
def test_micropython_broker_garbage(reply, later, exc):
    fake = mqtt_helpers.FakeBroker(reply, later)
    try:
        r = run_mp("garbage", fake.port)
    finally:
        fake.close()
    assert r["error"] == exc.__name__ and r["connected"] is False


def test_micropython_tls(tls_broker):
    b, paths = tls_broker
    assert run_mp("tls", b.port, paths["ca"], "localhost") == {"error": None, "acked": True}
    # mbedtls reads one certificate per buffer: a bundle must be loaded certificate by certificate
    assert run_mp("tls", b.port, paths["bundle"], "localhost") == {"error": None, "acked": True}
    r = run_mp("tls", b.port, paths["other_ca"], "localhost")
    assert r["error"] == "MQTTConnectionError" and "not trusted by the configured CA" in r["reason"]
    r = run_mp("tls", b.port, paths["ca"], "127.0.0.1", "evil.example")
    assert r["error"] == "MQTTConnectionError" and "another host name" in r["reason"]
