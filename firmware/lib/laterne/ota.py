# Updates over the air, the node's side (docs/node.md): an offer is a manifest (version, files,
# size and SHA-256 of each) authenticated for this node with its own key. Its files come in
# pieces over the node's MQTT session (or are copied from the running app when unchanged) into
# the free slot ota/a or ota/b; each is verified, then one rename of ota/state points the
# loader (/main.py) at them. The new app runs on trial until this module sees it sample,
# store, upload and report, and commits it. Imported only while an update is under way.
import binascii
import hashlib
import json
import os
import struct
import sys

from laterne import VERSION
from laterne.mqtt import MQTTError

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

STATE = "ota/state"     # the loader's record, replaced by rename (see /main.py)
KEY = "ota.key"         # this node's update key in hex, put there by `laterne configure --keys`
CHUNK = const(2048)     # bytes asked for per request (the MQTT receive buffer holds 4 KB)
HEAD = const(10)        # a chunk starts with the offer id (4 bytes), file index (2), offset (4)
ASK_MS = const(15000)   # a request unanswered this long is sent again, then less often
MAX_ASK_MS = const(300000)
MAX_OFFER = const(3800)
MAX_FILES = const(32)
MAX_FILE = const(65536)
MAX_TOTAL = const(393216)
SPARE = const(32768)    # flash that must stay free beside a download (the spool grows too)


# -- authentication ------------------------------------------------------------------------
def hmac_sha256(key, message):
    """RFC 2104 HMAC with SHA-256 (MicroPython has the hash in C, not the hmac module)."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    inner = bytearray(64)
    outer = bytearray(64)
    for i in range(64):
        k = key[i] if i < len(key) else 0
        inner[i] = k ^ 0x36
        outer[i] = k ^ 0x5C
    h = hashlib.sha256(inner)
    h.update(message)
    o = hashlib.sha256(outer)
    o.update(h.digest())
    return o.digest()


def signed_text(node_id, version, offer, mpy, files):
    """The exact text whose HMAC authenticates an offer; the host signs the same text."""
    out = ["laterne-ota 1\nnode %s\nversion %s\noffer %s\nmpy %d\n" % (node_id, version, offer, mpy)]
    for path, size, sha in files:
        out.append("file %s %d %s\n" % (path, size, sha))
    return "".join(out)


def _hex(s, n):
    if not isinstance(s, str) or len(s) != n:
        return False
    for c in s:
        if not ("0" <= c <= "9" or "a" <= c <= "f"):
            return False
    return True


def _same(a, b):
    """Compare two digests in time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def load_key(root):
    """This node's key (32 bytes), or None when it has none."""
    try:
        with open(root + KEY) as f:
            text = f.read(80).strip()
    except OSError:
        return None
    return binascii.unhexlify(text) if _hex(text, 64) else None


def save_key(root, hex_key):
    """Install the node key (laterne configure runs this on the board)."""
    if not _hex(hex_key, 64):
        raise ValueError("an update key is 64 hex digits")
    _write_atomic(root + KEY, hex_key)


def key_id(key):
    """A short fingerprint that tells keys apart without revealing them."""
    return binascii.hexlify(hashlib.sha256(b"laterne-ota-key-id " + key).digest()[:6]).decode()


# -- offers --------------------------------------------------------------------------------
def parse_version(v):
    """(1, 2, 3) for "1.2.3"; ValueError for anything else."""
    parts = v.split(".") if isinstance(v, str) and 0 < len(v) <= 24 else ()
    if not 1 <= len(parts) <= 4:
        raise ValueError("version must look like 1.2.3")
    out = []
    for p in parts:
        if not p.isdigit() or len(p) > 6:
            raise ValueError("version must look like 1.2.3")
        out.append(int(p))
    return tuple(out)


def _path_ok(p):
    if not isinstance(p, str) or not 9 <= len(p) <= 64 or not p.startswith("laterne/"):
        return False
    for part in p.split("/"):
        if not part or part[0] == ".":
            return False
        for c in part:
            if not ("a" <= c <= "z" or "0" <= c <= "9" or c in "_.-"):
                return False
    return True


def parse_offer(message):
    """The offer's fields as a dict; ValueError when it is not a well-formed offer."""
    if len(message) > MAX_OFFER:
        raise ValueError("offer of %d bytes exceeds %d" % (len(message), MAX_OFFER))
    try:
        doc = json.loads(message)
    except ValueError:
        raise ValueError("offer is not JSON")
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise ValueError("offer is not a version 1 manifest")
    files = doc.get("files")
    if not _hex(doc.get("offer"), 8) or not isinstance(doc.get("mpy"), int):
        raise ValueError("offer lacks its id or .mpy version")
    parse_version(doc.get("version"))
    if not isinstance(files, list) or not 1 <= len(files) <= MAX_FILES:
        raise ValueError("offer must list 1..%d files" % MAX_FILES)
    total = 0
    seen = set()
    for f in files:
        if not (isinstance(f, list) and len(f) == 3 and _path_ok(f[0]) and f[0] not in seen
                and isinstance(f[1], int) and not isinstance(f[1], bool)
                and 0 < f[1] <= MAX_FILE and _hex(f[2], 64)):
            raise ValueError("offer lists a bad file entry")
        seen.add(f[0])
        total += f[1]
    if total > MAX_TOTAL:
        raise ValueError("offer of %d bytes of files exceeds %d" % (total, MAX_TOTAL))
    return doc


def verify_offer(doc, node_id, key, mpy):
    """Raise ValueError unless the offer is for this node, authenticated with its key and
    loadable by this MicroPython."""
    if doc.get("node") != node_id:
        raise ValueError("offer is addressed to another node")
    if key is None:
        raise ValueError("this node has no update key (laterne configure --keys)")
    text = signed_text(node_id, doc["version"], doc["offer"], doc["mpy"], doc["files"])
    mac = doc.get("hmac")
    if not _hex(mac, 64) or not _same(hmac_sha256(key, text.encode()), binascii.unhexlify(mac)):
        raise ValueError("offer not authenticated for this node (wrong key, or altered)")
    if doc["mpy"] != mpy:
        raise ValueError("bundle holds .mpy v%d, this node loads v%d" % (doc["mpy"], mpy))


def trial_limits(cfg):
    """(min_s, max_s, max_boots) of a new app's trial under this config: it must run at least
    min_s (and at least one upload interval) before it can prove itself, and has max_s of one
    boot, or max_boots boots, to do so."""
    min_s = max(cfg["upload_interval_s"], 120)
    max_s = 3 * min_s
    if cfg["power_mode"] == "deep_sleep":
        return min_s, max_s, max_s // cfg["sample_interval_s"] + 3
    return min_s, max_s, 4


def _mpy():
    return getattr(sys.implementation, "_mpy", 6) & 0xFF


# -- files ---------------------------------------------------------------------------------
def _size(path):
    try:
        return os.stat(path)[6]
    except OSError:
        return -1


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


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


def _write_atomic(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)  # littlefs renames atomically over the old file


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


def _free_bytes(root):
    try:
        st = os.statvfs(root or ".")
        return st[0] * st[4]
    except (OSError, AttributeError):
        return None


# -- the updater ---------------------------------------------------------------------------
class Updater:
    """One node's update: the offer, the download, the switch, and the trial that follows.
    Driven by the node: on_message() from the MQTT session, pump() after each poll,
    after_upload() after each upload, stay_awake() in a deep-sleep upload wake."""

    def __init__(self, node):
        self.node = node
        self.state = node.ota_state or {}
        self.trial = self.state.get("trial")
        self.first_seq = node.spool.next_seq  # readings from here on are this boot's own
        self.last = None         # the outcome to report: refused, failed, withdrawn ...
        self.files = None        # the download under way: [[path, size, sha hex], ...]
        self.version = None
        self.offer = None        # its offer id (8 hex digits)
        self.slot = None         # "a" or "b": never the slot of the running app
        self.index = 0           # the file being fetched
        self.offset = 0          # its bytes on flash
        self.fetched = False     # a chunk of this file arrived (a bad hash is then counted)
        self.copied = -1         # the file last copied from the running app (tried once)
        self.bad = 0             # downloaded files that did not match their hash
        self.asked = None        # ticks_ms of the outstanding request
        self.wait_ms = ASK_MS
        self.subscribed = -1     # uplink.connects when ota/chunk was last subscribed
        self.status_due = False
        self.buf = None

    # -- input from the MQTT session (never raises into it: node.guard catches) --------------
    def on_message(self, topic, message):
        if topic.endswith("/ota/offer"):
            self._offer(message)
        elif topic.endswith("/ota/chunk"):
            try:
                self._chunk(message)
            except OSError as e:
                self._stop("failed", "flash: %s" % e)

    def _offer(self, message):
        if not message:  # the push withdrew it (an empty retained message)
            if self.files is not None:
                self._stop("withdrawn", "the offer was withdrawn")
            return
        doc = None
        try:
            doc = parse_offer(message)
            if self.trial and doc["offer"] == self.trial["offer"]:
                return  # the offer of the trial under way, still retained
            verify_offer(doc, self.node.node_id, load_key(self.node.root), _mpy())
            if self.trial:
                raise ValueError("busy: %s is on trial" % VERSION)
            if doc["offer"] == self.offer:
                return  # the same offer again, after a reconnect
            if doc["version"] == VERSION:
                return  # already running it
            if parse_version(doc["version"]) < parse_version(VERSION):
                raise ValueError("%s is older than the running %s" % (doc["version"], VERSION))
            self._start(doc)
        except ValueError as e:
            self.last = {"version": doc and doc["version"], "offer": doc and doc["offer"],
                         "result": "refused", "reason": str(e)}
            self.node.log("update refused: %s" % e)
            self.status_due = True
        except OSError as e:
            self._stop("failed", "flash: %s" % e)

    def _start(self, doc):
        files = doc["files"]
        root = self.node.root
        total = 0
        for f in files:
            total += f[1]
        free = _free_bytes(root)
        if free is not None and free < total + SPARE:
            raise ValueError("not enough flash: %d bytes free for %d" % (free, total))
        self.slot = "b" if self.state.get("slot") == "a" else "a"
        top = root + "ota/" + self.slot
        _mkdirs(top + "/")
        _clean(top, [f[0] for f in files])
        for path, size, sha in files:
            if _size(top + "/" + path) != size:
                _remove(top + "/" + path)  # a piece of an earlier download: fetched again
        self.files, self.version, self.offer = files, doc["version"], doc["offer"]
        self.offer_raw = binascii.unhexlify(self.offer)
        self.index = self.offset = self.bad = 0
        self.copied = -1
        self.fetched = False
        self.asked = None
        self.last = None
        self.buf = bytearray(512)
        self.node.log("update: fetching %s (%d files, %d bytes) into ota/%s"
                      % (self.version, len(files), total, self.slot))
        self.status_due = True

    def _chunk(self, message):
        if self.files is None or len(message) <= HEAD:
            return
        offer, index, offset = struct.unpack(">4sHI", message[:HEAD])
        if offer != self.offer_raw or index != self.index or offset != self.offset:
            return  # late, repeated or meant for another offer
        path, size, sha = self.files[index]
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
        node = self.node
        uplink = node.uplink
        if not uplink.is_up():
            return
        if self.status_due:
            self.status_due = False
            node.publish_status()
        if self.files is None:
            if not self.trial:
                self.finish()
            return
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
        if self.index >= len(self.files):
            return self._switch()
        path, size, sha = self.files[self.index]
        dest = self._dest(path)
        have = _size(dest)
        if have == size:
            if _same(_sha(dest, self.buf), binascii.unhexlify(sha)):
                self.index += 1
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
                                 '"offset":%d,"size":%d}' % (self.node.node_id, self.offer,
                                                            self.index, self.offset, CHUNK))
        self.asked = now

    def _copy_unchanged(self, path, sha, dest):
        src = _running_dir() + path[7:]
        if _size(src) < 0 or not _same(_sha(src, self.buf), binascii.unhexlify(sha)):
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
        min_s, max_s, max_boots = trial_limits(node.cfg)
        record = {"slot": self.slot, "version": self.version, "previous": VERSION,
                  "trial": {"good": self.state.get("slot") or "", "offer": self.offer,
                            "boots": 0, "min_s": min_s, "max_s": max_s, "max_boots": max_boots},
                  "last": {"version": self.version, "offer": self.offer, "result": "trial",
                           "reason": None}}
        _write_atomic(node.root + STATE, json.dumps(record))
        node.log("update: %s verified in ota/%s; restarting into it on trial"
                 % (self.version, self.slot))
        self.files = None
        self.last = {"version": self.version, "offer": self.offer, "result": "switching",
                     "reason": None}
        node.publish_status()
        node.uplink.close()  # DISCONNECT: a planned restart does not fire the last will
        node.hw.reset()

    def _stop(self, result, why):
        self.node.log("update %s: %s" % (result, why))
        self.last = {"version": self.version, "offer": self.offer, "result": result,
                     "reason": why}
        self.files = None
        self.offer = None
        self.buf = None
        self.status_due = True

    # -- the trial of a new app ----------------------------------------------------------------
    def after_upload(self, drained):
        """Commit the new app once it ran min_s, sampled and stored readings of its own and
        uploaded all of them (acknowledged); it publishes its status right after."""
        trial = self.trial
        node = self.node
        if not trial or not drained or node.spool.next_seq <= self.first_seq:
            return
        clock = node.clock
        age = clock.ticks_diff(clock.ticks_ms(), node.started) // 1000
        if node.cfg["power_mode"] == "deep_sleep":
            age += (trial["boots"] - 1) * node.cfg["sample_interval_s"]
        if age < trial["min_s"]:
            return
        state = self.state
        record = {"slot": state["slot"], "version": VERSION, "previous": state["previous"],
                  "last": {"version": VERSION, "offer": trial["offer"], "result": "ok",
                           "reason": None}}
        _write_atomic(node.root + STATE, json.dumps(record))
        node.log("update: %s proved itself and is kept" % VERSION)
        node.ota_state = self.state = record
        self.trial = None
        node.publish_status()
        self.finish()

    def stay_awake(self):
        """Deep sleep: keep this upload wake going while a download runs, for half a sample
        interval at most; the rest waits for the next upload wake."""
        node = self.node
        clock = node.clock
        budget = min(30000, node.cfg["sample_interval_s"] * 500)
        start = clock.ticks_ms()
        while node.updater is self and (self.files is not None or self.status_due) \
                and node.uplink.is_up() and clock.ticks_diff(clock.ticks_ms(), start) < budget:
            node.hw.feed()
            node.service(200)

    # -- reporting and the end -----------------------------------------------------------------
    def report(self):
        """The `update` field of the node's status."""
        if self.files is not None:
            done = total = 0
            for i, f in enumerate(self.files):
                total += f[1]
                done += f[1] if i < self.index else (self.offset if i == self.index else 0)
            return {"version": self.version, "offer": self.offer, "result": "downloading",
                    "progress": done * 100 // total}
        return self.last or self.state.get("last")

    def finish(self):
        """Nothing left to do: keep the outcome for the status and drop this module."""
        node = self.node
        if self.last is not None:
            state = dict(node.ota_state or {})
            state["last"] = self.last
            node.ota_state = state
        node.updater = None
        sys.modules.pop("laterne.ota", None)
        import laterne
        laterne.__dict__.pop("ota", None)
