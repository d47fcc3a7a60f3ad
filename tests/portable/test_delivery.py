# Uplink.drain with `delivery` "broker" and "stored" against a fake MQTT client and a real
# spool: in "stored" mode a reading leaves the spool only when the broker acknowledged it in
# this session AND the ingest reported it stored; forged, replayed and malformed reports never
# release more than that; what the database never got is sent again after a reconnect or the
# bounded wait. Runs on CPython and MicroPython.
import json

import vclock
from laterne import config, delivery, timebase
from laterne.spool import Spool
from laterne.uplink import Uplink
from test_spool import fresh_root

NODE = "lamp-007"
STORED = "laterne/%s/stored" % NODE


class FakeClient:
    """Acknowledges every PUBLISH at the next poll; when `silent`, poll fails as a missing
    PUBACK does. On SUBSCRIBE it hands the retained message (if any) to the uplink's callback,
    as a broker does before the SUBACK."""

    def __init__(self, uplink):
        self.uplink = uplink
        self.pid = 0
        self.unacked = []
        self.done = []
        self.sent = []            # (topic, seq list) of every readings PUBLISH
        self.subscribed = []
        self.retained = None
        self.silent = False

    def can_publish(self):
        return len(self.unacked) < 8

    def publish(self, topic, message, qos=0, retain=False):
        self.pid += 1
        doc = json.loads(message)
        self.sent.append((topic, [r[0] for r in doc["rows"]]))
        self.unacked.append(self.pid)
        return self.pid

    def message_buffer(self, topic, n):
        self.buf = bytearray(n)
        return self.buf, 0

    def publish_buffered(self, topic, n, qos=0, retain=False):
        return self.publish(topic, bytes(self.buf[:n]), qos, retain)

    def poll(self, timeout_ms=0):
        if self.silent:
            raise OSError("no PUBACK")
        self.done.extend(self.unacked)
        self.unacked = []

    def acked(self):
        d = self.done
        self.done = []
        return d

    def subscribe(self, topic, qos=1):
        self.subscribed.append(topic)
        if self.retained is not None:
            self.uplink.on_message(topic, self.retained)
        return qos

    def close(self):
        self.unacked = []

    def sent_seqs(self):
        out = []
        for _, seqs in self.sent:
            out.extend(seqs)
        return out


class Hw:
    """What Uplink asks of the hardware when no link is made: the clock, the kept backoff."""

    def __init__(self, clock):
        self.clock = clock

    def load_backoff(self):
        return 0, 0

    def save_backoff(self, attempts, retry_after):
        pass


def make(mode, n=10):
    clock = vclock.VClock()
    cfg = config.defaults()
    cfg["node_id"] = NODE
    cfg["delivery"] = mode
    other = []
    up = Uplink(Hw(clock), cfg, NODE, timebase.ClockState(clock, 1),
                lambda t, m: other.append(t), lambda *a: None, lambda: 0.5)
    client = FakeClient(up)
    up.client = up.mqtt = client
    up.connects = 1
    spool = Spool(fresh_root(), 65536)
    for i in range(n):
        spool.append((1700000000 + 60 * i, 1, 0, 2000 + i, 100000, 5000))
    return up, client, spool, clock, other


def drain(up, spool):
    return up.drain(spool, 4, lambda: None, 60000)


def reconnect(up, client, retained=None):
    up.client = client
    up.connects += 1
    client.silent = False
    client.retained = None if retained is None else json.dumps(
        {"v": 1, "node": NODE, "seq": retained})


def report(up, seq, node=NODE):
    up.on_message(STORED, json.dumps({"v": 1, "node": node, "seq": seq}))


def first_held(spool):
    rows = spool.peek(1)
    return rows[0][0] if rows else None


def test_broker_mode_releases_at_puback_and_never_subscribes():
    up, client, spool, _, _ = make("broker")
    assert drain(up, spool) == 10
    assert spool.depth() == 0 and client.subscribed == []
    assert up.delivery is None


def test_stored_mode_keeps_acknowledged_readings_until_reported():
    up, client, spool, _, other = make("stored")
    assert drain(up, spool) == 10
    assert client.subscribed == [STORED]
    assert spool.depth() == 10            # acknowledged by the broker, not yet stored
    report(up, 6)
    assert first_held(spool) == 7
    report(up, 10)
    assert spool.depth() == 0
    assert other == []                    # reports do not reach the node's config handler


def test_forged_report_beyond_what_was_sent_releases_only_acknowledged():
    up, client, spool, _, _ = make("stored")
    client.silent = True                  # sent, but the broker acknowledges nothing
    drain(up, spool)
    assert client.sent_seqs() == list(range(1, 11)) and up.client is None
    report(up, 1000)
    assert spool.depth() == 10
    reconnect(up, client)
    drain(up, spool)                      # acknowledged in this session: 1..10
    report(up, 1000)
    assert spool.depth() == 0
    spool.append((1700002000, 1, 0, 1, 1, 1))
    report(up, 1000)                      # seq 11 was never sent
    assert first_held(spool) == 11


def test_malformed_reports_are_ignored_and_counted():
    up, client, spool, _, _ = make("stored")
    drain(up, spool)
    bad = [b"", b"\xff\xfe", b"[1]", b"{}", b'{"v":1,"node":"lamp-007"}',
           b'{"v":1,"node":"lamp-007","seq":true}', b'{"v":1,"node":"lamp-007","seq":-1}',
           b'{"v":1,"node":"lamp-007","seq":"9"}', b'{"v":1,"node":"lamp-007","seq":9.0}',
           b'{"v":2,"node":"lamp-007","seq":9}', b'{"v":1,"node":"lamp-008","seq":9}',
           b'{"v":1,"node":"lamp-007","seq":9,"pad":"' + b"x" * 300 + b'"}']
    for message in bad:
        up.on_message(STORED, message)
    assert spool.depth() == 10
    assert up.delivery.ignored == len(bad)


def test_replayed_older_report_releases_nothing_more():
    up, client, spool, _, _ = make("stored")
    drain(up, spool)
    report(up, 8)
    report(up, 3)                         # an old retained report replayed
    assert first_held(spool) == 9
    report(up, 10)
    assert spool.depth() == 0


def test_reconnect_sends_again_what_was_never_reported_stored():
    up, client, spool, _, _ = make("stored")
    drain(up, spool)
    report(up, 4)
    reconnect(up, client, retained=4)     # a new session (the broker restarted)
    client.sent = []
    drain(up, spool)
    assert client.sent_seqs() == [5, 6, 7, 8, 9, 10]
    assert client.subscribed == [STORED, STORED]
    report(up, 10)
    assert spool.depth() == 0


def test_report_from_before_the_session_releases_nothing_until_sent_again():
    up, client, spool, _, _ = make("stored")
    drain(up, spool)
    reconnect(up, client, retained=10)
    client.silent = True
    drain(up, spool)                      # the retained report arrived; no PUBACK yet
    assert spool.depth() == 10
    reconnect(up, client, retained=10)
    drain(up, spool)
    assert spool.depth() == 0


def test_bounded_wait_then_resend_with_doubling():
    up, client, spool, clock, _ = make("stored")
    drain(up, spool)
    report(up, 2)
    client.sent = []
    clock.sleep(delivery.RESEND_MIN_S - 1)
    drain(up, spool)
    assert client.sent_seqs() == []       # still waiting, nothing new to send
    clock.sleep(2)
    drain(up, spool)
    assert client.sent_seqs() == list(range(3, 11))
    client.sent = []
    clock.sleep(delivery.RESEND_MIN_S + 1)
    drain(up, spool)
    assert client.sent_seqs() == []       # the wait doubled
    clock.sleep(delivery.RESEND_MIN_S)
    drain(up, spool)
    assert client.sent_seqs() == list(range(3, 11))
    report(up, 10)
    assert spool.depth() == 0 and up.delivery.wait_s == delivery.RESEND_MIN_S


def test_without_any_report_the_backlog_is_resent_after_the_wait():
    up, client, spool, clock, _ = make("stored")
    drain(up, spool)
    client.sent = []
    clock.sleep(delivery.RESEND_MIN_S + 1)
    drain(up, spool)
    assert client.sent_seqs() == list(range(1, 11))
    assert spool.depth() == 10


def test_new_readings_continue_after_the_acknowledged_ones():
    up, client, spool, _, _ = make("stored")
    drain(up, spool)
    spool.append((1700009000, 1, 0, 1, 1, 1))
    client.sent = []
    drain(up, spool)
    assert client.sent_seqs() == [11]


def test_remote_switch_takes_effect_at_the_next_drain():
    up, client, spool, _, _ = make("broker", 4)
    up.cfg["delivery"] = "stored"
    drain(up, spool)
    assert spool.depth() == 4 and client.subscribed == [STORED]
    up.cfg["delivery"] = "broker"
    spool.append((1700009000, 1, 0, 1, 1, 1))
    drain(up, spool)
    assert spool.depth() == 0 and up.delivery is None


def test_delivery_key_validated_and_remotely_settable():
    cfg = config.defaults()
    cfg["node_id"] = NODE
    cfg["wifi"] = [{"ssid": "x", "password": ""}]
    cfg["broker"]["host"] = "10.0.0.1"
    good, errors = config.validate(cfg)
    assert errors == [] and good["delivery"] == "broker"
    cfg["delivery"] = "db"
    assert config.validate(cfg)[1] == ['delivery: must be one of "broker", "stored"']
    new, errors = config.apply_remote(good, {"delivery": "stored"})
    assert errors == [] and new["delivery"] == "stored"


def test_without_an_ingest_the_spool_stays_bounded_and_counts_drops():
    up, client, spool, _, _ = make("stored", 0)
    spool = Spool(fresh_root(), 32768)   # the smallest spool: two sealed segments
    for i in range(1500):
        spool.append((1700000000 + 60 * i, 1, 0, 2000, 100000, 5000))
        if i % 100 == 99:
            drain(up, spool)             # acknowledged by the broker, never reported stored
    assert spool.dropped > 0
    assert spool.depth() + spool.dropped == 1500
    assert spool.depth() < 1000 and first_held(spool) == spool.dropped + 1
