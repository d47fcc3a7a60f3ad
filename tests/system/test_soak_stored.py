# The end-to-end promise under faults: 3 virtual nodes with `delivery: "stored"`, the ingest
# and mosquitto with persistence, through broker restarts by SIGTERM and by SIGKILL with its
# persistence file deleted, ingest crashes (SIGKILL) and node power cuts. Every seq of every
# node ends up in the database exactly once with the timestamp the node gave it; with SQLite
# and with PostgreSQL. About a minute each (virtual time x30).
import json
import os
import tempfile
import time

import pytest

from host_tools.broker import Broker
from host_tools.ingest import db as dbmod
from ingest_proc import IngestProc
from virtual_fleet import Collector, Fleet

SCALE = 30
NODES = ["lamp-001", "lamp-002", "lamp-003"]


def db_state(url):
    with dbmod.open_db(url, create=False) as d:
        rows = {}
        for node, seq, ts, *_ in d.readings():
            rows.setdefault(node, []).append((seq, ts))
        return rows, d.watermarks(), d.scalar("SELECT COUNT(*) FROM rejects")


def settled(collector, url, since):
    """node -> spool_first of a status after `since` that said the node holds nothing, once
    the database holds every seq below it; None while some node is not there yet."""
    rows, stored, _ = db_state(url)
    out = {}
    for node in NODES:
        with collector.lock:
            empty = [s for s in collector.status.get(node, [])
                     if s.get("online") and s.get("spool_depth") == 0 and s["_at"] > since]
        if not empty:
            return None
        first = empty[-1]["spool_first"]
        if stored.get(node, 0) < first - 1 or len(rows.get(node, ())) < first - 1:
            return None
        out[node] = first
    return out


class TimedCollector(Collector):
    def _on_message(self, client, userdata, msg):
        if msg.topic.endswith("/status"):
            try:
                doc = json.loads(msg.payload)
                doc["_at"] = time.monotonic()
                msg.payload = json.dumps(doc).encode()
            except ValueError:
                pass
        Collector._on_message(self, client, userdata, msg)


@pytest.fixture(params=["sqlite", "postgresql"])
def soak_db(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "city.db")
    return request.getfixturevalue("pg_url")


def test_every_reading_stored_exactly_once_through_faults(tmp_path, soak_db):
    broker = Broker(kind="mosquitto", persistence=True).start()
    ingest = IngestProc(broker.url, soak_db, tmp_path / "ingest.log")
    config = tmp_path / "stored.json"
    config.write_text(json.dumps({"delivery": "stored", "backoff_max_s": 60}))
    started = time.time()
    fleet = Fleet(tmp_path / "state", broker.url, len(NODES),
                  ["--time-scale", str(SCALE), "--sample-interval", "20",
                   "--upload-interval", "10", "--config", str(config)])
    collector = TimedCollector(broker.port)
    log = []

    def at(second, what, action):
        time.sleep(max(0, t0 + second - time.monotonic()))
        log.append("%5.1f s %s" % (time.monotonic() - t0, what))
        action()

    try:
        collector.wait(lambda: all(len(collector.seqs(n)) >= 3 for n in NODES), 60,
                       "first readings of every node")
        t0 = time.monotonic()
        at(3, "broker SIGTERM", broker.restart)
        at(10, "ingest SIGKILL", ingest.kill)
        at(12, "ingest back", ingest.start)
        at(16, "power cut lamp-001", lambda: fleet.power_cut("lamp-001"))
        at(21, "broker SIGKILL, persistence deleted", broker.kill)
        at(21.5, "broker back empty", lambda: (os.path.exists(broker.db_path) and
                                                os.remove(broker.db_path), broker.start()))
        at(28, "power cut lamp-002, ingest SIGKILL", lambda: (fleet.power_cut("lamp-002"),
                                                              ingest.kill()))
        at(30, "ingest back", ingest.start)
        at(35, "broker SIGTERM", broker.restart)
        at(40, "power cut lamp-003", lambda: fleet.power_cut("lamp-003"))
        at(44, "broker SIGKILL, persistence deleted, ingest SIGKILL", lambda: (
            broker.kill(), ingest.kill()))
        at(45, "broker and ingest back", lambda: (
            os.path.exists(broker.db_path) and os.remove(broker.db_path), broker.start(),
            ingest.start()))
        faults_over = time.monotonic()
        deadline = faults_over + 75
        final = None
        while final is None and time.monotonic() < deadline:
            time.sleep(0.5)
            final = settled(collector, soak_db, faults_over + 5)
        assert final is not None, "no node settled: %s\n%s" % (log, ingest.output()[-2000:])
    finally:
        fleet.stop()
        collector.stop()
        ingest.stop()
        broker.stop()
    ended = time.time()
    rows, stored, rejects = db_state(soak_db)
    assert rejects == 0
    virtual_lo, virtual_hi = started - 60, started + (ended - started) * SCALE + 60
    for node in NODES:
        seqs = [s for s, _ in rows[node]]
        assert seqs == list(range(1, len(seqs) + 1)), "%s: gaps %s" % (node, sorted(
            set(range(1, max(seqs) + 1)) - set(seqs)))
        assert len(seqs) >= final[node] - 1 >= 30, (node, len(seqs), final[node])
        assert stored[node] >= final[node] - 1
        published = {}
        for r in collector.rows.get(node, []):
            published.setdefault(r["seq"], set()).add(r["ts"])
        stamps = [ts for _, ts in rows[node]]
        assert all(ts is not None and virtual_lo <= ts <= virtual_hi for ts in stamps), node
        assert stamps == sorted(stamps), "%s: timestamps out of seq order" % node
        for seq, ts in rows[node]:
            if seq in published:
                assert ts in published[seq], (node, seq, ts, published[seq])
        statuses = [s for s in collector.status[node] if s.get("online")]
        assert all(s["dropped"] == 0 for s in statuses)
        assert len({s["boot"] for s in statuses}) >= 2, "%s had no power cut" % node
    print("\n".join(log))
