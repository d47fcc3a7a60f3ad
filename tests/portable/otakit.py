# Helpers for the portable tests of updates over the air: a node stand-in with exactly what
# laterne.ota.Updater uses, and a push played in-process (offers signed with the real HMAC,
# chunk requests answered at once), on a fresh filesystem root per test.
import binascii
import hashlib
import json
import os

import vclock
from laterne import ota, otaoffer, timebase
from test_spool import fresh_root  # noqa: F401 (a new littlefs or temp dir per test)

KEY = b"\x11" * 32
CFG = {"upload_interval_s": 120, "sample_interval_s": 60, "power_mode": "always_on"}


class Reset(BaseException):
    """hw.reset(): the board restarts (as machine.BoardReset on the virtual board)."""


class Spool:
    def __init__(self):
        self.next_seq = 1


class Client:
    def __init__(self):
        self.subscriptions = []

    def subscribe(self, topic, qos):
        self.subscriptions.append(topic)
        return qos


class Uplink:
    def __init__(self):
        self.up = True
        self.connects = 1
        self.client = Client()
        self.sent = []      # (leaf, message) of every publish
        self.closed = 0

    def is_up(self):
        return self.up

    def topic(self, leaf):
        return "laterne/lamp-t/" + leaf

    def publish(self, leaf, message, retain=False, qos=0):
        self.sent.append((leaf, message))

    def close(self):
        self.closed += 1

    def drop(self, reason):
        self.up = False


class Hw:
    def reset(self):
        raise Reset()

    def feed(self):
        pass


class Node:
    def __init__(self, root, state=None, cfg=None, key=KEY):
        if key is not None:  # what `laterne configure --keys` put on the node
            otaoffer.save_key(root, binascii.hexlify(key).decode())
        self.root = root
        self.node_id = "lamp-t"
        self.ota_state = state
        self.updater = None
        self.spool = Spool()
        self.clock = vclock.VClock()
        self.timebase = timebase.ClockState(self.clock, 1)  # its uptime_s() is the app's age
        self.cfg = dict(cfg or CFG)
        self.uplink = Uplink()
        self.hw = Hw()
        self.statuses = 0
        self.lines = []

    def log(self, line):
        self.lines.append(line)

    def publish_status(self):
        self.statuses += 1

    def ota(self):
        if self.updater is None:
            self.updater = ota.Updater(self)
        return self.updater

    def take(self, message):
        """An offer arrives (as the node routes ota/ topics to its updater)."""
        self.ota().on_message("laterne/lamp-t/ota/offer", message)

    def service(self, timeout_ms):
        if self.updater is not None:
            self.updater.pump()


def hmac(key, data):
    h = otaoffer.Hmac(key)
    h.update(data)
    return h.digest()


def sha(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def app_files(version="9.0.0", extra=b"", size=5000):
    """A small app: {path: bytes}."""
    return {"laterne/__init__.mpy": b"VERSION " + version.encode(),
            "laterne/node.mpy": b"n" * size + extra,
            "laterne/hw/app.mpy": b"a" * 300}


def offer(files, version="9.0.0", offer_id="0a0b0c0d", key=KEY, node="lamp-t", mpy=6):
    listing = [[p, len(files[p]), sha(files[p])] for p in sorted(files)]
    text = "".join(otaoffer.signed_lines(node, version, offer_id, mpy, listing))
    mac = binascii.hexlify(hmac(key, text.encode())).decode()
    return json.dumps({"v": 1, "node": node, "version": version, "offer": offer_id, "mpy": mpy,
                       "files": listing, "hmac": mac}).encode()


class Push:
    """Answers the node's ota/get requests from `files` (as listed in the offer)."""

    def __init__(self, node, files, offer_id="0a0b0c0d"):
        self.node = node
        self.files = files
        self.names = sorted(files)
        self.offer_id = offer_id
        self.served = 0     # bytes of file data sent
        self.asked = 0
        self.alter = None   # path whose bytes are served altered (a tampered file)

    def answer(self):
        sent = self.node.uplink.sent
        while sent:
            leaf, message = sent.pop(0)
            if leaf != "ota/get":
                continue
            req = json.loads(message)
            self.asked += 1
            name = self.names[req["file"]]
            body = self.files[name]
            if name == self.alter:
                body = body[:-1] + bytes([body[-1] ^ 1])
            piece = body[req["offset"]:req["offset"] + req["size"]]
            head = binascii.unhexlify(req["offer"]) + bytes(
                [req["file"] >> 8, req["file"] & 255]) + req["offset"].to_bytes(4, "big")
            self.served += len(piece)
            self.node.ota().on_message("laterne/lamp-t/ota/chunk", head + piece)

    def run(self, steps=400):
        """Pump and answer until the node resets (returns True) or `steps` pass."""
        for _ in range(steps):
            updater = self.node.updater
            if updater is None:
                return False
            try:
                updater.pump()
            except Reset:
                return True
            self.answer()
        return False


def read_state(root):
    with open(root + "ota/state") as f:
        return json.loads(f.read())


def slot_files(root, slot):
    out = {}
    top = root + "ota/" + slot

    def walk(rel):
        for name in os.listdir(top + rel):
            p = rel + "/" + name
            if os.stat(top + p)[0] & 0x4000:
                walk(p)
            else:
                with open(top + p, "rb") as f:
                    out[p[1:]] = f.read()
    walk("")
    return out

