# What the monitor knows about the fleet, built only from MQTT messages (docs/mqtt.md):
# FleetState.update(topic, payload, now) reads readings batches and status messages
# defensively, dedupes readings by node+seq and returns what is new. No I/O, no clock.
import json

READ_COLS = ("seq", "ts", "t", "p", "h", "flags")
SEEN_LIMIT = 20000  # per node: remembered seqs for dedupe (old ones are forgotten)


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v):
    return v if isinstance(v, str) else None


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fw_text(status):
    """The running version, and what an update over the air is doing to it."""
    fw = _str(status.get("fw"))
    upd = status.get("update")
    if fw is None or not isinstance(upd, dict) or not isinstance(upd.get("version"), str):
        return fw
    result = upd.get("result")
    if result == "trial":
        return fw + " on trial"
    if result == "downloading" and isinstance(upd.get("progress"), int):
        return "%s, getting %s %d%%" % (fw, upd["version"], upd["progress"])
    if result in ("rolled_back", "refused", "failed"):
        return "%s (%s %s)" % (fw, upd["version"], result.replace("_", " "))
    return fw


class Node:
    def __init__(self, node_id):
        self.id = node_id
        self.online = None      # None until a status or will arrived
        self.status = {}        # the last status message, as sent
        self.last = None        # reading dict with the highest seq
        self.last_rx = None     # host time of the last message of any kind
        self.readings = 0
        self.seen = set()

    def reading_age(self, now):
        """Seconds since the newest reading was taken (its ts; receipt time when unknown)."""
        if self.last is None:
            return None
        when = self.last["ts"] if self.last["ts"] is not None else self.last["rx"]
        return max(0, now - when)


class FleetState:
    def __init__(self, prefix="laterne", stale_after=900):
        self.prefix = prefix
        self.stale_after = stale_after
        self.nodes = {}
        self.garbage = 0        # messages that were not what the contract says: ignored
        self.bad_rows = 0       # rows without a usable seq inside otherwise good batches
        self.duplicates = 0     # rows seen before (QoS 1 redelivery, re-sent batches)

    # -- input -------------------------------------------------------------------------------
    def _split(self, topic):
        parts = topic.split("/")
        plen = len(self.prefix.split("/"))
        if len(parts) != plen + 2 or "/".join(parts[:plen]) != self.prefix or not parts[plen]:
            return None, None
        return parts[plen], parts[plen + 1]

    def _decode(self, payload, node_id):
        try:
            if isinstance(payload, (bytes, bytearray)):
                payload = payload.decode("utf-8")
            doc = json.loads(payload)
        except (UnicodeError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("v", 1) != 1:
            return None
        if "node" in doc and doc["node"] != node_id:
            return None
        return doc

    def update(self, topic, payload, now):
        """Take one MQTT message. Returns a list of events: {"type": "reading", ...} for each
        new row and {"type": "status", ...} for a status or last will. Garbage is counted."""
        node_id, kind = self._split(topic)
        doc = self._decode(payload, node_id) if node_id else None
        if doc is None or kind not in ("readings", "status"):
            self.garbage += 1
            return []
        if kind == "readings":
            return self._readings(node_id, doc, now)
        return self._status(node_id, doc, now)

    def _node(self, node_id):
        if node_id not in self.nodes:
            self.nodes[node_id] = Node(node_id)
        return self.nodes[node_id]

    def _readings(self, node_id, doc, now):
        cols, rows = doc.get("cols", list(READ_COLS)), doc.get("rows")
        if not isinstance(cols, list) or not isinstance(rows, list) or "seq" not in cols:
            self.garbage += 1
            return []
        index = {name: i for i, name in enumerate(cols) if isinstance(name, str)}
        node = self._node(node_id)
        node.last_rx = now
        events = []
        for row in rows:
            if not isinstance(row, list) or len(row) != len(cols):
                self.bad_rows += 1
                continue
            get = lambda name: row[index[name]] if name in index else None
            seq = _int(get("seq"))
            if seq is None:
                self.bad_rows += 1
                continue
            if seq in node.seen:
                self.duplicates += 1
                continue
            node.seen.add(seq)
            if len(node.seen) > SEEN_LIMIT:
                for old in sorted(node.seen)[:SEEN_LIMIT // 2]:
                    node.seen.discard(old)
            t, p, h = _num(get("t")), _num(get("p")), _num(get("h"))
            reading = {"type": "reading", "node": node_id, "seq": seq, "ts": _int(get("ts")),
                       "t_c": None if t is None else t / 100.0,
                       "p_hpa": None if p is None else p / 100.0,
                       "h_pct": None if h is None else h / 100.0,
                       "flags": _int(get("flags")) or 0}
            node.readings += 1
            if node.last is None or seq > node.last["seq"]:
                node.last = dict(reading, rx=now)
            events.append(reading)
        return events

    def _status(self, node_id, doc, now):
        online = doc.get("online")
        if not isinstance(online, bool):
            self.garbage += 1
            return []
        node = self._node(node_id)
        node.online = online
        node.last_rx = now
        if online:
            node.status = doc
        event = {"type": "status", "node": node_id, "online": online}
        for key in ("fw", "uptime_s", "rssi", "spool_depth", "dropped", "sensor", "last_error",
                    "reset_cause", "time_synced", "safe_mode", "fw_previous", "update"):
            if online and key in doc:
                event[key] = doc[key]
        return [event]

    # -- output ------------------------------------------------------------------------------
    def is_stale(self, node, now):
        if node.online is False:
            return False  # offline is its own state
        age = node.reading_age(now)
        if age is None:
            return node.last_rx is not None and now - node.last_rx > self.stale_after
        return age > self.stale_after

    def state_of(self, node, now):
        if node.online is False:
            return "offline"
        if self.is_stale(node, now):
            return "stale"
        return "online" if node.online else "unknown"

    def table(self, now):
        """One dict per node, sorted by node id, with display-ready values (None = unknown)."""
        out = []
        for node_id in sorted(self.nodes):
            n = self.nodes[node_id]
            s, last = n.status, n.last or {}
            out.append({
                "node": node_id, "state": self.state_of(n, now),
                "t_c": last.get("t_c"), "p_hpa": last.get("p_hpa"), "h_pct": last.get("h_pct"),
                "age_s": n.reading_age(now), "seq": last.get("seq"),
                "spool_depth": _int(s.get("spool_depth")), "dropped": _int(s.get("dropped")),
                "rssi": _num(s.get("rssi")), "fw": fw_text(s),
                "last_error": _str(s.get("last_error")),
            })
        return out
