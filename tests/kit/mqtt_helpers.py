# Test peers for the MQTT client: a TCP proxy that can black-hole a link (no RST, no bytes),
# a fake broker that answers with scripted bytes, and an observer subscribed with paho-mqtt.
import json
import socket
import threading
import time

import paho.mqtt.client as paho


class Proxy:
    """Forwards 127.0.0.1:port to target_port; black_hole() makes every link silent while
    the sockets stay open, like a dead router, cut() closes every link and refuses new ones,
    like a broker that went down (without losing what it already acknowledged), and restore()
    ends either. With `marker`, the link goes silent by itself when the client sends bytes
    containing it (those bytes are swallowed). `bytes` counts what was forwarded both ways."""

    def __init__(self, target_port, marker=None):
        self.target_port = target_port
        self.marker = marker
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.holed = threading.Event()
        self.refusing = threading.Event()
        self.socks = []
        self.bytes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def black_hole(self):
        self.holed.set()

    def cut(self):
        self.refusing.set()
        for sock in self.socks:
            try:
                sock.close()
            except OSError:
                pass

    def restore(self):
        self.holed.clear()
        self.refusing.clear()

    def _accept(self):
        while True:
            try:
                a, _ = self.srv.accept()
            except OSError:
                return
            if self.refusing.is_set():
                a.close()
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                a.close()
                continue
            self.socks += [a, b]
            for src, dst, up in ((a, b, True), (b, a, False)):
                threading.Thread(target=self._pump, args=(src, dst, up), daemon=True).start()

    def _pump(self, src, dst, upstream):
        src.settimeout(0.05)
        while True:
            if self.holed.is_set():
                time.sleep(0.05)  # hold the socket open, read and send nothing
                continue
            try:
                data = src.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            if upstream and self.marker and self.marker in data:
                self.holed.set()
                continue
            if self.holed.is_set():
                continue
            try:
                dst.sendall(data)
            except OSError:
                return
            self.bytes += len(data)

    def close(self):
        self.srv.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class FakeBroker:
    """Accepts connections; after reading a CONNECT it sends `reply` (bytes), then `later`
    after the next bytes from the client (if given); then keeps the link open."""

    def __init__(self, reply, later=None):
        self.reply = reply
        self.later = later
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._talk, args=(c,), daemon=True).start()

    def _talk(self, c):
        try:
            c.recv(4096)
            if self.reply is None:
                return  # say nothing at all
            if self.reply == b"":
                c.close()
                return
            c.sendall(self.reply)
            if self.later is not None:
                c.recv(4096)
                c.sendall(self.later)
        except OSError:
            pass

    def close(self):
        self.srv.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


class Observer:
    """A paho-mqtt subscriber that records (topic, payload, retain) of every message."""

    def __init__(self, port, topics=("#",), tls_ca=None):
        self.messages = []
        self.cond = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="observer-%d" % id(self))
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: [c.subscribe(t, 1) for t in topics]
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError("observer did not subscribe")

    def _on_message(self, c, u, msg):
        with self.cond:
            self.messages.append((msg.topic, msg.payload, msg.retain))
            self.cond.notify_all()

    def wait_for(self, pred, timeout=10):
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.messages), timeout):
                raise TimeoutError("observer saw only %r" % self.messages[-5:])

    def publish(self, topic, payload, qos=1, retain=False):
        self.client.publish(topic, payload, qos, retain).wait_for_publish(10)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def json_lines(text, tag="RESULT "):
    return [json.loads(line[len(tag):]) for line in text.splitlines() if line.startswith(tag)]
