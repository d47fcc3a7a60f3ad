# The parts of `make demo`: decoding and storing readings, the summary, the plot, the view and
# the process handling (the whole demo, and the recorder against brokers: tests/system/).
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.demo.outage import Outage, outage_times
from host_tools.demo.procs import Child, pids_mentioning, port_free
from host_tools.demo.recorder import ReadingStore, Recorder, decode_readings
from host_tools.demo.run import WorldClock
from host_tools.demo.summary import (database_check, format_database, format_summary, outage_report,
                                     seq_gaps, summarize)
from host_tools.fleet import plot

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
T0 = 1795000000  # a virtual Unix time


def reading_msg(node, rows):
    return json.dumps({"v": 1, "node": node, "cols": ["seq", "ts", "t", "p", "h", "flags"],
                       "rows": rows})


def synthetic_rows(nodes=3, n=40, hole=None):
    """Readings every 60 s; hole=(node, seq_from, seq_to) leaves those seqs out."""
    rows = []
    for k in range(1, nodes + 1):
        for i in range(n):
            node = "lamp-%03d" % k
            if hole and hole[0] == node and hole[1] <= i < hole[2]:
                continue
            rows.append({"node": node, "seq": i, "ts": T0 + 60 * i, "t_c": 10 + 0.37 * k + 0.05 * i,
                         "p_hpa": 1010 + 0.4 * k - 0.01 * i, "h_pct": 50 + 2 * k - 0.03 * i,
                         "flags": 0, "received": 1000.0 + 2 * i})
    return rows


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["node", "seq", "ts", "t_c", "p_hpa", "h_pct", "flags"])
        for r in rows:
            w.writerow([r["node"], r["seq"], "" if r["ts"] is None else r["ts"], r["t_c"],
                        r["p_hpa"], r["h_pct"], r["flags"]])


# --- decoding and storing readings -------------------------------------------------------

def test_decode_readings_maps_columns_by_name():
    payload = json.dumps({"v": 1, "node": "lamp-007", "cols": ["ts", "seq", "h", "p", "t", "flags"],
                          "rows": [[T0, 12, 6543, 100321, 1875, 0], [None, 13, 6500, 100300, 1870, 64]]})
    node, rows = decode_readings(payload.encode())
    assert node == "lamp-007"
    assert rows[0] == {"node": "lamp-007", "seq": 12, "ts": T0, "t": 1875, "p": 100321,
                       "h": 6543, "flags": 0}
    assert rows[1]["ts"] is None and rows[1]["flags"] == 64


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"v":2,"node":"a","cols":[],"rows":[]}',
    reading_msg("a", [[1, 2, 3]]).encode(),
    json.dumps({"v": 1, "node": "a", "cols": ["seq", "ts"], "rows": [[1, 2]]}).encode(),
    reading_msg("a", [["1", T0, 1, 2, 3, 0]]).encode(),
])
def test_decode_readings_rejects_malformed(payload):
    with pytest.raises(ValueError):
        decode_readings(payload)


def test_store_keeps_first_arrival_and_writes_the_monitor_csv_columns(tmp_path):
    store = ReadingStore()
    store.add([{"node": "lamp-002", "seq": 5, "ts": T0, "t": -105, "p": 100321, "h": 6543,
                "flags": 0}], 10.0)
    store.add([{"node": "lamp-002", "seq": 5, "ts": T0, "t": 9, "p": 9, "h": 9, "flags": 0},
               {"node": "lamp-001", "seq": 0, "ts": None, "t": 1875, "p": None, "h": None,
                "flags": 70}], 11.5)
    assert store.duplicates == 1 and store.count() == 2 and store.count("lamp-002") == 1
    path = tmp_path / "r.csv"
    assert store.write_csv(path) == 2
    assert path.read_text().splitlines() == [
        "node,seq,ts,t_c,p_hpa,h_pct,flags,received",
        "lamp-001,0,,18.75,,,70,11.500",
        "lamp-002,5,%d,-1.05,1003.21,65.43,0,10.000" % T0]
    assert plot.read_csv(path) == [
        {"node": "lamp-001", "seq": 0, "ts": None, "t_c": 18.75, "p_hpa": None, "h_pct": None,
         "flags": 70},
        {"node": "lamp-002", "seq": 5, "ts": T0, "t_c": -1.05, "p_hpa": 1003.21,
         "h_pct": 65.43, "flags": 0}]


def test_read_csv_takes_a_monitor_csv_and_names_a_bad_line(tmp_path):
    path = tmp_path / "monitor.csv"
    path.write_text("node,seq,ts,t_c,p_hpa,h_pct,flags\nlamp-001,1,%d,12.50,1013.25,56.78,0\n"
                    "lamp-001,x,1,1,2,3,0\n" % T0)
    with pytest.raises(ValueError, match="line 3"):
        plot.read_csv(path)
    path.write_text("node,seq,ts,t,p,h,flags\n")
    with pytest.raises(ValueError, match="header"):
        plot.read_csv(path)


def test_recorder_start_fails_clearly_without_broker():
    port = free_port()
    with pytest.raises(OSError):
        Recorder("127.0.0.1", port).start(timeout=2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- what the terminal shows --------------------------------------------------------------

def test_view_on_a_pipe_prints_announcements_and_the_table_when_it_changed():
    import io
    from host_tools.demo.view import DemoView
    out = io.StringIO()
    view = DemoView(stream=out, tty=False, every=10)
    view.now = lambda: T0 + 120
    view.say("lamp-002 loses its network")
    assert out.getvalue() == "demo: lamp-002 loses its network\n"
    view.feed("laterne/lamp-001/readings",
              reading_msg("lamp-001", [[4, T0 + 60, 1875, 100321, 6543, 0]]).encode())
    view.feed("laterne/lamp-001/status", json.dumps({"v": 1, "node": "lamp-001",
                                                      "online": True, "spool_depth": 3}).encode())
    view.header = "HEADER"
    view.tick(100.0)
    table = out.getvalue().split("\n", 1)[1]
    assert table.startswith("HEADER\n") and "\x1b" not in table
    row = [l for l in table.splitlines() if l.startswith("lamp-001")][0].split()
    assert row[:7] == ["lamp-001", "online", "18.75", "1003.21", "65.43", "60s", "3"]
    before = out.getvalue()
    view.tick(105.0)  # not due yet
    view.tick(111.0)  # due, but nothing changed
    assert out.getvalue() == before


def test_view_on_a_terminal_redraws_in_place_with_the_announcements_below():
    import io
    from host_tools.demo.view import DemoView
    out = io.StringIO()
    view = DemoView(stream=out, tty=True)
    view.now = lambda: T0
    view.tick(1.0)
    view.say(">>> lamp-002 has its network back")
    frames = out.getvalue().split("\x1b[H\x1b[J")
    assert len(frames) == 3 and frames[0] == ""
    assert "(no nodes seen yet)" in frames[2]
    assert frames[2].index("(no nodes seen yet)") < frames[2].index("lamp-002 has its network")


# --- summary -----------------------------------------------------------------------------

def test_summary_counts_gaps_and_a_drained_outage():
    rows = synthetic_rows(nodes=3, n=40)
    outage = {"node": "lamp-002", "down_ts": T0 + 60 * 10, "up_ts": T0 + 60 * 20}
    report = summarize(rows, ["lamp-001", "lamp-002", "lamp-003"], outage)
    assert report["ok"]
    assert report["outage"]["taken_offline"] == 10 and report["outage"]["drained"]
    assert report["nodes"]["lamp-003"] == {"readings": 40, "first_seq": 0, "last_seq": 39,
                                           "missing": []}
    assert "all were delivered" in format_summary(report)


def test_summary_reports_a_lost_stretch_and_a_silent_node():
    rows = synthetic_rows(nodes=2, n=40, hole=("lamp-002", 12, 15))
    outage = {"node": "lamp-002", "down_ts": T0 + 60 * 10, "up_ts": T0 + 60 * 20}
    report = summarize(rows, ["lamp-001", "lamp-002", "lamp-003"], outage)
    assert not report["ok"]
    assert report["nodes"]["lamp-002"]["missing"] == [12, 13, 14]
    assert report["silent"] == ["lamp-003"]
    assert not report["outage"]["drained"]
    text = format_summary(report)
    assert "NOT fully delivered" in text and "READINGS MISSING" in text


def test_outage_not_drained_without_readings_after_it():
    rows = [r for r in synthetic_rows(nodes=1, n=40) if r["ts"] < T0 + 60 * 20]
    outage = {"node": "lamp-001", "down_ts": T0 + 60 * 10, "up_ts": T0 + 60 * 20}
    assert not outage_report(rows, outage)["drained"]


def test_seq_gaps():
    assert seq_gaps([3, 4, 7, 5, 9, 9]) == [6, 8]
    assert seq_gaps([]) == []


# --- outage timing and virtual time ------------------------------------------------------

def test_outage_starts_at_a_fifth_and_ends_at_half_of_the_run():
    cut, length = outage_times(100)
    assert (cut, cut + length) == pytest.approx((20, 50))
    cut, length = outage_times(None)
    assert cut > 0 and length > 0


def test_outage_cuts_only_a_delivering_node_and_restores_after_its_length(tmp_path):
    now = [1000.0]
    link = tmp_path / "link"
    o = Outage("lamp-002", link, cut_after=15, length=20, clock=lambda: now[0])
    assert o.step(10, delivered=3) is None and not link.exists()
    assert o.step(16, delivered=0) is None and not link.exists()  # still starting: wait
    assert o.step(17, delivered=1) == "down" and link.read_text().strip() == "down"
    now[0] += 19.9
    assert o.step(37, delivered=1) is None and link.read_text().strip() == "down"
    now[0] += 0.2
    assert o.step(38, delivered=1) == "up" and link.read_text().strip() == "up"
    assert o.step(60, delivered=9) is None
    assert (o.down_host, o.up_host) == (1000.0, pytest.approx(1020.1))

    class World:
        def virtual(self, host_s):
            return T0 + (host_s - 1000.0) * 30
    assert o.virtual(World()) == {"node": "lamp-002", "down_ts": T0,
                                  "up_ts": pytest.approx(T0 + 20.1 * 30)}


def test_world_clock_maps_host_time_to_virtual_time(tmp_path):
    spec = tmp_path / "run.json"
    spec.write_text(json.dumps({"epoch_unix": T0, "epoch_host_ns": 5_000_000_000, "scale": 30}))
    clock = WorldClock(spec)
    assert clock.virtual(5.0) == pytest.approx(T0)
    assert clock.virtual(7.0) == pytest.approx(T0 + 60)


@pytest.mark.parametrize("argv, message", [
    (["--nodes", "0"], "between 1 and 20"), (["--nodes", "x"], "invalid int"),
    (["--duration", "5"], "at least"), (["--duration", "abc"], "invalid float")])
def test_demo_rejects_bad_arguments_without_traceback(argv, message, tmp_path):
    p = subprocess.run([PY, "-m", "host_tools.demo"] + argv, cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, LATERNE_DEMO_OUT=str(tmp_path)))
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr
    assert not list(tmp_path.iterdir())  # nothing started


# --- plot --------------------------------------------------------------------------------

def test_with_breaks_splits_only_at_a_hole():
    ts = [0, 60, 120, 180, 600, 660]
    t2, v2 = plot.with_breaks(ts, [1, 2, 3, 4, 5, 6])
    assert v2 == [1, 2, 3, 4, None, 5, 6] and 180 < t2[4] < 600
    assert plot.with_breaks(ts[:4], [1, 2, 3, 4])[1] == [1, 2, 3, 4]


def _colours(png):
    import matplotlib.image as mpimg
    img = mpimg.imread(str(png))
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 600
    return img, {tuple((px[:3] * 255).round().astype(int)) for px in img.reshape(-1, img.shape[2])}


def test_plot_cli_draws_every_node_and_the_outage(tmp_path):
    rows = synthetic_rows(nodes=3, n=40)
    write_csv(tmp_path / "r.csv", rows)
    p = subprocess.run([PY, "-m", "host_tools.fleet.plot", str(tmp_path / "r.csv"),
                        "--outage", "lamp-002:%d:%d" % (T0 + 600, T0 + 1200)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    img, colours = _colours(tmp_path / "r.png")
    tab10 = {(31, 119, 180), (255, 127, 14), (44, 160, 44)}  # the first three node colours
    assert tab10 <= colours
    band = (250, 227, 227)  # tab:red (214, 39, 40) at 13 % over white: the shaded outage
    assert any(all(abs(a - b) <= 2 for a, b in zip(c, band)) for c in colours)


def test_plot_without_outage_has_no_band(tmp_path):
    plot.render(synthetic_rows(nodes=1, n=20), tmp_path / "one.png")
    _, colours = _colours(tmp_path / "one.png")
    assert not any(all(abs(a - b) <= 2 for a, b in zip(c, (250, 227, 227))) for c in colours)


@pytest.mark.parametrize("args, message", [
    (["missing.csv"], "No such file"), (["{csv}", "--outage", "lamp-1:9:1"], "START <= END"),
    (["{empty}"], "no reading")])
def test_plot_cli_bad_input_is_a_message(args, message, tmp_path):
    write_csv(tmp_path / "r.csv", synthetic_rows(nodes=1, n=5))
    write_csv(tmp_path / "e.csv", [])
    args = [a.format(csv=tmp_path / "r.csv", empty=tmp_path / "e.csv") for a in args]
    p = subprocess.run([PY, "-m", "host_tools.fleet.plot"] + args, cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr


# --- processes ---------------------------------------------------------------------------

def test_child_stop_ends_its_whole_group(tmp_path):
    marker = "laterne-test-marker-%d" % os.getpid()
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(300)', sys.argv[1]]); time.sleep(300)")
    child = Child("t", [PY, "-c", code, marker], log_path=str(tmp_path / "log"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(pids_mentioning(marker)) < 2:
        time.sleep(0.05)
    assert len(pids_mentioning(marker)) == 2
    assert child.stop(timeout=5) == -signal.SIGTERM
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pids_mentioning(marker):
        time.sleep(0.05)
    assert pids_mentioning(marker) == []


def test_port_free_sees_a_listener():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not port_free(port)
    assert port_free(port)


def test_database_check_matches_counts_with_the_nodes_seqs():
    report = {"nodes": {"lamp-001": {"last_seq": 40}, "lamp-002": {"last_seq": 12}}}
    check = database_check({"lamp-001": (40, 1, 40), "lamp-002": (11, 1, 12)},
                                   {"lamp-001": 40, "lamp-002": 10}, report)
    assert check["nodes"]["lamp-001"]["match"] and not check["nodes"]["lamp-002"]["match"]
    assert not check["ok"]
    text = format_database(check)
    assert "lamp-001          40        1-40        40 1-40, match" in text
    assert "1-12, MISMATCH" in text and "READINGS MISSING" in text
    assert database_check({}, {}, {"nodes": {"lamp-001": {"last_seq": 3}}})["ok"] is False
