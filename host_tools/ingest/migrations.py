# The database schema as numbered migrations, the same tables in SQLite and PostgreSQL.
# `migrate` applies the ones a database lacks, in order, each in its own transaction, and
# records them in schema_version; a database newer than this code is refused, never touched.
# A new schema change is a new entry at the end; entries are never edited once released.
import time

# (version, what it does, statements per dialect: "sqlite", "postgresql")
MIGRATIONS = [
    (1, "readings keyed by (node, seq), stored watermark, node health, rejects", {
        "sqlite": [
            """CREATE TABLE readings (
                node TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER,
                t INTEGER, p INTEGER, h INTEGER, flags INTEGER NOT NULL,
                received REAL NOT NULL, PRIMARY KEY (node, seq)) WITHOUT ROWID""",
            "CREATE INDEX readings_node_ts ON readings (node, ts)",
            """CREATE TABLE node_stored (
                node TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated REAL NOT NULL)""",
            """CREATE TABLE node_health (
                id INTEGER PRIMARY KEY AUTOINCREMENT, node TEXT NOT NULL,
                received REAL NOT NULL, online BOOLEAN NOT NULL, fw TEXT, boot INTEGER,
                uptime_s INTEGER, reset_cause TEXT, spool_depth INTEGER, spool_first INTEGER,
                dropped INTEGER, errors INTEGER, last_error TEXT, sensor TEXT,
                free_heap INTEGER, rssi INTEGER, status TEXT NOT NULL)""",
            "CREATE INDEX node_health_node_received ON node_health (node, received)",
            """CREATE TABLE rejects (
                id INTEGER PRIMARY KEY AUTOINCREMENT, received REAL NOT NULL,
                topic TEXT NOT NULL, node TEXT, reason TEXT NOT NULL, payload TEXT)""",
            "CREATE INDEX rejects_received ON rejects (received)",
        ],
        "postgresql": [
            """CREATE TABLE readings (
                node TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT,
                t INTEGER, p INTEGER, h INTEGER, flags INTEGER NOT NULL,
                received DOUBLE PRECISION NOT NULL, PRIMARY KEY (node, seq))""",
            "CREATE INDEX readings_node_ts ON readings (node, ts)",
            """CREATE TABLE node_stored (
                node TEXT PRIMARY KEY, seq BIGINT NOT NULL, updated DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE node_health (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, node TEXT NOT NULL,
                received DOUBLE PRECISION NOT NULL, online BOOLEAN NOT NULL, fw TEXT,
                boot INTEGER, uptime_s BIGINT, reset_cause TEXT, spool_depth INTEGER,
                spool_first BIGINT, dropped BIGINT, errors INTEGER, last_error TEXT,
                sensor TEXT, free_heap INTEGER, rssi INTEGER, status TEXT NOT NULL)""",
            "CREATE INDEX node_health_node_received ON node_health (node, received)",
            """CREATE TABLE rejects (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                received DOUBLE PRECISION NOT NULL, topic TEXT NOT NULL, node TEXT,
                reason TEXT NOT NULL, payload TEXT)""",
            "CREATE INDEX rejects_received ON rejects (received)",
        ],
    }),
]


class SchemaTooNew(Exception):
    """The database was migrated by a newer laterne."""


def latest(migrations=MIGRATIONS):
    return migrations[-1][0] if migrations else 0


def migrate(db, migrations=MIGRATIONS):
    """Bring db (a host_tools.ingest.db backend) to the latest version; returns the versions
    applied now. Concurrent callers (several ingest workers starting at once) are serialized."""
    applied = []
    with db.schema_lock():
        db.begin()
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                   "applied REAL NOT NULL, description TEXT NOT NULL)")
        db.commit()
        found = version(db)
        if found > latest(migrations):
            raise SchemaTooNew("the database has schema version %d; this laterne knows up to %d"
                               % (found, latest(migrations)))
        for number, description, statements in migrations:
            db.begin()
            if number <= version(db):  # re-read under the write lock
                db.rollback()
                continue
            for sql in statements[db.dialect]:
                db.execute(sql)
            db.execute("INSERT INTO schema_version (version, applied, description) "
                       "VALUES (?, ?, ?)", (number, time.time(), description))
            db.commit()
            applied.append(number)
    return applied


def version(db):
    """The schema version of db (0 before the first migration)."""
    return db.scalar("SELECT MAX(version) FROM schema_version") or 0
