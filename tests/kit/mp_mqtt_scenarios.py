# MQTT client scenarios run on the MicroPython unix port by tests/system/test_mqtt_client_broker.py.
# Usage: micropython mp_mqtt_scenarios.py SCENARIO PORT [ARGS...]; prints "RESULT <json>".
import json
import sys
import time

from laterne import mqttclient, net


def result(**kw):
    print("RESULT " + json.dumps(kw))


def make(port, **kw):
    ctx = kw.pop("ctx", None)
    host = kw.pop("host", "127.0.0.1")
    name = kw.pop("server_name", host)
    return mqttclient.MQTTClient(kw.pop("cid", "mp-node"),
                                 lambda: net.open_socket(host, port, 3000, ctx, name), time, **kw)


def ack_all(c, pids):
    acked = []
    start = time.ticks_ms()
    while len(acked) < len(pids) and time.ticks_diff(time.ticks_ms(), start) < 10000:
        c.poll(200)
        acked += c.acked()
    return acked


def basic(port):
    got = []
    c = make(port, will=("mp/status", b'{"online":false}', True, 1), max_inflight=4,
             on_message=lambda t, m: got.append([t, m.decode()]))
    sp = c.connect()
    granted = c.subscribe("mp/in", 1)
    sent, acked = [], []
    max_seen = 0
    for i in range(10):
        while not c.can_publish():
            c.poll(200)
            acked += c.acked()
        sent.append(c.publish("mp/data", "reading %d" % i, 1))
        max_seen = max(max_seen, c.inflight())
    acked += ack_all(c, sent[len(acked):]) if len(acked) < len(sent) else []
    c.publish("mp/ready", b"1", 1)
    start = time.ticks_ms()
    while not got and time.ticks_diff(time.ticks_ms(), start) < 10000:
        c.poll(200)
    c.acked()
    c.pid = 65533
    wrap = [c.publish("mp/wrap", b"w%d" % i, 1) for i in range(4)]
    wrap_acked = ack_all(c, wrap)
    result(sp=sp, granted=granted, sent=sent, acked=acked, inflight_max=max_seen, got=got,
           wrap=wrap, wrap_acked=wrap_acked)
    c.close()  # no DISCONNECT: the broker publishes the will


def blackhole(port, qos):
    c = make(port, keepalive_s=2, timeout_ms=1500)
    c.connect()
    start = time.ticks_ms()
    c.publish("mp/hole", b"HOLE", int(qos))
    try:
        while time.ticks_diff(time.ticks_ms(), start) < 30000:
            c.poll(500)
        result(error=None)
    except mqttclient.MQTTError as e:
        result(error=type(e).__name__, reason=str(e), ms=time.ticks_diff(time.ticks_ms(), start),
               connected=c.is_connected())


def garbage(port):
    c = make(port, timeout_ms=1500)
    try:
        c.connect()
        c.subscribe("x", 1)
        for _ in range(10):
            c.poll(200)
        result(error=None)
    except mqttclient.MQTTError as e:
        result(error=type(e).__name__, reason=str(e), connected=c.is_connected())


def tls(port, cafile, host, server_name=None):
    with open(cafile) as f:
        ctx = net.make_tls_context(f.read())
    c = make(port, ctx=ctx, host=host, server_name=server_name or host)
    try:
        c.connect()
    except mqttclient.MQTTError as e:
        result(error=type(e).__name__, reason=str(e))
        return
    pid = c.publish("mp/tls", b"secure", 1)
    result(error=None, acked=ack_all(c, [pid]) == [pid])
    c.disconnect()


SCENARIOS = {"basic": basic, "blackhole": blackhole, "garbage": garbage, "tls": tls}
SCENARIOS[sys.argv[1]](int(sys.argv[2]), *sys.argv[3:])
