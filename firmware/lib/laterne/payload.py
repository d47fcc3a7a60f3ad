# The JSON messages of the MQTT contract (docs/mqtt.md, docs/mqtt.schema.json): readings
# batches, status, last will, config results, and parsing of config/set requests. A readings
# batch is written by Batch straight from the spool's records into a buffer (when draining,
# the MQTT client's packet buffer): no object per reading, no string joins.
import json

from laterne import flags
from laterne import reading as rec

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

V = 1
READING_COLS = '["seq","ts","t","p","h","flags"]'  # the reading's first six fields
CONFIG_SET_MAX = 2048  # bytes; larger requests are refused unread
ROW_MAX = const(52)    # [4294967295,4294967295,-32768,131071,16383,65535],
_NULL = b"null"


def topic(prefix, node_id, leaf):
    return "%s/%s/%s" % (prefix, node_id, leaf)


def _u16(b, i):
    return b[i] | b[i + 1] << 8


def _put_int(buf, i, n):
    """Write the small int n in decimal at buf[i]; return the index after it."""
    if n < 0:
        buf[i] = 45  # -
        i += 1
        n = -n
    j = i
    while True:
        buf[j] = 48 + n % 10
        n //= 10
        j += 1
        if not n:
            break
    k = j - 1
    while i < k:  # the digits came least significant first
        buf[i], buf[k] = buf[k], buf[i]
        i += 1
        k -= 1
    return j


def _put_u32(buf, i, hi, lo):
    """Write hi * 65536 + lo in decimal without making that (heap) integer on a 32-bit port:
    split it into q * 10000 + r, each part a small int."""
    t = hi % 10000 * 65536 + lo
    q = hi // 10000 * 65536 + t // 10000
    r = t % 10000
    if not q:
        return _put_int(buf, i, r)
    i = _put_int(buf, i, q)
    buf[i] = 48 + r // 1000
    buf[i + 1] = 48 + r // 100 % 10
    buf[i + 2] = 48 + r // 10 % 10
    buf[i + 3] = 48 + r % 10
    return i + 4


class Batch:
    """One readings message, as a sink for Spool.read(): begin() writes the envelope into
    buf, each add() one row from a spool record, finish() closes it and returns its length.
    Stored ts are fixed up by the timebase (null when unknown); a skipped channel is null."""

    def __init__(self, node_id, timebase):
        self.head = ('{"v":%d,"node":%s,"cols":%s,"rows":[' % (
            V, json.dumps(node_id), READING_COLS)).encode()
        self.timebase = timebase
        self.buf = None
        self.start = 0
        self.i = 0
        self.room = 0   # rows that still fit (Spool.read() stops at 0)
        self.count = 0  # rows written
        self.last = 0   # seq of the last row

    def size(self, rows):
        """Bytes a batch of up to `rows` rows may need."""
        return len(self.head) + rows * ROW_MAX + 2

    def begin(self, buf, at, rows):
        """Start a message at buf[at:] for up to `rows` rows (fewer when buf is short)."""
        n = len(self.head)
        buf[at:at + n] = self.head
        self.buf, self.start, self.i, self.count = buf, at, at + n, 0
        self.room = max(0, min(rows, (len(buf) - self.i - 2) // ROW_MAX))

    def add(self, b, off):
        buf = self.buf
        i = self.i
        if self.count:
            buf[i] = 44  # ,
            i += 1
        buf[i] = 91  # [
        seq_lo, seq_hi = _u16(b, off + rec.AT_SEQ), _u16(b, off + rec.AT_SEQ + 2)
        i = _put_u32(buf, i + 1, seq_hi, seq_lo)
        buf[i] = 44
        fl = _u16(b, off + rec.AT_FLAGS)
        lo, hi = _u16(b, off + rec.AT_TS), _u16(b, off + rec.AT_TS + 2)
        if fl & flags.TIME_RELATIVE:  # rare: before this boot knew the time
            ts, fl = self.timebase.fix(hi << 16 | lo, _u16(b, off + rec.AT_BOOT), fl)
            if ts is None:
                i = self._null(i + 1)
            else:
                i = _put_u32(buf, i + 1, ts >> 16, ts & 0xFFFF)
        else:
            i = _put_u32(buf, i + 1, hi, lo)
        t = _u16(b, off + rec.AT_T)
        ph = off + rec.AT_PH  # p: bits 14..30 of the u32, h: bits 0..13
        i = self._value(i, fl & flags.T_SKIPPED, t - 65536 if t & 0x8000 else t)
        i = self._value(i, fl & flags.P_SKIPPED,
                        b[ph + 1] >> 6 | b[ph + 2] << 2 | (b[ph + 3] & 0x7F) << 10)
        i = self._value(i, fl & flags.H_SKIPPED, _u16(b, ph) & 0x3FFF)
        buf[i] = 44
        i = _put_int(buf, i + 1, fl)
        buf[i] = 93  # ]
        self.i = i + 1
        self.count += 1
        self.room -= 1
        self.last = seq_hi << 16 | seq_lo

    def _null(self, i):
        self.buf[i:i + 4] = _NULL
        return i + 4

    def _value(self, i, skipped, v):
        """`,v` (or `,null` for a skipped channel) at buf[i]."""
        self.buf[i] = 44
        return self._null(i + 1) if skipped else _put_int(self.buf, i + 1, v)

    def finish(self):
        """Close the message; returns its length from `at`."""
        self.buf[self.i] = 93
        self.buf[self.i + 1] = 125  # ]}
        n = self.i + 2 - self.start
        self.buf = None
        return n


def _envelope(node_id, **fields):
    d = {"v": V, "node": node_id}
    d.update(fields)
    return d


def status_json(node_id, fields):
    """Retained status: {"v":1,"node":id,"online":true, ...health fields}. fields (a dict
    made for this message) takes the envelope keys itself: no copy on the heap."""
    fields["v"] = V
    fields["node"] = node_id
    fields["online"] = True
    return json.dumps(fields)


def will_json(node_id):
    return json.dumps(_envelope(node_id, online=False))


def config_result_json(node_id, request_id, ok, errors, applied_keys):
    return json.dumps(_envelope(node_id, id=request_id, ok=bool(ok), errors=list(errors),
                                applied=list(applied_keys)))


def parse_config_set(message):
    """(request_id, patch) from a config/set payload {"id": str|null, "set": {...}}.
    Raises ValueError with the reason for anything else."""
    if len(message) > CONFIG_SET_MAX:
        raise ValueError("config/set: message of %d bytes exceeds %d" % (len(message), CONFIG_SET_MAX))
    try:
        text = bytes(message).decode("utf-8")
    except UnicodeError:
        raise ValueError("config/set: not UTF-8")
    try:
        doc = json.loads(text)
    except ValueError:
        raise ValueError("config/set: not valid JSON")
    if not isinstance(doc, dict):
        raise ValueError("config/set: must be a JSON object")
    for key in doc:
        if key not in ("id", "set"):
            raise ValueError("config/set: unknown field %r" % key)
    rid = doc.get("id")
    if rid is not None and not (isinstance(rid, str) and len(rid) <= 64):
        raise ValueError("config/set: id must be a string of at most 64 characters")
    patch = doc.get("set")
    if not isinstance(patch, dict) or not patch:
        raise ValueError("config/set: 'set' must be a non-empty object")
    return rid, patch
