# `laterne ingest`: every node's readings and status from the broker into the database. The
# MQTT session is persistent (fixed client id, QoS 1) and each message is acknowledged only
# after the batch holding it was committed, so a crash of the ingest loses nothing: the broker
# delivers again whatever was not acknowledged, and (node, seq) makes the replay harmless.
# After each commit the ingest reports every touched node's watermark, retained, on
# <prefix>/<node>/stored (docs/mqtt.md), and again to all nodes after each reconnect, since a
# broker that lost its state lost the retained reports too.
import json
import queue
import time

from host_tools.fleet.monitor import Connection
from host_tools.ingest import db as dbmod
from host_tools.ingest import messages

DEFAULT_CLIENT_ID = "laterne-ingest"
MAX_AHEAD_S = 86400
BATCH_MESSAGES = 2000  # messages per commit at most (a commit takes what arrived meanwhile)


def stored_json(node, seq):
    return json.dumps({"v": 1, "node": node, "seq": seq}, separators=(",", ":"))


class Totals:
    def __init__(self):
        self.stored = self.duplicates = self.rejects = self.conflicts = 0
        self.messages = self.statuses = 0
        self.nodes = set()
        self.lag = 0.0  # largest arrival-to-commit time since the last progress line


class Ingest:
    def __init__(self, database, prefix="laterne", max_ahead_s=MAX_AHEAD_S, log=None,
                 reopen=None):
        self.db = database
        self.prefix = prefix
        self.max_ahead_s = max_ahead_s
        self.log = log or (lambda text: print(text, flush=True))
        self.reopen = reopen          # makes a new database connection after a failure
        self.inbox = queue.Queue()    # (paho message, connection number, arrival time)
        self.conn = None
        self.totals = Totals()
        self.last_status = database.latest_status()
        self._reported_for = 0        # connection number the watermarks were last sent on

    # -- MQTT --------------------------------------------------------------------------------
    def connect(self, url, username=None, password=None, cafile=None,
                client_id=DEFAULT_CLIENT_ID, share=None):
        filters = [self.prefix + "/+/readings", self.prefix + "/+/status"]
        if share:
            filters = ["$share/%s/%s" % (share, f) for f in filters]
        self.conn = Connection(url, self.prefix, username, password, cafile,
                               client_id=client_id, filters=filters, persistent=True,
                               handler=self._arrived)
        self.conn.open()
        return self

    def _arrived(self, msg):  # paho's thread
        self.inbox.put((msg, self.conn.connects, time.time()))

    def close(self):
        if self.conn is not None:
            self.conn.close()  # DISCONNECT: the broker keeps the session and what is unsent

    # -- the loop ----------------------------------------------------------------------------
    def step(self, timeout=0.2, most=BATCH_MESSAGES):
        """Store what arrived (waiting up to timeout for the first message), acknowledge it,
        report the watermarks. Returns the number of messages handled."""
        items = []
        try:
            items.append(self.inbox.get(timeout=timeout) if timeout else self.inbox.get_nowait())
            while len(items) < most:
                items.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        if items:
            self._store(items)
        if self.conn is not None and self.conn.up and self.conn.connects != self._reported_for:
            self._reported_for = self.conn.connects
            self._report(self.db.watermarks())
        return len(items)

    def finish(self):
        """Store everything already received (on a clean stop)."""
        while self.step(0):
            pass

    def _store(self, items):
        delay = 1
        while True:
            batch = self._batch(items)
            try:
                written = self.db.write(batch)
                break
            except Exception as e:  # the database went away: keep the batch, try again
                if self.reopen is None:
                    raise
                self.log("ingest: database error: %s: %s; retrying in %d s"
                         % (type(e).__name__, str(e).strip().splitlines()[0] if str(e) else "",
                            delay))
                time.sleep(delay)
                delay = min(delay * 2, 30)
                try:
                    self.db.close()
                except Exception:
                    pass
                try:
                    self.db = self.reopen()
                except Exception:
                    continue
        now = time.time()
        self.last_status.update(batch.status)
        if self.conn is not None:
            for msg, number, _ in items:
                if number == self.conn.connects:  # else the broker delivers it again
                    self.conn.client.ack(msg.mid, msg.qos)
        self._report(written.stored)
        t = self.totals
        t.stored += written.inserted
        t.duplicates += written.duplicates + batch.in_batch_duplicates
        t.conflicts += written.conflicts
        t.rejects += len(batch.rejects)
        t.messages += len(items)
        t.statuses += len(batch.health)
        t.nodes |= batch.nodes
        t.lag = max(t.lag, now - min(arrival for _, _, arrival in items))

    def _batch(self, items):
        batch = dbmod.Batch()
        ts_max = time.time() + self.max_ahead_s
        rows = batch.rows
        for msg, _, received in items:
            node, leaf = messages.topic_kind(msg.topic, self.prefix)
            if leaf == "readings":
                good, bad = messages.readings(msg.topic, node, msg.payload, received, ts_max)
                for r in good:
                    key = (node, r[1])
                    if key not in rows:
                        rows[key] = r
                    elif rows[key][2:7] == r[2:7]:
                        batch.in_batch_duplicates += 1
                    else:
                        bad.append((received, msg.topic, node, "seq %d arrived twice with "
                                    "other values; the first is kept" % r[1], json.dumps(r[1:7])))
                batch.rejects.extend(bad)
                if good:
                    batch.nodes.add(node)
                    batch.topics[node] = msg.topic
            elif leaf == "status":
                row, reject = messages.status(msg.topic, node, msg.payload, received)
                if reject is not None:
                    batch.rejects.append(reject)
                elif batch.status.get(node, self.last_status.get(node)) != row[-1]:
                    batch.health.append(row)  # (a retained copy of the last one changes nothing)
                    batch.status[node] = row[-1]
                    first = row[8]
                    if first is not None and first >= 1:
                        batch.floors[node] = max(batch.floors.get(node, 0), first - 1)
            else:
                batch.rejects.append((received, msg.topic, node, "not a readings or status topic",
                                      messages.payload_text(msg.payload)))
        return batch

    def _report(self, stored):
        if self.conn is None:
            return
        for node, seq in stored.items():
            if seq > 0:
                self.conn.client.publish("%s/%s/stored" % (self.prefix, node),
                                         stored_json(node, seq), qos=1, retain=True)

    def progress_line(self, elapsed, previous_stored):
        t = self.totals
        line = ("ingest: %d stored (%d/s), %d nodes, lag %.2f s, %d rejects, %d duplicates, "
                "broker %s" % (t.stored, (t.stored - previous_stored) / max(elapsed, 1e-6),
                               len(t.nodes), t.lag, t.rejects, t.duplicates,
                               "up" if self.conn is None or self.conn.up else "down"))
        t.lag = 0.0
        return line

    def run(self, stopping, progress_every=10.0):
        """Until stopping() is true: store, acknowledge, report; a progress line every
        progress_every seconds. Then store what already arrived and disconnect."""
        last_line, last_stored = time.monotonic(), self.totals.stored
        try:
            while not stopping():
                self.step()
                now = time.monotonic()
                if progress_every and now - last_line >= progress_every:
                    self.log(self.progress_line(now - last_line, last_stored))
                    last_line, last_stored = now, self.totals.stored
            self.finish()
        finally:
            self.close()
        t = self.totals
        self.log("ingest: stopped; %d readings stored from %d nodes, %d rejects, %d duplicates"
                 % (t.stored, len(t.nodes), t.rejects, t.duplicates))
