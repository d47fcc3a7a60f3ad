# `laterne ingest` against a real mosquitto: the `stored` report after the commit, nothing
# lost when the ingest is killed before it could commit (the broker delivers again what was
# never acknowledged), several workers on a shared subscription, and a clean stop.
import json
import sqlite3
import time

import pytest

from host_tools.ingest import db as dbmod
from ingest_proc import IngestProc, Publisher
from mqtt_helpers import Observer


def wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.1)


def counts(url):
    with dbmod.open_db(url, create=False) as d:
        return d.node_counts()


def stored_reports(observer, node):
    return [json.loads(p) for t, p, r in observer.messages if t == "laterne/%s/stored" % node]


def test_stored_is_reported_retained_after_the_commit(tmp_path, broker):
    url = "sqlite:///%s" % (tmp_path / "db.sqlite")
    ingest = IngestProc(broker.url, url, tmp_path / "ingest.log")
    pub = Publisher(broker.port, "lamp-001")
    watcher = Observer(broker.port, ["laterne/+/stored"])
    try:
        for start in (1, 51, 101):
            pub.send("lamp-001", range(start, start + 50)).wait_for_publish(5)
        pub.send("lamp-001", range(160, 170)).wait_for_publish(5)      # a gap at 151..159
        watcher.wait_for(lambda m: any(json.loads(p)["seq"] == 150 for t, p, r in m), 20)
        assert counts(url) == {"lamp-001": (160, 1, 169)}
        reports = stored_reports(watcher, "lamp-001")
        assert all(r["v"] == 1 and r["node"] == "lamp-001" for r in reports)
        assert max(r["seq"] for r in reports) == 150                   # never beyond the gap
        late = Observer(broker.port, ["laterne/lamp-001/stored"])       # retained for newcomers
        try:
            late.wait_for(lambda m: m and m[-1][2] and json.loads(m[-1][1])["seq"] == 150, 10)
        finally:
            late.close()
    finally:
        watcher.close()
        pub.close()
        assert ingest.stop() == 0
    assert "ingest: stopped; 160 readings stored from 1 nodes" in ingest.output()


def test_readings_received_but_not_committed_come_again_after_a_crash(tmp_path, broker):
    """The database is locked, so the ingest holds messages it cannot commit when it is
    killed: they were never acknowledged, so the broker delivers them again."""
    path = tmp_path / "db.sqlite"
    url = "sqlite:///%s" % path
    ingest = IngestProc(broker.url, url, tmp_path / "ingest.log")
    pub = Publisher(broker.port, "lamp-001")
    try:
        pub.send("lamp-001", range(1, 51)).wait_for_publish(5)
        wait(lambda: counts(url).get("lamp-001", (0,))[0] == 50, 20, "the first batch stored")
        blocker = sqlite3.connect(str(path), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        for start in range(51, 551, 50):
            pub.send("lamp-001", range(start, start + 50)).wait_for_publish(5)
        time.sleep(1.0)  # delivered to the ingest, which waits for the lock
        ingest.kill()
        blocker.execute("ROLLBACK")
        blocker.close()
        ingest.start()
        wait(lambda: counts(url).get("lamp-001", (0,))[0] == 550, 30,
             "every reading after the restart")
    finally:
        pub.close()
        ingest.stop()
    assert counts(url) == {"lamp-001": (550, 1, 550)}


def test_workers_on_a_shared_subscription_split_the_load(tmp_path, broker, pg_url):
    workers = [IngestProc(broker.url, pg_url, tmp_path / ("w%d.log" % i),
                          ["--share", "city", "--client-id", "laterne-ingest-%d" % i])
               for i in (1, 2)]
    pub = Publisher(broker.port, "fleet")
    watcher = Observer(broker.port, ["laterne/+/stored"])
    nodes = ["lamp-%03d" % i for i in range(1, 5)]
    try:
        for start in range(1, 2001, 50):
            for node in nodes:
                pub.send(node, range(start, start + 50))
        wait(lambda: counts(pg_url) == {n: (2000, 1, 2000) for n in nodes}, 60,
             "every reading in the database")
        wait(lambda: all(any(r["seq"] == 2000 for r in stored_reports(watcher, n))
                         for n in nodes), 30, "stored 2000 reported for every node")
    finally:
        watcher.close()
        pub.close()
        for w in workers:
            w.stop()
    shares = [int(w.output().split("ingest: stopped; ")[1].split()[0]) for w in workers]
    assert sum(shares) == 8000 and all(s > 0 for s in shares), shares
