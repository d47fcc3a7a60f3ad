# The mosquitto ACL that `laterne acl` generates from the inventory, enforced by a real
# mosquitto with passwords: a node publishes only under its own topics and reads only its own
# config requests and `stored` reports; only the ingest user may publish `stored` (a node can
# forge no report, not even its own); the ingest on a shared subscription gets every reading.
import json
import os
import subprocess
import sys
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from host_tools.broker import Broker
from ingest_proc import IngestProc, batch_json

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USERS = {"lamp-001": "pw-one-1", "lamp-002": "pw-two-2", "laterne-ingest": "pw-ingest",
         "laterne-monitor": "pw-monitor", "laterne-admin": "pw-admin"}


class Client:
    def __init__(self, port, user, topics=()):
        self.messages = []
        self.lock = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="t-" + user)
        self.c.username_pw_set(user, USERS[user])
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if topics:
            self.c.subscribe([(t, 1) for t in topics])
            assert subscribed.wait(10), "no SUBACK for %s" % user

    def _on_message(self, c, u, msg):
        with self.lock:
            self.messages.append((msg.topic, msg.payload))
            self.lock.notify_all()

    def publish(self, topic, payload, retain=False):
        self.c.publish(topic, payload, 1, retain).wait_for_publish(10)

    def got(self, topic):
        with self.lock:
            return [p for t, p in self.messages if t == topic]

    def wait_for(self, topic, payload, timeout=10):
        with self.lock:
            assert self.lock.wait_for(lambda: payload in self.got(topic), timeout), (
                "%s never saw %r on %s" % (self.c._client_id, payload, topic))

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def acl_broker(tmp_path):
    (tmp_path / "fleet.csv").write_text("node_id,lamp_post,lat,lon,board,notes\n"
                                        "lamp-001,LP-1,52.52,13.40,esp32-devkitc,\n"
                                        "lamp-002,LP-2,52.53,13.41,esp32-devkitc,\n")
    out = subprocess.run([sys.executable, "-m", "host_tools.cli", "acl", "--inventory",
                          str(tmp_path / "fleet.csv"), "--out", str(tmp_path / "acl")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    for user, password in USERS.items():
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True,
                       capture_output=True, timeout=30)
    broker = Broker(kind="mosquitto", auth=(str(passwd), str(tmp_path / "acl"))).start()
    yield broker
    broker.stop()


def test_nodes_publish_only_their_own_topics_and_cannot_forge_stored(acl_broker):
    port = acl_broker.port
    admin = Client(port, "laterne-admin", ["laterne/#"])
    one = Client(port, "lamp-001", ["laterne/lamp-001/stored", "laterne/lamp-001/config/set"])
    two = Client(port, "lamp-002", ["laterne/lamp-001/stored", "laterne/lamp-001/readings"])
    ingest = Client(port, "laterne-ingest", ["$share/city/laterne/+/readings"])
    monitor = Client(port, "laterne-monitor")
    try:
        forged = json.dumps({"v": 1, "node": "lamp-001", "seq": 10 ** 6})
        one.publish("laterne/lamp-002/readings", batch_json("lamp-002", [1]))
        one.publish("laterne/lamp-001/stored", forged, retain=True)
        two.publish("laterne/lamp-001/stored", forged, retain=True)
        two.publish("laterne/lamp-001/readings", batch_json("lamp-001", [99]))
        monitor.publish("laterne/lamp-001/config/set", '{"set":{"batch_size":1}}')
        marker = batch_json("lamp-001", [1])
        one.publish("laterne/lamp-001/readings", marker)  # after the denied ones
        theirs = batch_json("lamp-002", [2])  # once: its timestamp is the current second
        two.publish("laterne/lamp-002/readings", theirs)
        admin.wait_for("laterne/lamp-001/readings", marker.encode())
        admin.wait_for("laterne/lamp-002/readings", theirs.encode())
        ingest.wait_for("laterne/lamp-001/readings", marker.encode())
        real = json.dumps({"v": 1, "node": "lamp-001", "seq": 1})
        ingest.publish("laterne/lamp-001/stored", real, retain=True)
        one.wait_for("laterne/lamp-001/stored", real.encode())
        request = '{"id":"r1","set":{"batch_size":20}}'
        admin.publish("laterne/lamp-001/config/set", request)
        one.wait_for("laterne/lamp-001/config/set", request.encode())
        assert admin.got("laterne/lamp-002/readings") == [theirs.encode()]
        assert admin.got("laterne/lamp-001/readings") == [marker.encode()]
        assert one.got("laterne/lamp-001/stored") == [real.encode()]
        assert one.got("laterne/lamp-001/config/set") == [request.encode()]
        assert two.got("laterne/lamp-001/stored") == [] and two.got("laterne/lamp-001/readings") == []
    finally:
        for c in (admin, one, two, ingest, monitor):
            c.close()


def test_laterne_ingest_works_as_its_user_on_a_shared_subscription(acl_broker, tmp_path):
    url = "sqlite:///%s" % (tmp_path / "db.sqlite")
    ingest = IngestProc(acl_broker.url, url, tmp_path / "ingest.log",
                        ["--username", "laterne-ingest", "--share", "city"],
                        env={"LATERNE_MQTT_PASSWORD": USERS["laterne-ingest"]})
    one = Client(acl_broker.port, "lamp-001", ["laterne/lamp-001/stored"])
    try:
        one.publish("laterne/lamp-001/readings", batch_json("lamp-001", range(1, 21)))
        one.wait_for("laterne/lamp-001/stored", b'{"v":1,"node":"lamp-001","seq":20}', 20)
    finally:
        one.close()
        assert ingest.stop() == 0
    assert "pw-ingest" not in ingest.output()
