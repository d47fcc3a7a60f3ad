# `laterne ingest`, `laterne export` and `laterne acl` as a user runs them: what they write,
# and a clear message with a non-zero exit (never a traceback) for bad input.
import csv
import sys

import pytest

from host_tools import cli
from host_tools.broker import free_port
from host_tools.ingest import db as dbmod
from host_tools.ingest import migrations

T0 = 1780000000  # 2026-05-28T20:26:40Z


def filled_db(path):
    url = "sqlite:///%s" % path
    with dbmod.open_db(url) as d:
        migrations.migrate(d)
        b = dbmod.Batch()
        for s in range(1, 301):  # one reading a minute for 5 h, pressure falling 0.01 hPa/min
            b.rows[("lamp-001", s)] = ("lamp-001", s, T0 + 60 * s, 3000, 101300 - s, 7000, 0,
                                       T0 + 60 * s + 2.5)
        b.rows[("lamp-001", 301)] = ("lamp-001", 301, None, None, None, None, 71, T0 + 20000.0)
        b.rows[("lamp-002", 1)] = ("lamp-002", 1, T0 + 60, 1500, 100000, 5000, 0, T0 + 61.0)
        b.nodes = {"lamp-001", "lamp-002"}
        d.write(b)
    return url


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_export_csv_with_derived_values(tmp_path, capsys):
    url = filled_db(tmp_path / "city.db")
    code, out, _ = run(capsys, "export", "--db", url, "--csv", str(tmp_path / "all.csv"))
    assert code == 0 and "export: 302 readings" in out
    rows = list(csv.DictReader(open(tmp_path / "all.csv")))
    assert [(r["node"], r["seq"]) for r in rows][:2] == [("lamp-001", "1"), ("lamp-001", "2")]
    r = rows[200]
    assert (r["ts"], r["time_utc"]) == (str(T0 + 60 * 201), "2026-05-28T23:47:40Z")
    assert (float(r["t_c"]), float(r["p_hpa"]), float(r["h_pct"])) == (30.0, 1010.99, 70.0)
    assert round(float(r["humidex"])) == 41  # Environment Canada: 30 °C, 70 % -> 41
    assert 23.5 < float(r["dew_point_c"]) < 24.5 and float(r["heat_index_c"]) > 30
    assert float(r["pressure_tendency_hpa_3h"]) == pytest.approx(-1.8)
    assert rows[0]["pressure_tendency_hpa_3h"] == ""          # nothing 3 h before
    unknown = [r for r in rows if r["seq"] == "301"][0]
    assert unknown["ts"] == "" and unknown["flags"] == "71" and unknown["dew_point_c"] == ""
    cool = [r for r in rows if r["node"] == "lamp-002"][0]
    assert cool["humidex"] == "" and cool["heat_index_c"] == "" and cool["dew_point_c"]


def test_export_filters_keep_the_tendency_of_the_first_rows(tmp_path, capsys):
    url = filled_db(tmp_path / "city.db")
    since = "2026-05-29T00:00:00Z"
    code, out, _ = run(capsys, "export", "--db", url, "--node", "lamp-001", "--since", since,
                       "--until", str(T0 + 60 * 250), "--csv", str(tmp_path / "part.csv"))
    assert code == 0
    rows = list(csv.DictReader(open(tmp_path / "part.csv")))
    assert {r["node"] for r in rows} == {"lamp-001"}
    assert int(rows[0]["ts"]) >= 1780012800 and int(rows[-1]["ts"]) < T0 + 60 * 250
    assert rows[0]["pressure_tendency_hpa_3h"] != ""


def test_export_parquet(tmp_path, capsys):
    import pyarrow.parquet as pq
    url = filled_db(tmp_path / "city.db")
    code, out, _ = run(capsys, "export", "--db", url, "--parquet", str(tmp_path / "r.parquet"))
    assert code == 0
    table = pq.read_table(tmp_path / "r.parquet")
    assert table.num_rows == 302 and table.column("seq").to_pylist()[:3] == [1, 2, 3]
    assert table.schema.field("humidex").type == "double"


@pytest.mark.parametrize("argv,message", [
    (["export", "--db", "sqlite:///{tmp}/none.db", "--csv", "{tmp}/x.csv"], "no database at"),
    (["export", "--db", "mysql://x/y", "--csv", "{tmp}/x.csv"], "is not a database URL"),
    (["export", "--db", "sqlite:///{tmp}/city.db", "--since", "yesterday", "--csv", "{tmp}/x.csv"],
     "--since 'yesterday' is not a time"),
    (["export", "--db", "sqlite:///{tmp}/city.db", "--since", "200", "--until", "100",
      "--csv", "{tmp}/x.csv"], "--until must be later"),
    (["export", "--db", "sqlite:///{tmp}/city.db", "--csv", "{tmp}/no/such/dir/x.csv"],
     "cannot write"),
    (["export", "--db", "sqlite:///{tmp}/empty.db", "--csv", "{tmp}/x.csv"], "holds no laterne"),
    (["ingest", "--broker", "mqtt://127.0.0.1:{port}", "--db", "sqlite:///{tmp}/i.db"],
     "cannot reach the broker"),
    (["ingest", "--broker", "http://x", "--db", "sqlite:///{tmp}/i.db"], "must start with mqtt"),
    (["ingest", "--broker", "mqtt://127.0.0.1", "--db", "sqlite://"], "has no file path"),
    (["ingest", "--broker", "mqtt://127.0.0.1", "--db",
      "postgresql://u:secret-pw@127.0.0.1:{port}/x"], "cannot connect to PostgreSQL"),
    (["acl", "--inventory", "{tmp}/dup.csv", "--out", "{tmp}/acl"], "lamp-001 appears more"),
    (["acl", "--inventory", "{tmp}/bad.csv", "--out", "{tmp}/acl"], "node ids a node would"),
    (["acl", "--inventory", "{tmp}/nocol.csv", "--out", "{tmp}/acl"], "no node_id column"),
    (["acl", "--inventory", "{tmp}/dup.csv", "--out", "{tmp}/acl", "--ingest-user", "lamp-002"],
     "lamp-001 appears"),
])
def test_bad_input_is_a_message(tmp_path, capsys, argv, message):
    filled_db(tmp_path / "city.db")
    import sqlite3
    sqlite3.connect(str(tmp_path / "empty.db")).close()
    (tmp_path / "dup.csv").write_text("node_id,lamp_post\nlamp-001,a\nlamp-001,b\n")
    (tmp_path / "bad.csv").write_text("node_id,lamp_post\nLamp 1,a\n")
    (tmp_path / "nocol.csv").write_text("id,lamp_post\nlamp-001,a\n")
    argv = [a.format(tmp=tmp_path, port=free_port()) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err, err
    assert "secret-pw" not in err + out


def test_acl_user_names_must_differ_from_node_ids(tmp_path, capsys):
    (tmp_path / "fleet.csv").write_text("node_id,lamp_post\nlamp-001,a\nlaterne-ingest,b\n")
    code, out, err = run(capsys, "acl", "--inventory", str(tmp_path / "fleet.csv"), "--out",
                         str(tmp_path / "acl"))
    assert code == 2 and "laterne-ingest" in err


def test_ingest_migrate_only_creates_the_schema(tmp_path, capsys):
    code, out, _ = run(capsys, "ingest", "--broker", "mqtt://127.0.0.1:1", "--db",
                       "sqlite:///%s" % (tmp_path / "new.db"), "--migrate-only")
    assert code == 0 and "at schema version 1 (applied 1)" in out
    code, out, _ = run(capsys, "ingest", "--broker", "mqtt://127.0.0.1:1", "--db",
                       "sqlite:///%s" % (tmp_path / "new.db"), "--migrate-only")
    assert code == 0 and "applied" not in out


def test_default_database_is_build_laterne_db():
    assert dbmod.DEFAULT_URL == "sqlite:///build/laterne.db"
    parser = cli.build_parser()
    args = parser.parse_args(["ingest", "--broker", "mqtt://h"])
    assert args.db == "sqlite:///build/laterne.db" and args.client_id == "laterne-ingest"
    assert parser.parse_args(["export", "--csv", "x"]).db == "sqlite:///build/laterne.db"
