# An update offer, checked (docs/node.md): a manifest (version, .mpy version, path, size and
# SHA-256 of each file) authenticated with HMAC-SHA256 under this node's own key, so a key
# extracted from one node cannot update another. The host signs the same signed_lines().
# An accepted offer's file list goes to flash (ota/offer) rather than staying in RAM.
# laterne.ota imports this module to check an offer and drops it right after.
import binascii
import hashlib
import json
import os
import sys

from laterne import VERSION

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

KEY = "ota.key"         # this node's update key in hex, put there by `laterne configure --keys`
MAX_OFFER = const(3800)  # the offer must fit the node's MQTT receive buffer (4 KB)
MAX_FILES = const(32)
MAX_FILE = const(65536)
MAX_TOTAL = const(393216)


# -- authentication ------------------------------------------------------------------------
class Hmac:
    """RFC 2104 HMAC with SHA-256, fed piece by piece (MicroPython has the hash in C, not the
    hmac module)."""

    def __init__(self, key):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        pad = bytearray(64)
        for i in range(64):
            pad[i] = (key[i] if i < len(key) else 0) ^ 0x36
        self.inner = hashlib.sha256(pad)
        for i in range(64):
            pad[i] ^= 0x36 ^ 0x5C
        self.outer = hashlib.sha256(pad)

    def update(self, data):
        self.inner.update(data)

    def digest(self):
        self.outer.update(self.inner.digest())
        return self.outer.digest()


def signed_lines(node_id, version, offer, mpy, files):
    """The lines whose HMAC authenticates an offer, in order; the host signs the same."""
    yield "laterne-ota 1\nnode %s\nversion %s\noffer %s\nmpy %d\n" % (node_id, version, offer, mpy)
    for path, size, sha in files:
        yield "file %s %d %s\n" % (path, size, sha)


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
    """Install the node key (`laterne configure --keys` runs this on the board)."""
    if not _hex(hex_key, 64):
        raise ValueError("an update key is 64 hex digits")
    with open(root + KEY + ".new", "w") as f:
        f.write(hex_key)
    os.rename(root + KEY + ".new", root + KEY)


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
    doc["total"] = total
    return doc


def verify_offer(doc, node_id, key, mpy, out=None):
    """Raise ValueError unless the offer is for this node, authenticated with its key and
    loadable by this MicroPython. Each file's line "path size sha" is written to `out`."""
    if doc.get("node") != node_id:
        raise ValueError("offer is addressed to another node")
    if key is None:
        raise ValueError("this node has no update key (laterne configure --keys)")
    mac = Hmac(key)
    for line in signed_lines(node_id, doc["version"], doc["offer"], doc["mpy"], doc["files"]):
        mac.update(line.encode())
        if out is not None and line.startswith("file "):
            out.write(line[5:])
    given = doc.get("hmac")
    if not _hex(given, 64) or not _same(mac.digest(), binascii.unhexlify(given)):
        raise ValueError("offer not authenticated for this node (wrong key, or altered)")
    if doc["mpy"] != mpy:
        raise ValueError("bundle holds .mpy v%d, this node loads v%d" % (doc["mpy"], mpy))


def check(message, node_id, root, path):
    """({version, offer, count, total}, None) for an offer this node accepts, its files listed
    in file `path`; (what could be read of it or None, reason) for one it refuses; (None,
    None) for an offer of the running version."""
    doc = None
    try:
        doc = parse_offer(message)
        info = {"version": doc["version"], "offer": doc["offer"], "count": len(doc["files"]),
                "total": doc["total"]}
        if doc["version"] == VERSION:
            return None, None  # already running it: nothing to do
        if parse_version(doc["version"]) < parse_version(VERSION):
            verify_offer(doc, node_id, load_key(root), _mpy())
            raise ValueError("%s is older than the running %s" % (doc["version"], VERSION))
        with open(path + ".new", "w") as out:
            verify_offer(doc, node_id, load_key(root), _mpy(), out)
        os.rename(path + ".new", path)
    except ValueError as e:
        return doc and {"version": doc["version"], "offer": doc["offer"]}, str(e)
    return info, None


def _mpy():
    return getattr(sys.implementation, "_mpy", 6) & 0xFF
