# Config `delivery: "stored"`: a reading leaves the spool only when the broker acknowledged it
# in this MQTT session AND the ingest reported it stored (<prefix>/<node>/stored, see
# docs/mqtt.md). A report is never trusted beyond what the broker acknowledged, so a forged or
# replayed one cannot release an unsent reading. What the broker acknowledged but the database
# never got is sent again after a reconnect, or when the report has not moved for a bounded
# wait (doubling up to RESEND_MAX_S, so a fleet without an ingest does not flood the broker).
# Imported only by nodes configured for it; uplink.drain consults begin() and acked().
import json

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

RESEND_MIN_S = const(120)
RESEND_MAX_S = const(3600)
REPORT_MAX = const(200)  # bytes; a longer `stored` message is ignored unread


class StoredDelivery:
    def __init__(self, node_id, clock, topic):
        self.node_id = node_id
        self.clock = clock
        self.topic = topic        # <prefix>/<node>/stored, compared as received
        self.session = None       # the uplink's connect count the state below belongs to
        self.acked = None         # highest seq acknowledged by the broker in this session
        self.stored = None        # the latest report of the ingest
        self.spool = None
        self.since = None         # ticks_ms since acknowledged readings wait for a report
        self.wait_s = RESEND_MIN_S
        self.ignored = 0          # reports that were malformed or for another node

    def begin(self, uplink, spool):
        """At the start of a drain: the seq to send after (None: from the oldest held)."""
        self.spool = spool
        if uplink.connects != self.session:
            # a new session: nothing acknowledged in it yet; the retained report comes with
            # the SUBACK
            self.session = uplink.connects
            self.acked = self.stored = self.since = None
            uplink.client.subscribe(self.topic, 1)
            return None
        clock = self.clock
        if self.since is not None and clock.ticks_diff(
                clock.ticks_ms(), self.since) >= self.wait_s * 1000:
            self.since = clock.ticks_ms()
            self.wait_s = min(self.wait_s * 2, RESEND_MAX_S)
            return None
        return self.acked

    def acked_upto(self, seq):
        """The broker acknowledged every reading sent in this session up to seq."""
        if self.acked is None or seq > self.acked:
            self.acked = seq
        self._release()

    def on_report(self, message):
        seq = self._parse(message)
        if seq is None:
            self.ignored += 1
            return
        if self.stored is None or seq > self.stored:
            self.since = None  # progress: the wait starts again
            self.wait_s = RESEND_MIN_S
        self.stored = seq
        self._release()

    def _release(self):
        """Release up to the lower of acknowledged and reported; time the wait for the rest."""
        acked, stored = self.acked, self.stored
        if acked is None or self.spool is None:
            return
        if stored is not None:
            self.spool.ack(acked if stored >= acked else stored)
            if stored >= acked:
                self.since = None
                return
        if self.since is None:
            self.since = self.clock.ticks_ms()

    def _parse(self, message):
        """seq of a report {"v":1,"node":<this node>,"seq":N}, else None."""
        if len(message) > REPORT_MAX:
            return None
        try:
            doc = json.loads(message)
        except (ValueError, TypeError, UnicodeError):
            return None
        if type(doc) is not dict or doc.get("v") != 1 or doc.get("node") != self.node_id:
            return None
        seq = doc.get("seq")
        if type(seq) is not int or seq < 0:
            return None
        return seq
