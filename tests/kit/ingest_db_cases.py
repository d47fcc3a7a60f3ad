# The database layer's contract, run against SQLite (tests/test_ingest_db.py) and a real
# PostgreSQL server (tests/system/test_ingest_postgres.py): each module provides the `db_url`
# fixture and imports these tests.
import threading

import pytest

from host_tools.ingest import db as dbmod
from host_tools.ingest import migrations

T0 = 1750000000


def reading(node, seq, t=2000, received=T0 + 1.0):
    return (node, seq, T0 + 60 * seq, t, 100000 + seq, 5000, 0, received)


def batch(rows=(), floors=None, nodes=None, health=()):
    b = dbmod.Batch()
    for r in rows:
        b.rows[(r[0], r[1])] = r
        b.topics[r[0]] = "laterne/%s/readings" % r[0]
    b.nodes = set(nodes if nodes is not None else (r[0] for r in rows))
    b.floors = dict(floors or {})
    b.health = list(health)
    return b


@pytest.fixture
def database(db_url):
    d = dbmod.open_db(db_url)
    migrations.migrate(d)
    yield d
    d.close()


def test_migrate_creates_the_schema_once(db_url):
    with dbmod.open_db(db_url) as d:
        assert migrations.migrate(d) == [1]
        assert migrations.version(d) == migrations.latest() == 1
        for table in ("readings", "node_stored", "node_health", "rejects", "schema_version"):
            assert d.has_table(table), table
        assert migrations.migrate(d) == []


EXTRA = (2, "a test upgrade", {"sqlite": ["ALTER TABLE readings ADD COLUMN note TEXT"],
                               "postgresql": ["ALTER TABLE readings ADD COLUMN note TEXT"]})


def test_upgrade_keeps_the_data(db_url):
    with dbmod.open_db(db_url) as d:
        migrations.migrate(d)
        d.write(batch([reading("lamp-001", s) for s in (1, 2, 3)]))
    with dbmod.open_db(db_url) as d:
        assert migrations.migrate(d, migrations.MIGRATIONS + [EXTRA]) == [2]
        assert migrations.version(d) == 2
        assert [r[1] for r in d.readings()] == [1, 2, 3]
        assert d.scalar("SELECT COUNT(*) FROM readings WHERE note IS NULL") == 3


def test_a_newer_schema_is_refused_untouched(db_url):
    with dbmod.open_db(db_url) as d:
        migrations.migrate(d, migrations.MIGRATIONS + [EXTRA])
    with dbmod.open_db(db_url) as d:
        with pytest.raises(migrations.SchemaTooNew, match="version 2"):
            migrations.migrate(d)
        assert migrations.version(d) == 2


def test_write_stores_once_and_counts_duplicates(database):
    rows = [reading("lamp-001", s) for s in range(1, 101)]
    w = database.write(batch(rows))
    assert (w.inserted, w.duplicates, w.conflicts) == (100, 0, 0)
    w = database.write(batch(rows[40:60] + [reading("lamp-001", 101)]))
    assert (w.inserted, w.duplicates, w.conflicts) == (1, 20, 0)
    assert database.node_counts() == {"lamp-001": (101, 1, 101)}
    assert list(database.readings())[0] == rows[0]


def test_a_duplicate_with_other_values_is_rejected_and_the_first_kept(database):
    database.write(batch([reading("lamp-001", 1, t=2000)]))
    w = database.write(batch([reading("lamp-001", 1, t=2500), reading("lamp-001", 2)]))
    assert (w.inserted, w.duplicates, w.conflicts) == (1, 1, 1)
    assert [r[3] for r in database.readings()] == [2000, 2000]
    (topic, node, reason), = database.query("SELECT topic, node, reason FROM rejects")
    assert (topic, node) == ("laterne/lamp-001/readings", "lamp-001")
    assert "seq 1" in reason and "other values" in reason


def test_watermark_is_the_highest_seq_without_gaps(database):
    w = database.write(batch([reading("lamp-001", s) for s in (1, 2, 3, 5, 6)]))
    assert w.stored == {"lamp-001": 3}
    w = database.write(batch([reading("lamp-001", 4)]))
    assert w.stored == {"lamp-001": 6}
    w = database.write(batch([reading("lamp-002", 2)]))
    assert w.stored == {"lamp-002": 0}
    assert database.watermarks() == {"lamp-001": 6, "lamp-002": 0}


def test_a_gap_the_node_no_longer_holds_is_closed_by_its_floor(database):
    database.write(batch([reading("lamp-001", s) for s in (1, 2, 3, 7, 8)]))
    # status spool_first 7: seqs 4..6 left the node (dropped on overflow): nothing to wait for
    w = database.write(batch(floors={"lamp-001": 6}))
    assert w.stored == {"lamp-001": 8}
    w = database.write(batch(floors={"lamp-001": 2}))  # an old status changes nothing
    assert w.stored == {"lamp-001": 8}


def test_health_rows_and_the_newest_status(database):
    row = ("lamp-001", T0, True, "0.1.0", 3, 60, "power_on", 5, 10, 0, 0, None, "ok", 80000,
           -60, '{"a":1}')
    database.write(batch(health=[row, row[:1] + (T0 + 5, False) + (None,) * 12 + ('{"b":2}',)]))
    assert database.latest_status() == {"lamp-001": '{"b":2}'}
    assert database.query("SELECT online, spool_depth FROM node_health ORDER BY id") == [
        (True, 5), (False, None)]


def test_readings_filter_by_node_and_time(database):
    database.write(batch([reading(n, s) for n in ("lamp-001", "lamp-002") for s in range(1, 11)]
                         + [("lamp-001", 11, None, 1, 2, 3, 64, T0)]))
    assert len(list(database.readings())) == 21
    assert [r[1] for r in database.readings("lamp-002", T0 + 120, T0 + 300)] == [2, 3, 4]
    assert [r[1] for r in database.readings("lamp-001")][-1] == 11


def test_concurrent_writers_leave_the_right_watermark(db_url, database):
    """Two ingest workers (own connections) store alternate batches of one node."""
    errors = []

    def worker(first):
        try:
            with dbmod.open_db(db_url) as mine:
                for start in range(first, 400, 20):
                    mine.write(batch([reading("lamp-001", s) for s in range(start, start + 10)]))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(f,)) for f in (1, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert database.node_counts()["lamp-001"] == (400, 1, 400)
    assert database.watermarks() == {"lamp-001": 400}
