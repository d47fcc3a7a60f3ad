# The JSON messages of the MQTT contract (docs/mqtt.md, docs/mqtt.schema.json): readings
# batches, status, last will, config results, and parsing of config/set requests. Messages
# are built as compact strings; a batch of 50 rows is about 2.5 KB.
import json

from laterne import flags

V = 1
READING_COLS = '["seq","ts","t","p","h","flags"]'
CONFIG_SET_MAX = 2048  # bytes; larger requests are refused unread


def topic(prefix, node_id, leaf):
    return "%s/%s/%s" % (prefix, node_id, leaf)


def _num(v):
    return "null" if v is None else str(v)


def readings_json(node_id, rows, timebase):
    """rows: spool tuples (seq, ts, boot, flags, t, p, h). ts is fixed up by the timebase
    (null when unknown); a skipped channel is null."""
    parts = ['{"v":1,"node":', json.dumps(node_id), ',"cols":', READING_COLS, ',"rows":[']
    sep = ""
    for row in rows:
        ts, rflags = timebase.fix(row[1], row[2], row[3])
        parts.append("%s[%d,%s,%s,%s,%s,%d]" % (
            sep, row[0], _num(ts),
            "null" if rflags & flags.T_SKIPPED else row[4],
            "null" if rflags & flags.P_SKIPPED else row[5],
            "null" if rflags & flags.H_SKIPPED else row[6], rflags))
        sep = ","
    parts.append("]}")
    return "".join(parts)


def _envelope(node_id, **fields):
    d = {"v": V, "node": node_id}
    d.update(fields)
    return d


def status_json(node_id, fields):
    """Retained status: {"v":1,"node":id,"online":true, ...health fields}."""
    d = dict(fields)
    d["v"] = V
    d["node"] = node_id
    d["online"] = True
    return json.dumps(d)


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
