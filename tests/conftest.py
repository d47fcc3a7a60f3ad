# Shared pytest set-up: the portable tests and the virtual board import the same way on
# CPython as on MicroPython (firmware/lib and host_tools/virtual/board on the path); the test
# helpers in tests/kit/ import by their bare names. tests/system/ holds the slow system tests.
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / "firmware" / "lib", ROOT / "host_tools" / "virtual" / "board",
          ROOT / "tests" / "portable", ROOT / "tests" / "kit"):
    if str(p) not in sys.path:
        sys.path.append(str(p))


import pytest  # noqa: E402

from host_tools.broker import Broker  # noqa: E402


# The slowest files (in total, measured), longest first.
SLOWEST = ("test_virtual_nodes", "test_node_heap", "test_soak_stored", "test_ota_fleet",
           "test_demo_run", "test_spool_powercut", "test_ota_powercut")


def pytest_collection_modifyitems(items):
    """The system tests first, the slowest files at their head: with `make test`'s
    `-n 2 --dist worksteal` a worker that runs out of tests takes the other's last ones,
    so both end together on quick tests instead of one waiting for a long one."""
    def rank(item):
        name = item.nodeid.split("::")[0].rsplit("/", 1)[-1][:-3]
        if name in SLOWEST:
            return SLOWEST.index(name)
        return len(SLOWEST) + ("tests/system/" not in item.nodeid)
    items.sort(key=rank)


@pytest.fixture
def broker():
    """A real mosquitto on a free loopback port, stopped after the test."""
    b = Broker(kind="mosquitto")
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server (initdb into a temporary folder) for this test session."""
    from host_tools.pgserver import PgServer
    server = PgServer(durable=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server, request):
    """A fresh empty database on the session's PostgreSQL server."""
    import re
    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:40] + "_%d" % id(request)
    return pg_server.create_database(name)
