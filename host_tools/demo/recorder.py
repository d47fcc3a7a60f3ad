# The demo's recorder: subscribes to the fleet's readings and status on the broker (paho),
# keeps each reading once (node + seq is the key, as the MQTT contract says) together with
# the host time it arrived, and writes them to a CSV in the columns of `laterne monitor --csv`.
# Decoding and storage are pure (`decode_readings`, `ReadingStore`); `Recorder` adds MQTT.
import csv
import json
import threading
import time

from host_tools.fleet import csvrows

COLUMNS = ("node", "seq", "ts", "t", "p", "h", "flags")  # as on the wire
# The same columns as `laterne monitor --csv` (°C, hPa, %RH), plus the host time of arrival.
CSV_HEADER = tuple(csvrows.HEADER) + ("received",)


def _unit(v):
    return None if v is None else v / 100.0


def decode_readings(payload):
    """A readings message -> (node, [dict per row]). Raises ValueError when malformed."""
    try:
        msg = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError("not JSON: %s" % e)
    if not isinstance(msg, dict) or msg.get("v") != 1:
        raise ValueError("not a v1 readings message")
    node, cols, rows = msg.get("node"), msg.get("cols"), msg.get("rows")
    if not isinstance(node, str) or not isinstance(cols, list) or not isinstance(rows, list):
        raise ValueError("node, cols and rows are required")
    missing = [c for c in COLUMNS[1:] if c not in cols]
    if missing:
        raise ValueError("cols lack %s" % ", ".join(missing))
    out = []
    for row in rows:
        if not isinstance(row, list) or len(row) != len(cols):
            raise ValueError("a row does not match cols")
        r = dict(zip(cols, row))
        if not isinstance(r["seq"], int) or any(
                not (r[c] is None or isinstance(r[c], int)) for c in ("ts", "t", "p", "h")):
            raise ValueError("seq must be an integer; ts, t, p and h integers or null")
        out.append({"node": node, **{c: r[c] for c in COLUMNS[1:]}})
    return node, out


class ReadingStore:
    """Readings keyed by (node, seq), first arrival kept; thread-safe."""

    def __init__(self):
        self._rows = {}
        self._lock = threading.Lock()
        self.duplicates = 0
        self.rejected = 0

    def add(self, rows, received):
        with self._lock:
            for r in rows:
                key = (r["node"], r["seq"])
                if key in self._rows:
                    self.duplicates += 1
                else:
                    self._rows[key] = dict(r, received=received)

    def rows(self):
        with self._lock:
            return [self._rows[k] for k in sorted(self._rows)]

    def count(self, node=None):
        with self._lock:
            return sum(1 for n, _ in self._rows if node is None or n == node)

    def write_csv(self, path):
        rows = self.rows()
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CSV_HEADER)
            for r in rows:
                w.writerow(csvrows.row(r["node"], r["seq"], r["ts"], _unit(r["t"]),
                                         _unit(r["p"]), _unit(r["h"]), r["flags"])
                           + ["%.3f" % r["received"]])
        return len(rows)


class Recorder:
    """Collects `<prefix>/+/readings` from a broker; passes those and `<prefix>/+/status` on
    to `listener` (the demo's live table)."""

    def __init__(self, host, port, prefix="laterne", client_id="laterne-demo-recorder",
                 listener=None):
        import paho.mqtt.client as mqtt
        self.prefix = prefix
        self.listener = listener  # also called with (topic, payload) for every message
        self.store = ReadingStore()
        self.connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.connected.set()
        self._host, self._port = host, port

    def start(self, timeout=10.0):
        self.client.connect(self._host, self._port, 30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise ConnectionError("the recorder could not subscribe at %s:%d"
                                  % (self._host, self._port))
        return self

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe([(self.prefix + "/+/readings", 1), (self.prefix + "/+/status", 1)])

    def _on_message(self, client, userdata, msg):
        if self.listener is not None:
            self.listener(msg.topic, msg.payload)
        if msg.topic.endswith("/readings"):
            try:
                _, rows = decode_readings(msg.payload)
            except ValueError:
                self.store.rejected += 1
                return
            self.store.add(rows, time.time())
