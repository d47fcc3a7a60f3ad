# The MQTT contract's messages as the ingest reads them (docs/mqtt.md): a readings batch
# becomes stored rows plus a reject for every row that breaks the contract, a status or last
# will becomes a node health row. Nothing here raises on bad input: every problem is a reject
# with its reason. Pure functions, no I/O.
import json
import re

NODE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
COLS = ["seq", "ts", "t", "p", "h", "flags"]
MAX_ROWS = 200
MIN_TS = 1577836800          # 2020-01-01: a node clock before this was never set right
RANGES = (("t", -4000, 8500), ("p", 0, 200000), ("h", 0, 10000), ("flags", 0, 511))
PAYLOAD_KEEP = 2000          # characters of a rejected payload kept in the rejects table
HEALTH_INTS = ("boot", "uptime_s", "spool_depth", "spool_first", "dropped", "errors",
               "free_heap", "rssi")
HEALTH_TEXTS = ("fw", "reset_cause", "last_error", "sensor")


def topic_kind(topic, prefix):
    """(node, leaf) of <prefix>/<node>/<leaf>, or (None, None) for any other topic."""
    if not topic.startswith(prefix + "/"):
        return None, None
    rest = topic[len(prefix) + 1:].split("/")
    if len(rest) != 2:
        return None, None
    return rest[0], rest[1]


def payload_text(payload):
    return payload.decode("utf-8", "replace")[:PAYLOAD_KEEP]


def _decode(payload):
    """(document, None) or (None, reason)."""
    try:
        return json.loads(payload.decode("utf-8")), None
    except UnicodeDecodeError:
        return None, "not UTF-8"
    except ValueError:
        return None, "not valid JSON"


def _envelope(doc, node):
    """The reason an object is not a v1 message of `node`, or None."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("v") != 1:
        return "v must be 1"
    sender = doc.get("node")
    if not isinstance(sender, str) or not NODE_ID.match(sender):
        return "node must be a node id"
    if sender != node:
        return "node %r does not match the topic's %r" % (sender, node)
    return None


def _is_int(v):
    return type(v) is int


def _row_problem(row, previous, ts_max):
    if type(row) is not list or len(row) != 6:
        return "a row must be a list of 6 values"
    seq, ts = row[0], row[1]
    if not _is_int(seq) or seq < 0:
        return "seq must be a non-negative integer"
    if previous is not None and seq <= previous:
        return "seq %d goes backwards (after %d in the same message)" % (seq, previous)
    if ts is not None:
        if not _is_int(ts):
            return "seq %d: ts must be an integer or null" % seq
        if not MIN_TS <= ts <= ts_max:
            return "seq %d: absurd timestamp %d" % (seq, ts)
    for i, (name, lo, hi) in enumerate(RANGES, 2):
        v = row[i]
        if v is None and name != "flags":
            continue
        if not _is_int(v):
            return "seq %d: %s must be an integer%s" % (seq, name, "" if name == "flags"
                                                        else " or null")
        if not lo <= v <= hi:
            return "seq %d: %s %d is outside %d..%d" % (seq, name, v, lo, hi)
    return None


def readings(topic, node, payload, received, ts_max):
    """(rows, rejects) of a readings message. rows: tuples (node, seq, ts, t, p, h, flags,
    received); rejects: tuples (received, topic, node, reason, payload text)."""
    doc, why = _decode(payload)
    if why is None:
        why = _envelope(doc, node)
    if why is None:
        rows = doc.get("rows")
        if doc.get("cols") != COLS:
            why = "cols must be %s" % json.dumps(COLS)
        elif type(rows) is not list:
            why = "rows must be a list"
        elif len(rows) > MAX_ROWS:
            why = "%d rows; a message carries at most %d" % (len(rows), MAX_ROWS)
        elif len(doc) != 4:
            why = "unknown fields %s" % ", ".join(sorted(set(doc) - {"v", "node", "cols", "rows"}))
    if why is not None:
        return [], [(received, topic, node, why, payload_text(payload))]
    good, bad = [], []
    previous = None
    for row in rows:
        problem = _row_problem(row, previous, ts_max)
        if problem is None:
            good.append((node, row[0], row[1], row[2], row[3], row[4], row[5], received))
            previous = row[0]
        else:
            bad.append((received, topic, node, problem, json.dumps(row)[:PAYLOAD_KEEP]))
    return good, bad


def status(topic, node, payload, received):
    """(health row or None, reject or None) of a status message or last will. The health row
    follows db.HEALTH_COLUMNS; a field of the wrong type is stored as null."""
    doc, why = _decode(payload)
    if why is None:
        why = _envelope(doc, node)
    if why is None and type(doc.get("online")) is not bool:
        why = "online must be true or false"
    if why is not None:
        return None, (received, topic, node, why, payload_text(payload))
    ints = [doc.get(k) if _is_int(doc.get(k)) else None for k in HEALTH_INTS]
    texts = [doc.get(k) if isinstance(doc.get(k), str) else None for k in HEALTH_TEXTS]
    boot, uptime, depth, first, dropped, errors, heap, rssi = ints
    fw, cause, last_error, sensor = texts
    return (node, received, doc["online"], fw, boot, uptime, cause, depth, first, dropped,
            errors, last_error, sensor, heap, rssi, payload_text(payload)), None
