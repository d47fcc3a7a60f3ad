# The ingest's database layer on SQLite (the same cases run on PostgreSQL in
# tests/system/test_ingest_postgres.py).
import pytest

from ingest_db_cases import *  # noqa: F401,F403


@pytest.fixture
def db_url(tmp_path):
    return "sqlite:///%s" % (tmp_path / "laterne.db")
