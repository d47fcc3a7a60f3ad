# `laterne ingest` throughput, one ingest process, mosquitto on loopback, SQLite and PostgreSQL
# (durable: fsync on, a server started here):
# - ingest_readings_per_s_<db>: a backlog of QUEUED readings (10 nodes, batches of 50) waiting
#   in the broker for the ingest's persistent session, stored from the moment it connects;
# - backlog_100x7d_drain_s_<db> / backlog_100x7d_readings_per_s_<db>: a 100-node fleet back
#   after a 7-day outage (one reading a minute: 1,008,000 readings) sends its spools at once,
#   100 MQTT clients with 8 messages of 50 readings in flight each, as the firmware does; the
#   time from the first message until every node's `stored` watermark reached its last seq.
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host_tools import paths
from host_tools.broker import Broker
from host_tools.ingest import db as dbmod
from host_tools.pgserver import PgServer

sys.path.insert(0, str(paths.REPO / "tests" / "kit"))
from ingest_proc import IngestProc, Publisher  # noqa: E402

QUEUED, QUEUED_NODES = 200000, 10
FLEET, DAYS_READINGS = 100, 7 * 24 * 60
BATCH = 50
PUBLISHER_PROCS = 4


def publish(port, first, count, per_node):
    """Publisher process: nodes lamp-<first>..lamp-<first+count-1>, each its own client."""
    t0 = int(time.time()) - per_node * 60 - 3600
    pubs = [Publisher(port, "lamp-%03d" % i, inflight=8) for i in range(first, first + count)]
    last = []
    for start in range(1, per_node + 1, BATCH):
        for i, p in enumerate(pubs):
            last.append(p.send("lamp-%03d" % (first + i), range(start, min(start + BATCH,
                                                                         per_node + 1)), t0=t0))
    for info in last:
        info.wait_for_publish(600)
    for p in pubs:
        p.close()


def fleet(port, nodes, per_node):
    step = (nodes + PUBLISHER_PROCS - 1) // PUBLISHER_PROCS
    return [subprocess.Popen([sys.executable, "-m", "bench.bench_ingest", "publish", str(port),
                              str(first), str(min(step, nodes - first + 1)), str(per_node)],
                             cwd=paths.REPO) for first in range(1, nodes + 1, step)]


def wait_all(url, nodes, per_node, timeout=900):
    with dbmod.open_db(url, create=False) as d:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            marks = d.watermarks()
            d.commit()
            if len(marks) >= nodes and all(m >= per_node for m in marks.values()):
                return time.monotonic()
            time.sleep(0.1)
    raise TimeoutError("the ingest did not store %d x %d readings" % (nodes, per_node))


def queued(broker, url, tmp):
    ingest = IngestProc(broker.url, url, tmp / "q.log")  # registers the persistent session
    ingest.stop()
    for p in fleet(broker.port, QUEUED_NODES, QUEUED // QUEUED_NODES):
        p.wait(600)
    ingest.start()
    t0 = time.monotonic()
    t1 = wait_all(url, QUEUED_NODES, QUEUED // QUEUED_NODES)
    ingest.stop()
    return QUEUED / (t1 - t0)


def backlog(broker, url, tmp):
    ingest = IngestProc(broker.url, url, tmp / "b.log", ["--client-id", "laterne-ingest-b"])
    t0 = time.monotonic()
    procs = fleet(broker.port, FLEET, DAYS_READINGS)
    t1 = wait_all(url, FLEET, DAYS_READINGS)
    for p in procs:
        p.wait(60)
    ingest.stop()
    return t1 - t0


def measure():
    figures = {}
    with tempfile.TemporaryDirectory() as tmp, PgServer() as pg:
        tmp = Path(tmp)
        for name in ("sqlite", "postgresql"):
            for what in ("queued", "backlog"):
                url = ("sqlite:///%s" % (tmp / ("%s.db" % what)) if name == "sqlite"
                       else pg.create_database(what))
                with Broker(kind="mosquitto") as broker:
                    if what == "queued":
                        figures["ingest_readings_per_s_" + name] = round(
                            queued(broker, url, tmp))
                    else:
                        seconds = backlog(broker, url, tmp)
                        figures["backlog_100x7d_drain_s_" + name] = round(seconds, 1)
                        figures["backlog_100x7d_readings_per_s_" + name] = round(
                            FLEET * DAYS_READINGS / seconds)
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["publish"]:
        publish(*(int(a) for a in sys.argv[2:6]))
    else:
        print(measure())
