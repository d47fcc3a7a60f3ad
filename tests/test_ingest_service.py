# The ingest loop without a broker: messages put into its inbox as paho would deliver them
# are validated, stored once, health rows kept only when the status changed, and a node's
# status `spool_first` closes the gaps it can no longer fill. (With a broker: acknowledgement
# after commit and the `stored` reports, tests/system/test_ingest_broker.py.)
import json
import time

import pytest

from host_tools.ingest import db as dbmod
from host_tools.ingest import migrations, service

NOW = int(time.time())


class Message:
    def __init__(self, topic, payload, mid=1, qos=1):
        self.topic, self.mid, self.qos = topic, mid, qos
        self.payload = payload.encode() if isinstance(payload, str) else payload  # paho: bytes


def readings(node, seqs, t=2000, topic=None):
    rows = [[s, NOW - 3600 + 60 * s, t, 100000, 5000, 0] for s in seqs]
    return Message(topic or "laterne/%s/readings" % node, json.dumps(
        {"v": 1, "node": node, "cols": ["seq", "ts", "t", "p", "h", "flags"], "rows": rows}))


def status(node, **fields):
    doc = {"v": 1, "node": node, "online": True}
    doc.update(fields)
    return Message("laterne/%s/status" % node, json.dumps(doc))


@pytest.fixture
def ingest(tmp_path):
    database = dbmod.open_db("sqlite:///%s" % (tmp_path / "i.db"))
    migrations.migrate(database)
    lines = []
    ing = service.Ingest(database, log=lines.append)
    ing.lines = lines
    yield ing
    database.close()


def feed(ing, *msgs):
    for m in msgs:
        ing.inbox.put((m, 0, time.time()))
    ing.finish()


def test_readings_are_stored_once_whatever_the_batching(ingest):
    feed(ingest, readings("lamp-001", range(1, 51)), readings("lamp-001", range(40, 61)),
         readings("lamp-002", [1, 2]))
    feed(ingest, readings("lamp-001", range(1, 61)))
    assert ingest.db.node_counts() == {"lamp-001": (60, 1, 60), "lamp-002": (2, 1, 2)}
    t = ingest.totals
    assert (t.stored, t.duplicates, t.rejects, len(t.nodes)) == (62, 71, 0, 2)
    assert ingest.db.watermarks() == {"lamp-001": 60, "lamp-002": 2}


def test_bad_input_is_rejected_counted_and_the_rest_stored(ingest):
    feed(ingest, Message("laterne/lamp-001/readings", b"\x00garbage"),
         readings("lamp-001", [1, 2], topic="laterne/lamp-009/readings"),
         readings("lamp-001", [5, 6]), readings("lamp-001", [6], t=9999),
         status("lamp-003", online="yes"),
         Message("laterne/lamp-001/config/result", b"{}"))
    reasons = [r[0] for r in ingest.db.query("SELECT reason FROM rejects ORDER BY id")]
    assert len(reasons) == 5 and ingest.totals.rejects == 5
    assert any("not valid JSON" in r for r in reasons)
    assert any("does not match the topic" in r for r in reasons)
    assert any("t 9999 is outside" in r for r in reasons)
    assert any("online must be" in r for r in reasons)
    assert any("not a readings or status topic" in r for r in reasons)
    assert ingest.db.node_counts() == {"lamp-001": (2, 5, 6)}


def test_a_replay_in_one_batch_with_other_values_is_rejected(ingest):
    feed(ingest, readings("lamp-001", [1, 2]), readings("lamp-001", [2], t=2100))
    assert [r[3] for r in ingest.db.readings()] == [2000, 2000]
    (reason,), = ingest.db.query("SELECT reason FROM rejects")
    assert "seq 2 arrived twice with other values" in reason


def test_health_rows_only_when_the_status_changed(ingest):
    s1 = status("lamp-001", spool_depth=4, fw="0.1.0")
    feed(ingest, s1, s1)
    feed(ingest, s1, status("lamp-001", spool_depth=0, fw="0.1.0"))
    feed(ingest, Message("laterne/lamp-001/status", b'{"v":1,"node":"lamp-001","online":false}'))
    rows = ingest.db.query("SELECT online, spool_depth FROM node_health ORDER BY id")
    assert rows == [(True, 4), (True, 0), (False, None)]


def test_the_retained_status_seen_again_after_a_restart_adds_nothing(ingest, tmp_path):
    s1 = status("lamp-001", spool_depth=4)
    feed(ingest, s1)
    again = service.Ingest(ingest.db, log=lambda line: None)
    feed(again, s1)
    assert ingest.db.scalar("SELECT COUNT(*) FROM node_health") == 1


def test_spool_first_closes_gaps_the_node_cannot_fill(ingest):
    feed(ingest, readings("lamp-001", [1, 2, 3, 8, 9]))
    assert ingest.db.watermarks() == {"lamp-001": 3}
    feed(ingest, status("lamp-001", spool_first=8, dropped=4))
    assert ingest.db.watermarks() == {"lamp-001": 9}


def test_progress_line_says_rate_nodes_lag_and_rejects(ingest):
    feed(ingest, readings("lamp-001", range(1, 11)), Message("laterne/x/readings", b"{"))
    line = ingest.progress_line(2.0, 0)
    assert line.startswith("ingest: 10 stored (5/s), 1 nodes, lag ")
    assert "1 rejects" in line and "0 duplicates" in line
