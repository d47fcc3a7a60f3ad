# Updates over the air, the node's side (docs/node.md): an offer accepted by laterne.otaoffer
# names the files of the new app. They come in pieces over the node's MQTT session (or are
# copied from the running app when unchanged) into the free slot ota/a or ota/b; each is
# verified by SHA-256, then one rename of ota/state points the loader (/main.py) at them and
# the node restarts into the new app on trial (laterne.otagate). Imported only while an
# offer is handled or a download runs; dropped afterwards.
import binascii
import hashlib
import os
import struct

from laterne import VERSION, otagate
from laterne.mqtt import MQTTError

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

CHUNK = const(1024)     # bytes asked for per request: small, as a fragmented heap needs
HEAD = const(10)        # a chunk starts with the offer id (4 bytes), file index (2), offset (4)
ASK_MS = const(15000)   # a request unanswered this long is sent again, then less often
MAX_ASK_MS = const(300000)
SPARE = const(32768)    # flash that must stay free beside a download (the spool grows too)


def trial_limits(cfg):
    """(min_s, max_s, max_boots) of a new app's trial under this config: it must run at least
    min_s (and at least one upload interval) before it can prove itself, and has max_s of one
    boot, or max_boots boots, to do so."""
    min_s = max(cfg["upload_interval_s"], 120)
    max_s = 3 * min_s
    if cfg["power_mode"] == "deep_sleep":
        return min_s, max_s, max_s // cfg["sample_interval_s"] + 3
    return min_s, max_s, 4


# -- files ---------------------------------------------------------------------------------
def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _mkdirs(path):
    """Create the folders of a file's path."""
    i = path.find("/", 1)
    while i > 0:
        try:
            os.mkdir(path[:i])
        except OSError:
            pass  # it exists
        i = path.find("/", i + 1)


def _sha(path, buf):
    h = hashlib.sha256()
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return h.digest()


def _clean(top, keep, rel=""):
    """Remove everything under folder `top` whose path is not in `keep`."""
    try:
        names = os.listdir(top + rel)
    except OSError:
        return
    for name in names:
        r = rel + "/" + name
        if os.stat(top + r)[0] & 0x4000:
            _clean(top, keep, r)
            if not any(k.startswith(r[1:] + "/") for k in keep):
                os.rmdir(top + r)
        elif r[1:] not in keep:
            os.remove(top + r)


def _running_dir():
    """Where the running app's laterne package lives (a slot, or the factory /lib)."""
    import laterne
    p = laterne.__path__
    return p if isinstance(p, str) else p[0]


# -- the updater ---------------------------------------------------------------------------
class Updater:
    """node.updater while an offer is handled or its download runs. Driven by the node:
    on_message() from the MQTT session, pump() after each poll, stay_awake() in a deep-sleep
    upload wake. After the last file it switches and restarts the node."""

    def __init__(self, node):
        self.node = node
        self.state = node.ota_state or {}
        self.manifest = node.root + "ota/offer"  # the accepted offer's "path size sha" lines
        self.last = None         # the outcome to report: refused, failed, withdrawn ...
        self.offer = None        # the offer being downloaded: {version, offer, count, total}
        self.offer_id = None     # its id as the 4 bytes that start each chunk
        self.slot = None         # "a" or "b": never the slot of the running app
        self.index = 0           # the file being fetched: its (path, size, sha) in self.entry
        self.entry = None
        self.done = 0            # bytes of the files before it
        self.offset = 0          # its bytes on flash
        self.copied = -1         # the file last copied from the running app (tried once)
        self.fetched = False     # a chunk of this file arrived (a bad hash is then counted)
        self.bad = 0             # downloaded files that did not match their hash
        self.asked = None        # ticks_ms of the outstanding request
        self.wait_ms = ASK_MS
        self.subscribed = -1     # uplink.connects when ota/chunk was last subscribed
        self.status_due = False
        self.buf = bytearray(512)

    # -- input from the MQTT session ---------------------------------------------------------
    def on_message(self, topic, message):
        try:
            if topic.endswith("/ota/offer"):
                self._offer(message)
            elif topic.endswith("/ota/chunk"):
                self._chunk(message)
        except OSError as e:
            self._stop("failed", "flash: %s" % e)

    def _offer(self, message):
        if not message:  # the push withdrew it (an empty retained message)
            if self.offer is not None:
                self._stop("withdrawn", "the offer was withdrawn")
            return
        from laterne import otaoffer
        _mkdirs(self.manifest)
        offer, why = otaoffer.check(message, self.node.node_id, self.node.root, self.manifest)
        otagate.drop("otaoffer")
        if offer is None and why is None:
            return  # the running version
        if why is None and self.offer is not None and offer["offer"] == self.offer["offer"]:
            return  # the same offer again, after a reconnect
        if why is None:
            why = self._start(offer)
        if why is not None:
            self.last = {"version": offer and offer["version"], "offer": offer and offer["offer"],
                         "result": "refused", "reason": why}
            self.node.log("update refused: %s" % why)
            self.status_due = True

    def _start(self, offer):
        root = self.node.root
        self.slot = "b" if self.state.get("slot") == "a" else "a"
        top = root + "ota/" + self.slot
        _mkdirs(top + "/")
        keep = []
        need = offer["total"] + SPARE
        with open(self.manifest) as f:
            lines = f.read().split("\n")
        for line in lines:
            if not line:
                continue
            path, size = line.split(" ", 2)[:2]
            size = int(size)
            keep.append(path)
            have = _size(top + "/" + path)
            if have == size:
                need -= size  # maybe this very file, from a download a reset cut short
            elif have >= 0:
                os.remove(top + "/" + path)  # a piece of an earlier download: fetched again
        _clean(top, keep)
        try:
            st = os.statvfs(root or ".")
            free = st[0] * st[4]
        except (OSError, AttributeError):
            free = need
        if free < need:
            return "not enough flash: %d bytes free, %d needed" % (free, need)
        self.offer = offer
        self.offer_id = binascii.unhexlify(offer["offer"])
        self.index = self.done = self.offset = self.bad = 0
        self.entry = self._entry(0)
        self.copied = -1
        self.fetched = False
        self.asked = None
        self.last = None
        self.node.log("update: fetching %s (%d files, %d bytes) into ota/%s"
                      % (offer["version"], offer["count"], offer["total"], self.slot))
        self.status_due = True

    def _entry(self, index):
        """(path, size, sha256) of file `index` of the offer, or None after the last."""
        with open(self.manifest) as f:
            for i, line in enumerate(f):
                if i == index:
                    path, size, sha = line.split()
                    return path, int(size), binascii.unhexlify(sha)
        return None

    def _chunk(self, message):
        if self.offer is None or self.entry is None or len(message) <= HEAD:
            return
        offer, index, offset = struct.unpack(">4sHI", message[:HEAD])
        if offer != self.offer_id or index != self.index or offset != self.offset:
            return  # late, repeated or meant for another offer
        path, size, sha = self.entry
        if offset + len(message) - HEAD > size:
            return
        dest = self._dest(path)
        if offset == 0:
            _mkdirs(dest)
        with open(dest, "ab" if offset else "wb") as f:
            f.write(memoryview(message)[HEAD:])
        self.offset = _size(dest)
        self.fetched = True
        self.asked = None
        self.wait_ms = ASK_MS

    # -- work between polls ------------------------------------------------------------------
    def pump(self):
        uplink = self.node.uplink
        if not uplink.is_up():
            return
        if self.status_due:
            self.status_due = False
            self.node.publish_status()
        if self.offer is None:
            return self.finish()
        try:
            if self.subscribed != uplink.connects:
                uplink.client.subscribe(uplink.topic("ota/chunk"), 0)
                self.subscribed = uplink.connects
                self.asked = None
            self._step()
        except OSError as e:
            self._stop("failed", "flash: %s" % e)
        except MQTTError as e:  # the link failed under a request: it comes back later
            uplink.drop(e)

    def _step(self):
        """One piece of work: verify a complete file, copy an unchanged one from the running
        app, or ask for the next chunk; after the last file, switch."""
        if self.entry is None:
            return self._switch()
        path, size, sha = self.entry
        dest = self._dest(path)
        have = _size(dest)
        if have == size:
            if _sha(dest, self.buf) == sha:
                self.index += 1
                self.done += size
                self.entry = self._entry(self.index)
                self.offset = 0
                self.fetched = False
                self.asked = None
                return
            os.remove(dest)
            if self.fetched:
                self.bad += 1
                self.fetched = False
                if self.bad >= 2:
                    return self._stop("refused", "%s does not match its SHA-256 (tampered or "
                                      "damaged in transit)" % path)
            have = -1
        if have < 0 and self.copied != self.index:
            self.copied = self.index
            if self._copy_unchanged(path, sha, dest):
                return
        self.offset = max(have, 0)
        clock = self.node.clock
        now = clock.ticks_ms()
        if self.asked is not None and clock.ticks_diff(now, self.asked) < self.wait_ms:
            return
        if self.asked is not None:
            self.wait_ms = min(self.wait_ms * 2, MAX_ASK_MS)  # nobody answers: ask less often
        self.node.uplink.publish("ota/get", '{"v":1,"node":"%s","offer":"%s","file":%d,'
                                 '"offset":%d,"size":%d}' % (self.node.node_id, self.offer["offer"],
                                                            self.index, self.offset, CHUNK))
        self.asked = now

    def _copy_unchanged(self, path, sha, dest):
        src = _running_dir() + path[7:]
        if _size(src) < 0 or _sha(src, self.buf) != sha:
            return False
        _mkdirs(dest)
        with open(src, "rb") as fi:
            with open(dest, "wb") as fo:
                while True:
                    n = fi.readinto(self.buf)
                    if not n:
                        break
                    fo.write(memoryview(self.buf)[:n])
        return True  # the next step verifies the copy

    def _dest(self, path):
        return "%sota/%s/%s" % (self.node.root, self.slot, path)

    def _switch(self):
        node = self.node
        version, offer = self.offer["version"], self.offer["offer"]
        min_s, max_s, max_boots = trial_limits(node.cfg)
        otagate.save(node.root, {
            "slot": self.slot, "version": version, "previous": self.state.get("version") or VERSION,
            "trial": {"good": self.state.get("slot") or "", "offer": offer, "boots": 0,
                      "min_s": min_s, "max_s": max_s, "max_boots": max_boots},
            "last": {"version": version, "offer": offer, "result": "trial", "reason": None}})
        node.log("update: %s verified in ota/%s; restarting into it on trial" % (version, self.slot))
        self.offer = None
        self.last = {"version": version, "offer": offer, "result": "switching", "reason": None}
        node.publish_status()
        node.uplink.close()  # DISCONNECT: a planned restart does not fire the last will
        node.hw.reset()

    def _stop(self, result, why):
        offer = self.offer or {}
        self.node.log("update %s: %s" % (result, why))
        self.last = {"version": offer.get("version"), "offer": offer.get("offer"),
                     "result": result, "reason": why}
        self.offer = None
        self.status_due = True

    def stay_awake(self):
        """Deep sleep: keep this upload wake going while a download runs, for half a sample
        interval at most; the rest waits for the next upload wake."""
        node = self.node
        clock = node.clock
        budget = min(30000, node.cfg["sample_interval_s"] * 500)
        start = clock.ticks_ms()
        while node.updater is self and (self.offer is not None or self.status_due) \
                and node.uplink.is_up() and clock.ticks_diff(clock.ticks_ms(), start) < budget:
            node.hw.feed()
            node.service(200)

    def after_upload(self, drained):
        pass  # the trial's health gate is laterne.otagate

    # -- reporting and the end ---------------------------------------------------------------
    def report(self):
        """The `update` field of the node's status."""
        offer = self.offer
        if offer is None:
            return self.last or self.state.get("last")
        return {"version": offer["version"], "offer": offer["offer"], "result": "downloading",
                "progress": (self.done + self.offset) * 100 // offer["total"]}

    def finish(self):
        """Nothing left to do: keep the outcome for the status and drop this module."""
        node = self.node
        if self.last is not None:
            state = dict(node.ota_state or {})
            state["last"] = self.last
            node.ota_state = state
        node.updater = None
        otagate.drop("ota")
