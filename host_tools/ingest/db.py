# The ingest's database: SQLite (sqlite:///PATH, embedded) or PostgreSQL (postgresql://...,
# psycopg 3), one schema (migrations.py) and one way of writing a batch: readings keyed by
# (node, seq) inserted with the driver's bulk path (executemany / COPY), duplicates ignored,
# a duplicate with other values kept out and rejected, then each touched node's `stored`
# watermark advanced: the highest seq below which every reading is stored or known lost on the
# node (its status `spool_first`). SQL is written with `?` placeholders for both dialects.
import contextlib
import os
import time
from urllib.parse import urlsplit, urlunsplit

from host_tools.errors import UserError

DEFAULT_URL = "sqlite:///build/laterne.db"
URL_HINT = "use sqlite:///PATH (a file) or postgresql://USER@HOST[:PORT]/DBNAME"
READING_COLUMNS = ("node", "seq", "ts", "t", "p", "h", "flags", "received")
HEALTH_COLUMNS = ("node", "received", "online", "fw", "boot", "uptime_s", "reset_cause",
                  "spool_depth", "spool_first", "dropped", "errors", "last_error", "sensor",
                  "free_heap", "rssi", "status")
REJECT_COLUMNS = ("received", "topic", "node", "reason", "payload")


def describe(url):
    """The URL without its password, for messages."""
    u = urlsplit(url)
    if u.password is None:
        return url
    netloc = "%s:***@%s" % (u.username or "", u.hostname or "")
    if u.port:
        netloc += ":%d" % u.port
    return urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def open_db(url, create=True):
    """A connected backend for url; create=False refuses a SQLite file that does not exist."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        if not url.startswith("sqlite:///") or len(url) == len("sqlite:///"):
            raise UserError("--db %s has no file path" % url, URL_HINT)
        return SqliteDb(url[len("sqlite:///"):], create)
    if scheme in ("postgresql", "postgres"):
        return PostgresDb(url)
    raise UserError("--db %s is not a database URL" % describe(url), URL_HINT)


class Batch:
    """What one commit writes. rows: {(node, seq): reading tuple in READING_COLUMNS order}."""

    def __init__(self):
        self.rows = {}
        self.rejects = []      # tuples in REJECT_COLUMNS order
        self.health = []       # tuples in HEALTH_COLUMNS order
        self.floors = {}       # node -> every seq up to here has left the node's spool
        self.nodes = set()     # nodes whose watermark is to be advanced and reported
        self.topics = {}       # node -> the topic its readings came on (for rejects)
        self.status = {}       # node -> its newest status text in this batch
        self.in_batch_duplicates = 0


class Written:
    def __init__(self):
        self.inserted = 0
        self.duplicates = 0
        self.conflicts = 0
        self.stored = {}       # node -> watermark after this batch


class Backend:
    dialect = None

    # -- plumbing (each dialect: _cursor, begin, commit, rollback, schema_lock, close) --------
    def sql(self, text):
        return text

    def execute(self, text, params=()):
        cur = self._cursor()
        cur.execute(self.sql(text), params)
        return cur

    def query(self, text, params=()):
        return self.execute(text, params).fetchall()

    def scalar(self, text, params=()):
        row = self.execute(text, params).fetchone()
        return row[0] if row else None

    def executemany(self, text, rows):
        if rows:
            self._cursor().executemany(self.sql(text), rows)

    # -- the ingest's writes -------------------------------------------------------------------
    def write(self, batch):
        """Store a batch durably; returns a Written."""
        out = Written()
        rows = list(batch.rows.values())
        self.begin()
        try:
            out.inserted = self._insert_readings(rows)
            out.duplicates = len(rows) - out.inserted
            if out.duplicates:
                conflicts = self._conflicts(rows, batch.topics)
                out.conflicts = len(conflicts)
                batch.rejects.extend(conflicts)
            self.executemany("INSERT INTO rejects (%s) VALUES (%s)" % (
                ", ".join(REJECT_COLUMNS), ", ".join("?" * len(REJECT_COLUMNS))), batch.rejects)
            self.executemany("INSERT INTO node_health (%s) VALUES (%s)" % (
                ", ".join(HEALTH_COLUMNS), ", ".join("?" * len(HEALTH_COLUMNS))), batch.health)
            if self.watermark_in_same_transaction:
                out.stored = self._advance(batch)
            self.commit()
            if not self.watermark_in_same_transaction:
                self.begin()
                out.stored = self._advance(batch)
                self.commit()
        except BaseException:
            self.rollback()
            raise
        return out

    def _conflicts(self, rows, topics):
        """Rejects for rows whose (node, seq) is stored with other values (the stored one stays)."""
        by_node = {}
        for r in rows:
            by_node.setdefault(r[0], []).append(r)
        out = []
        for node, mine in by_node.items():
            seqs = [r[1] for r in mine]
            stored = {row[0]: tuple(row[1:]) for row in self.query(
                "SELECT seq, ts, t, p, h, flags FROM readings WHERE node = ? AND seq BETWEEN ? "
                "AND ?", (node, min(seqs), max(seqs)))}
            for r in mine:
                if stored.get(r[1], r[2:7]) != tuple(r[2:7]):
                    out.append((r[7], topics.get(node, ""), node,
                                "seq %d is stored with other values; the stored reading is kept"
                                % r[1], "[%s]" % ",".join("null" if v is None else str(v)
                                                          for v in r[1:7])))
        return out

    def _advance(self, batch):
        stored = {}
        now = time.time()
        for node in sorted(batch.nodes | set(batch.floors)):
            old = self.scalar("SELECT seq FROM node_stored WHERE node = ?", (node,))
            w = max(old or 0, batch.floors.get(node, 0))
            if self.scalar("SELECT 1 FROM readings WHERE node = ? AND seq = ?", (node, w + 1)):
                w = self.scalar(
                    "SELECT r.seq FROM readings r WHERE r.node = ? AND r.seq > ? AND NOT EXISTS "
                    "(SELECT 1 FROM readings x WHERE x.node = r.node AND x.seq = r.seq + 1) "
                    "ORDER BY r.seq LIMIT 1", (node, w))
            if old is None or w > old:
                w = self.scalar(
                    "INSERT INTO node_stored (node, seq, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT (node) DO UPDATE SET seq = %s(node_stored.seq, excluded.seq), "
                    "updated = excluded.updated RETURNING seq" % self.greatest, (node, w, now))
            stored[node] = w
        return stored

    # -- reads ---------------------------------------------------------------------------------
    def has_table(self, name):
        return self.scalar(self.table_query, (name,)) is not None

    def watermarks(self):
        return dict(self.query("SELECT node, seq FROM node_stored"))

    def latest_status(self):
        """node -> the status text of its newest health row."""
        return dict(self.query(
            "SELECT h.node, h.status FROM node_health h WHERE h.id = "
            "(SELECT MAX(x.id) FROM node_health x WHERE x.node = h.node)"))

    def node_counts(self):
        """node -> (readings, lowest seq, highest seq)."""
        return {n: (c, lo, hi) for n, c, lo, hi in self.query(
            "SELECT node, COUNT(*), MIN(seq), MAX(seq) FROM readings GROUP BY node ORDER BY node")}

    def readings(self, node=None, since=None, until=None):
        """Rows (node, seq, ts, t, p, h, flags, received) ordered by node and seq; with since or
        until only those whose ts is known and in [since, until)."""
        where, params = [], []
        if node is not None:
            where.append("node = ?")
            params.append(node)
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        text = "SELECT %s FROM readings%s ORDER BY node, seq" % (
            ", ".join(READING_COLUMNS), (" WHERE " + " AND ".join(where)) if where else "")
        cur = self._stream_cursor()
        try:
            cur.execute(self.sql(text), params)
            while True:
                chunk = cur.fetchmany(5000)
                if not chunk:
                    return
                yield from chunk
        finally:
            cur.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SqliteDb(Backend):
    dialect = "sqlite"
    greatest = "max"
    table_query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?"
    watermark_in_same_transaction = True  # SQLite serializes writers: the txn sees everything

    def __init__(self, path, create=True):
        import sqlite3
        self.path = path
        if not create and not os.path.exists(path):
            raise UserError("no database at %s" % path, "give the --db the ingest writes to")
        folder = os.path.dirname(os.path.abspath(path))
        if create:
            os.makedirs(folder, exist_ok=True)
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=30,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # an acknowledged batch must survive a power cut of this machine: the node is told
            # "stored" and forgets the readings
            self.conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as e:
            raise UserError("cannot open the SQLite database %s: %s" % (path, e))
        self._cur = self.conn.cursor()
        self.url = "sqlite:///" + path

    def _cursor(self):
        return self._cur

    def _stream_cursor(self):
        return self.conn.cursor()

    def begin(self):
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self):
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self):
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def schema_lock(self):
        yield  # each migration re-reads the version under BEGIN IMMEDIATE

    def _insert_readings(self, rows):
        cur = self.conn.cursor()
        cur.executemany("INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return cur.rowcount if rows else 0

    def close(self):
        self.conn.close()


class PostgresDb(Backend):
    dialect = "postgresql"
    greatest = "GREATEST"
    table_query = "SELECT to_regclass(?)"
    # read committed: another worker's rows are visible only after its commit, so the
    # watermark is computed in a transaction of its own after ours committed
    watermark_in_same_transaction = False
    _LOCK_KEY = 0x4C617465  # pg_advisory_lock key of schema migrations

    def __init__(self, url):
        import psycopg
        self.url = url
        try:
            self.conn = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as e:
            raise UserError("cannot connect to PostgreSQL at %s: %s"
                            % (describe(url), str(e).strip().splitlines()[0] if str(e) else e),
                            "check the URL, that the server runs and accepts this user "
                            "(a password goes in PGPASSWORD or ~/.pgpass, not the URL)")
        self._cur = self.conn.cursor()
        self._staging = False
        self._streams = 0

    def sql(self, text):
        return text.replace("?", "%s")

    def _cursor(self):
        return self._cur

    def _stream_cursor(self):
        self._streams += 1  # server side: rows come in chunks
        return self.conn.cursor(name="laterne_export_%d" % self._streams)

    def begin(self):
        pass  # psycopg opens a transaction with the first statement

    def commit(self):
        self.conn.commit()

    def rollback(self):
        self.conn.rollback()
        self._staging = False  # a temporary table made in the failed transaction is gone

    @contextlib.contextmanager
    def schema_lock(self):
        self.execute("SELECT pg_advisory_lock(?)", (self._LOCK_KEY,))
        self.commit()
        try:
            yield
        finally:
            self.rollback()
            self.execute("SELECT pg_advisory_unlock(?)", (self._LOCK_KEY,))
            self.commit()

    def _insert_readings(self, rows):
        if not rows:
            return 0
        cur = self._cur
        if not self._staging:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS incoming (LIKE readings) "
                        "ON COMMIT DELETE ROWS")
            self._staging = True
        with cur.copy("COPY incoming (%s) FROM STDIN" % ", ".join(READING_COLUMNS)) as copy:
            for r in rows:
                copy.write_row(r)
        cur.execute("INSERT INTO readings SELECT * FROM incoming ON CONFLICT DO NOTHING")
        return cur.rowcount

    def close(self):
        self.conn.close()
