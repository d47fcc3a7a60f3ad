# The monitor's pure parts without a broker: FleetState (parsing, dedupe, staleness, garbage),
# the table and JSON rendering, the readings CSV and the broker URL rules.
import csv
import io
import json

import pytest
from hypothesis import given, settings, strategies as st

from host_tools.errors import UserError
from host_tools.fleet.csvrows import HEADER, ReadingCsv
from host_tools.fleet.state import FleetState
from host_tools.fleet.monitor import Output, check_prefix, parse_broker_url
from host_tools.fleet.view import CLEAR, RESET, YELLOW, age_text, render_table

NOW = 1_800_000_000
COLS = ["seq", "ts", "t", "p", "h", "flags"]


def batch(node, rows, cols=COLS):
    return json.dumps({"v": 1, "node": node, "cols": cols, "rows": rows}).encode()


def status(node, **fields):
    d = {"v": 1, "node": node, "online": True}
    d.update(fields)
    return json.dumps(d).encode()


def test_reading_batch_becomes_rows_in_display_units():
    fs = FleetState()
    events = fs.update("laterne/n1/readings",
                       batch("n1", [[7, NOW - 60, 2154, 101325, 4520, 0],
                                    [8, NOW, -512, 99870, 10000, 256]]), NOW)
    assert [e["seq"] for e in events] == [7, 8]
    assert events[1] == {"type": "reading", "node": "n1", "seq": 8, "ts": NOW, "t_c": -5.12,
                         "p_hpa": 998.70, "h_pct": 100.0, "flags": 256}
    row = fs.table(NOW + 30)[0]
    assert (row["node"], row["seq"], row["t_c"], row["age_s"]) == ("n1", 8, -5.12, 30)


def test_duplicates_are_dropped_and_an_old_batch_does_not_replace_the_newest():
    fs = FleetState()
    fs.update("laterne/n1/readings", batch("n1", [[10, NOW, 2000, 100000, 5000, 0]]), NOW)
    again = fs.update("laterne/n1/readings", batch("n1", [[10, NOW, 2000, 100000, 5000, 0],
                                                          [9, NOW - 60, 1900, 100000, 5000, 0]]),
                      NOW)
    assert [e["seq"] for e in again] == [9]
    assert fs.duplicates == 1
    assert fs.table(NOW)[0]["seq"] == 10


def test_columns_are_read_by_name_and_nulls_survive():
    fs = FleetState()
    cols = ["flags", "h", "p", "t", "ts", "seq", "extra"]
    ev = fs.update("laterne/n2/readings", batch("n2", [[64, None, None, 2500, None, 3, "x"]], cols),
                   NOW)
    assert ev[0]["seq"] == 3 and ev[0]["t_c"] == 25.0 and ev[0]["ts"] is None
    assert ev[0]["p_hpa"] is None and ev[0]["h_pct"] is None and ev[0]["flags"] == 64
    assert fs.table(NOW + 5)[0]["age_s"] == 5  # time unknown: age since it arrived


def test_status_fields_and_last_will():
    fs = FleetState()
    fs.update("laterne/n1/status", status("n1", fw="0.3.1", rssi=-71, spool_depth=12, dropped=2,
                                          last_error="wifi: timeout", brand_new_field=[1]), NOW)
    row = fs.table(NOW)[0]
    assert (row["state"], row["fw"], row["rssi"], row["spool_depth"], row["dropped"],
            row["last_error"]) == ("online", "0.3.1", -71, 12, 2, "wifi: timeout")
    ev = fs.update("laterne/n1/status", b'{"v":1,"node":"n1","online":false}', NOW + 1)
    assert ev == [{"type": "status", "node": "n1", "online": False}]
    row = fs.table(NOW + 1)[0]
    assert row["state"] == "offline" and row["fw"] == "0.3.1"  # last known firmware kept


def test_version_column_tells_what_an_update_does():
    fs = FleetState()
    cases = [(None, "0.3.1"),
             ({"version": "0.4.0", "offer": "ab", "result": "downloading", "progress": 40},
              "0.3.1, getting 0.4.0 40%"),
             ({"version": "0.3.1", "offer": "ab", "result": "trial", "reason": None}, "0.3.1 on trial"),
             ({"version": "0.3.1", "offer": "ab", "result": "ok", "reason": None}, "0.3.1"),
             ({"version": "0.4.0", "offer": "ab", "result": "rolled_back", "reason": "crashed"},
              "0.3.1 (0.4.0 rolled back)"),
             ({"version": None, "result": "refused"}, "0.3.1"), ("garbage", "0.3.1")]
    for update, shown in cases:
        ev = fs.update("laterne/n1/status", status("n1", fw="0.3.1", update=update), NOW)
        assert fs.table(NOW)[0]["fw"] == shown, update
        assert ev[0]["update"] == update


def test_stale_when_the_newest_reading_is_too_old():
    fs = FleetState(stale_after=600)
    fs.update("laterne/a/status", status("a"), NOW)
    fs.update("laterne/a/readings", batch("a", [[1, NOW - 500, 1, 1, 1, 0]]), NOW)
    assert fs.table(NOW)[0]["state"] == "online"
    assert fs.table(NOW + 101)[0]["state"] == "stale"


@pytest.mark.parametrize("topic, payload", [
    ("laterne/n1/readings", b"\xff\xfe not utf-8"),
    ("laterne/n1/readings", b"{not json"),
    ("laterne/n1/readings", b"[1,2,3]"),
    ("laterne/n1/readings", batch("n1", "rows")),
    ("laterne/n1/readings", json.dumps({"v": 2, "node": "n1", "cols": COLS, "rows": []}).encode()),
    ("laterne/n1/readings", batch("someone-else", [[1, NOW, 1, 1, 1, 0]])),
    ("laterne/n1/status", b'{"v":1,"node":"n1","online":"yes"}'),
    ("laterne/n1/config/result", b'{"v":1}'),
    ("other/n1/status", status("n1")),
])
def test_garbage_is_counted_and_ignored(topic, payload):
    fs = FleetState()
    assert fs.update(topic, payload, NOW) == []
    assert fs.garbage == 1 and fs.nodes == {}


def test_bad_rows_are_skipped_and_good_ones_kept():
    fs = FleetState()
    ev = fs.update("laterne/n1/readings",
                   batch("n1", [[1, NOW, 1, 1, 1, 0], ["2", NOW, 1, 1, 1, 0], [True] * 6, [3]]),
                   NOW)
    assert [e["seq"] for e in ev] == [1] and fs.bad_rows == 3


def test_prefix_with_levels():
    fs = FleetState(prefix="city/laterne")
    assert fs.update("city/laterne/n1/status", status("n1"), NOW)
    assert fs.update("laterne/n1/status", status("n1"), NOW) == []


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                           lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                           max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(leaf=st.sampled_from(["readings", "status", "x"]), doc=json_values, raw=st.binary())
def test_never_crashes_on_any_payload(leaf, doc, raw):
    fs = FleetState()
    fs.update("laterne/n/" + leaf, raw, NOW)
    fs.update("laterne/n/" + leaf, json.dumps(doc).encode(), NOW)
    if isinstance(doc, dict):
        fs.update("laterne/n/" + leaf, json.dumps(dict(doc, v=1, node="n")).encode(), NOW)
    fs.table(NOW)


def test_table_highlights_stale_rows_only_with_colour():
    fs = FleetState(stale_after=60)
    fs.update("laterne/old/readings", batch("old", [[1, NOW - 3600, 1, 1, 1, 0]]), NOW)
    fs.update("laterne/new/readings", batch("new", [[1, NOW, 1, 1, 1, 0]]), NOW)
    fs.update("laterne/new/status", status("new"), NOW)
    coloured = render_table(fs.table(NOW), color=True).splitlines()
    plain = render_table(fs.table(NOW), color=False)
    assert coloured[0].startswith("node")
    new_line = next(line for line in coloured if "new" in line)
    old_line = next(line for line in coloured if "old" in line)
    assert old_line.startswith(YELLOW) and old_line.endswith(RESET) and "stale" in old_line
    assert "\x1b" not in new_line and "\x1b" not in plain
    assert "60m" in old_line


def test_age_text():
    assert [age_text(s) for s in (None, 5, 150, 7300, 200000)] == ["-", "5s", "2m", "2h", "2d"]


def test_csv_header_once_and_dedupe_across_runs(tmp_path):
    path = tmp_path / "readings.csv"
    r = {"type": "reading", "node": "n1", "seq": 5, "ts": NOW, "t_c": 21.5, "p_hpa": 1013.25,
         "h_pct": 45.2, "flags": 0}
    w = ReadingCsv(str(path))
    assert w.add(r) and not w.add(r)
    w.close()
    w = ReadingCsv(str(path))  # a second monitor run appends
    assert not w.add(r)
    assert w.add(dict(r, seq=6, ts=None, p_hpa=None))
    w.close()
    rows = list(csv.reader(path.open()))
    assert rows == [HEADER, ["n1", "5", str(NOW), "21.50", "1013.25", "45.20", "0"],
                    ["n1", "6", "", "21.50", "", "45.20", "0"]]


def test_csv_refuses_a_foreign_file(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError):
        ReadingCsv(str(path))


@pytest.mark.parametrize("url, expected", [
    ("mqtt://broker.local", ("broker.local", 1883, False, None)),
    ("mqtts://broker.local", ("broker.local", 8883, True, None)),
    ("mqtt://ops@10.0.0.5:1884", ("10.0.0.5", 1884, False, "ops")),
])
def test_broker_urls(url, expected):
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize("url, words", [
    ("http://broker", "mqtt://"), ("broker:1883", "mqtt://"), ("mqtt://:1883", "mqtt://"),
    ("mqtt://host:99999", "not valid"), ("mqtt://ops:hunter2@host", "password"),
    ("mqtt://host/topic", "path"),
])
def test_bad_broker_urls(url, words):
    with pytest.raises(UserError) as e:
        parse_broker_url(url)
    assert words in e.value.message
    assert "hunter2" not in e.value.message + (e.value.hint or "")


@pytest.mark.parametrize("prefix", ["", "a/+", "#", "/laterne", "laterne/"])
def test_bad_prefixes(prefix):
    with pytest.raises(UserError):
        check_prefix(prefix)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_terminal_output_redraws_in_place_and_colours_stale_nodes():
    fs = FleetState(stale_after=60)
    screen = Terminal()
    out = Output(fs, screen)
    out.events(fs.update("laterne/a/readings", batch("a", [[1, NOW, 1, 1, 1, 0]]), NOW))
    out.tick(NOW, "header")
    out.tick(NOW + 0.5, "header")  # less than a second later: no redraw
    out.tick(NOW + 120, "header")  # a's reading is now two minutes old
    frames = screen.getvalue().split(CLEAR)[1:]
    assert len(frames) == 2
    assert "\x1b[33" not in frames[0] and YELLOW in frames[1] and "stale" in frames[1]


def test_piped_output_prints_only_when_something_changed():
    fs = FleetState()
    pipe = io.StringIO()
    out = Output(fs, pipe, every=10)
    out.tick(NOW, "h")
    out.tick(NOW + 20, "h")  # nothing new: no second table
    out.events(fs.update("laterne/a/status", status("a"), NOW + 21))
    out.tick(NOW + 31, "h")
    text = pipe.getvalue()
    assert text.count("node  ") == 2 and CLEAR not in text and "\x1b[" not in text
