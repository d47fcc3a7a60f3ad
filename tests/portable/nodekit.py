# Helpers for portable tests of Node, Uplink and Platform: the real firmware classes on the
# virtual board's stand-ins (machine, network, a jumping virtual clock, a BME280 simulator),
# a fresh filesystem root per test, and a broker played from a script over loopback TCP.
import _thread
import json
import random
import select
import socket

import machine
import network
import vclock
import vselect
from bme280_sim import BME280Sim
from laterne import config, mqttclient
from laterne.hw.platform import Platform
import test_spool

BOARD = {"name": "test-board", "i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 400000},
         "bme280_address": 0x76}
SSID, PASSWORD = "lamp-net", "street-lamp-pass"


class Board(Platform):
    """The ESP32 adapter on the virtual board; CPython's gc has no mem_free."""

    def free_heap(self):
        import gc
        return gc.mem_free() if hasattr(gc, "mem_free") else 0


def fresh_root():
    """A new empty littlefs (MicroPython) or temporary folder (CPython) per test."""
    import gc
    gc.collect()  # the previous one's RAM block device: room for the next in one piece
    return test_spool.fresh_root()


def power_on(root, uid=b"\x24\x0a\xc4\x00\x00\x01", clock=None, aps=((SSID, PASSWORD),),
             sensor=True):
    """A board that just got power: RTC at 2000, RTC memory empty, board.json on flash. With
    a scaled clock (real sockets in the test) socket waits are scaled like the sim's."""
    clock = clock or vclock.VClock()
    mqttclient.select = vselect.ScaledSelect(clock.scale) if clock.scale else select
    board = machine.board
    board.devices.clear()
    board.power_on(uid=uid, clock=clock)
    network.env.__init__()
    network.env.clock = clock
    for ssid, password in aps:
        network.env.add_ap(ssid, password)
    if sensor:
        board.attach(0x76, BME280Sim(clock))
    with open(root + "board.json", "w") as f:
        f.write(json.dumps(BOARD))
    return clock


def reset(cause):
    """A reset that keeps RTC memory and time (machine.DEEPSLEEP_RESET, SOFT_RESET, ...)."""
    machine.board.after_reset(cause)


def node_config(**over):
    cfg = {"node_id": "lamp-t", "wifi": [{"ssid": SSID, "password": PASSWORD}],
           "broker": {"host": "127.0.0.1", "port": 9}, "ntp_servers": [],
           "spool_bytes": 65536}
    for key, value in over.items():
        cfg[key] = value
    cfg, errors = config.validate(cfg)
    assert not errors, errors
    return cfg


def bind_free(sock):
    """Bind to a free loopback port (MicroPython's sockets cannot tell which port 0 got)."""
    for _ in range(20):
        port = random.randrange(20000, 60000)
        try:
            sock.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            return port
        except OSError:
            continue
    raise OSError("no free port")


def _frames(buf):
    """Split complete MQTT packets off the front of buf: (list of packets, rest)."""
    out = []
    while len(buf) >= 2:
        n, shift, i = 0, 0, 1
        while i < len(buf):
            n |= (buf[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not buf[i - 1] & 0x80:
                break
        else:
            break
        if len(buf) < i + n:
            break
        out.append(bytes(buf[:i + n]))
        buf = buf[i + n:]
    return out, buf


def _body_start(p):
    i = 1
    while p[i] & 0x80:
        i += 1
    return i + 1


class ScriptedBroker:
    """A broker in a thread on a loopback port, one link at a time: CONNECT is answered with
    `connack`, SUBSCRIBE with its SUBACK, the link's first SUBACK followed by `after_subscribe`
    (bytes, or a function of the link number giving them: a retained config/set, say). Every
    packet the client sent is kept per link."""

    def __init__(self, connack=b"\x20\x02\x00\x00", after_subscribe=b""):
        self.connack = connack
        self.after_subscribe = after_subscribe
        self.links = []         # per link: the packets the client sent
        self.conn = None        # the link that subscribed last
        self.running = True
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = bind_free(self.srv)
        self.srv.listen(4)
        self.srv.settimeout(0.1)
        _thread.start_new_thread(self._serve, ())

    def _serve(self):
        while self.running:
            try:
                conn = self.srv.accept()[0]
            except OSError:
                continue
            self.links.append([])
            try:
                self._talk(conn, self.links[-1])
            except OSError:
                pass  # the client went away mid-answer
            conn.close()

    def _talk(self, conn, got):
        conn.settimeout(0.1)
        conn.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: no Nagle wait between packets
        buf = b""
        first = True  # the link's first SUBSCRIBE (config/set) gets after_subscribe
        while self.running:
            try:
                data = conn.recv(4096)
            except OSError:
                continue
            if not data:
                return
            packets, buf = _frames(buf + data)
            for p in packets:
                got.append(p)
                if p[0] == 0x10:
                    _send_all(conn, self.connack)
                elif p[0] == 0x82:
                    self.conn = conn
                    extra = self.after_subscribe if first else b""
                    first = False
                    if callable(extra):
                        extra = extra(len(self.links))
                    i = _body_start(p)
                    _send_all(conn, b"\x90\x03" + p[i:i + 2] + b"\x01" + extra)
                elif p[0] & 0xF6 == 0x32:  # PUBLISH QoS 1: acknowledge
                    i = _body_start(p)
                    j = i + 2 + (p[i] << 8 | p[i + 1])
                    _send_all(conn, b"\x40\x02" + p[j:j + 2])

    def push(self, data):
        """Bytes from the broker on the link that subscribed last."""
        _send_all(self.conn, data)

    def wait_published(self, leaf, count=1, timeout_s=5):
        """The payloads published to `leaf`, once there are `count` (bounded wait)."""
        import time
        for _ in range(timeout_s * 100):
            found = self.published(leaf)
            if len(found) >= count:
                return found
            time.sleep(0.01)
        raise AssertionError("broker saw %d messages on %s, waited for %d"
                             % (len(self.published(leaf)), leaf, count))

    def published(self, leaf, link=None):
        """Payloads the client published to topics ending in `leaf` (on one link or all)."""
        out = []
        for got in self.links if link is None else [self.links[link]]:
            for p in got:
                if p[0] & 0xF0 == 0x30:
                    i = _body_start(p)
                    tl = p[i] << 8 | p[i + 1]
                    if p[i + 2:i + 2 + tl].endswith(leaf.encode()):
                        out.append(p[i + 2 + tl + (2 if p[0] & 6 else 0):])
        return out

    def close(self):
        self.running = False
        self.srv.close()


class NtpServer:
    """SNTP on a loopback UDP port in a thread. `now_unix()` gives the time it answers with;
    None answers "not synchronised" (stratum 0), which a client rejects at once."""

    def __init__(self, now_unix=None):
        self.now_unix = now_unix
        self.queries = 0
        self.running = True
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.port = bind_free(self.sock)
        self.sock.settimeout(0.1)
        _thread.start_new_thread(self._serve, ())

    def _serve(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(64)
            except OSError:
                continue
            self.queries += 1
            reply = bytearray(48)
            reply[0] = 0x24  # version 4, server
            if self.now_unix is not None:
                reply[1] = 2
                secs = int(self.now_unix()) + 2208988800
                reply[40:44] = bytes((secs >> 24 & 255, secs >> 16 & 255, secs >> 8 & 255,
                                      secs & 255))
            reply[24:32] = data[40:48]  # originate = the client's transmit time
            try:
                self.sock.sendto(reply, addr)
            except OSError:
                pass

    def server(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        self.running = False
        self.sock.close()


def _send_all(conn, data):
    while data:
        data = data[conn.send(data):]
