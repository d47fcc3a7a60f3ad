# Property tests and fuzzing of the MQTT codec and the client's acknowledgement bookkeeping.
# CONNECT and SUBSCRIBE are checked against a small parser written here from the spec.
import socket
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vclock
import mqtt_peer
from mqtt_peer import feed, pending
from laterne import mqtt
from laterne.mqtt import Decoder, MQTTProtocolError
from laterne.mqttclient import MQTTClient, MQTTProtocolError as ClientProtocolError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

topic_text = st.text(st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",)),
                     min_size=1, max_size=40).filter(lambda t: len(t.encode()) <= 65535)
pids = st.integers(1, 65535)


@st.composite
def publishes(draw):
    qos = draw(st.sampled_from([0, 1]))
    return (draw(topic_text), draw(st.binary(max_size=300)), qos, draw(st.booleans()),
            draw(pids) if qos else 0, draw(st.booleans()) if qos else False)


def broker_packets():
    return st.one_of(
        publishes().map(lambda p: (bytes(mqtt_peer.encode_publish(*p)),
                                   (mqtt.PUBLISH, p[0], p[1], p[2], p[3], p[5], p[4]))),
        pids.map(lambda i: (mqtt.encode_puback(i), (mqtt.PUBACK, i))),
        pids.map(lambda i: (mqtt_peer.encode_unsuback(i), (mqtt.UNSUBACK, i))),
        st.tuples(pids, st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=5)).map(
            lambda a: (bytes(mqtt_peer.encode_suback(a[0], a[1])), (mqtt.SUBACK, a[0], bytes(a[1])))),
        st.tuples(st.booleans(), st.integers(0, 5)).filter(lambda a: not (a[0] and a[1])).map(
            lambda a: (mqtt_peer.encode_connack(*a), (mqtt.CONNACK, a[0], a[1]))),
        st.just((mqtt.PINGRESP_PACKET, (mqtt.PINGRESP,))),
    )


@FAST
@given(st.lists(broker_packets(), max_size=8), st.randoms(use_true_random=False))
def test_round_trip_in_any_chunking(items, rnd):
    stream = b"".join(raw for raw, _ in items)
    dec = Decoder(1024)
    got = []
    i = 0
    while i < len(stream):
        k = rnd.randint(1, 64)
        got.extend(feed(dec, stream[i:i + k]))
        i += k
    assert got == [want for _, want in items]
    assert pending(dec) == 0


def _drain(data, max_packet=512):
    """Feed data; every outcome must be packets, a request for more, or a protocol error."""
    dec = Decoder(max_packet)
    try:
        for p in feed(dec, data):
            assert isinstance(p, tuple) and p[0] in (mqtt.CONNACK, mqtt.PUBLISH, mqtt.PUBACK,
                                                     mqtt.SUBACK, mqtt.UNSUBACK, mqtt.PINGRESP)
    except MQTTProtocolError as e:
        assert str(e)
        return "error"
    return "ok"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    _drain(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(broker_packets(), min_size=1, max_size=5), st.randoms(use_true_random=False),
       st.integers(1, 6))
def test_fuzz_mutated_and_truncated(items, rnd, edits):
    data = bytearray(b"".join(raw for raw, _ in items))
    for _ in range(edits):
        op = rnd.randint(0, 3)
        pos = rnd.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rnd.randrange(256)
        elif op == 1:
            data[pos:pos] = bytes([rnd.randrange(256)])
        elif op == 2:
            del data[pos:pos + rnd.randint(1, 4)]
        else:
            data = data[:pos]
    _drain(bytes(data))


@FAST
@given(st.integers(0, 20000))
def test_remaining_length_round_trip(n):
    buf = bytearray(5)
    end = mqtt.put_remaining_length(buf, 0, n)
    packet = b"\x30" + bytes(buf[:end]) + b"\x00\x01t" + b"p" * max(0, n - 3)
    if n < 3:
        assert _drain(packet, 20000) == "error"  # too short to hold a topic
    else:
        got = list(feed(Decoder(20000), packet))
        assert got == [(mqtt.PUBLISH, "t", b"p" * (n - 3), 0, False, False, 0)]


def parse_connect(raw):
    """CONNECT fields, parsed from the spec's layout (3.1.2 / 3.1.3)."""
    assert raw[0] == 0x10
    n, mult, i = 0, 1, 1
    while True:
        b = raw[i]
        n += (b & 0x7F) * mult
        mult *= 128
        i += 1
        if b < 128:
            break
    assert len(raw) - i == n

    def s(i):
        ln = struct.unpack(">H", raw[i:i + 2])[0]
        return raw[i + 2:i + 2 + ln], i + 2 + ln

    name, i = s(i)
    assert name == b"MQTT" and raw[i] == 4
    flags = raw[i + 1]
    keepalive = struct.unpack(">H", raw[i + 2:i + 4])[0]
    cid, i = s(i + 4)
    out = {"cid": cid.decode(), "keepalive": keepalive, "clean": bool(flags & 2), "will": None,
           "user": None, "password": None}
    assert not flags & 1
    if flags & 4:
        wt, i = s(i)
        wm, i = s(i)
        out["will"] = (wt.decode(), wm, bool(flags & 0x20), (flags >> 3) & 3)
    if flags & 0x80:
        u, i = s(i)
        out["user"] = u.decode()
    if flags & 0x40:
        p, i = s(i)
        out["password"] = p
    assert i == len(raw)
    return out


@FAST
@given(st.text(max_size=30), st.integers(0, 65535), st.booleans(),
       st.none() | st.tuples(topic_text, st.binary(max_size=100), st.booleans(), st.integers(0, 2)),
       st.none() | st.tuples(st.text(max_size=20), st.none() | st.binary(max_size=20)))
def test_connect_matches_spec_layout(cid, keepalive, clean, will, cred):
    user, password = cred if cred else (None, None)
    raw = bytes(mqtt.encode_connect(cid, keepalive, user, password, will, clean))
    got = parse_connect(raw)
    assert got == {"cid": cid, "keepalive": keepalive, "clean": clean, "will": will,
                   "user": user, "password": password}


@FAST
@given(pids, st.text(min_size=1, max_size=50), st.integers(0, 2))
def test_subscribe_matches_spec_layout(pid, topic, qos):
    raw = bytes(mqtt.encode_subscribe(pid, topic, qos))
    t = topic.encode()
    body = struct.pack(">HH", pid, len(t)) + t + bytes([qos])
    assert raw[0] == 0x82 and raw[-len(body):] == body
    assert len(raw) == 1 + mqtt.remaining_length_size(len(body)) + len(body)


# -- client bookkeeping over a socketpair (the broker side is driven by the test) -----------
def connected_pair(**kw):
    a, b = socket.socketpair()
    b.sendall(mqtt_peer.encode_connack(False, 0))
    c = MQTTClient("prop", lambda: a, vclock.VClock(scale=1), **kw)
    c.connect()
    b.settimeout(5)
    assert b.recv(4096)[0] == 0x10  # the CONNECT
    return c, b


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(0, 65535), st.randoms(use_true_random=False))
def test_pubacks_in_any_order_are_matched(n, start_pid, rnd):
    c, broker = connected_pair(max_inflight=8)
    try:
        c.pid = start_pid
        sent = [c.publish("t", b"x", 1) for _ in range(n)]
        assert len(set(sent)) == n and 0 not in sent and c.inflight() == n
        assert not c.can_publish() if n == 8 else c.can_publish()
        order = list(sent)
        rnd.shuffle(order)
        half = order[:len(order) // 2]
        broker.sendall(b"".join(mqtt.encode_puback(p) for p in half))
        got = []
        while len(got) < len(half):
            c.poll(200)
            got += c.acked()
        assert got == half and c.inflight() == n - len(half)
        nxt = c.publish("t", b"y", 1)
        assert nxt not in [p for p in sent if p not in half] and nxt != 0
        in_flight = (set(sent) - set(half)) | {nxt}
        stray = next(p for p in range(1, 65536) if p not in in_flight)
        broker.sendall(mqtt.encode_puback(stray))
        try:
            for _ in range(20):
                c.poll(100)
            raise AssertionError("a PUBACK for an id not in flight was accepted")
        except ClientProtocolError as e:
            assert "not in flight" in str(e)
    finally:
        c.close()
        broker.close()


def test_incoming_qos1_publish_is_acked_once():
    got = []
    c, broker = connected_pair(on_message=lambda t, m: got.append((t, m)))
    try:
        broker.sendall(bytes(mqtt_peer.encode_publish("a/config/set", b"{}", 1, False, 77)))
        while not got:
            c.poll(200)
        assert got == [("a/config/set", b"{}")]
        assert broker.recv(16) == mqtt.encode_puback(77)
    finally:
        c.close()
        broker.close()


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.binary(min_size=1, max_size=200),
                 st.lists(broker_packets(), min_size=1, max_size=4).map(
                     lambda items: b"".join(raw for raw, _ in items)[:-1] + b"\xff")))
def test_client_survives_any_bytes_from_the_broker(data):
    """Whatever the broker sends after CONNACK, the client either handles it or raises an
    MQTTError subclass (and is then closed): never another exception."""
    from laterne.mqttclient import MQTTError
    c, broker = connected_pair(on_message=lambda t, m: None)
    try:
        c.publish("t", b"x", 1)
        broker.sendall(data)
        try:
            for _ in range(3):
                c.poll(5)
        except MQTTError as e:
            assert str(e) and not c.is_connected()
    finally:
        c.close()
        broker.close()
