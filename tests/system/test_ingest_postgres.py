# The ingest's database layer on a real PostgreSQL server started by the tests (the same
# cases as tests/test_ingest_db.py on SQLite).
import pytest

from ingest_db_cases import *  # noqa: F401,F403


@pytest.fixture
def db_url(pg_url):
    return pg_url
