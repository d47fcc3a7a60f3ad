# laterne check against the virtual board: a configured node with its sensor passes the
# sensor lines and is seen running; without a sensor the check fails (exit 1); before deploy
# and before configure it says what to run next. The judging itself, on given facts.
import json
import time

from host_tools import inventory
from host_tools.usb import check, configure, deploy
from vboard_fixture import SECRET_VALUES, SECRETS, laterne, running_board, write_inputs


def _prepare(board, tmp_path):
    deploy.deploy(board.pty, progress=False)
    site, inv, _ = write_inputs(tmp_path)
    spec = inventory.node_spec(inventory=inv, row_id="lp-0001", site=site, environ=SECRETS)
    configure.configure(board.pty, spec.config, spec.board, log=lambda m: None)


def _statuses(report):
    return {item: status for item, status, _ in report["lines"]}


def _check_running(board):
    """check() once the node is up (it needs a moment after each reset)."""
    deadline = time.monotonic() + 20
    while True:
        report = check.check(board.pty)
        if report["facts"].get("snapshot") or time.monotonic() > deadline:
            return report
        time.sleep(0.5)


def test_missing_sensor_is_a_failure(tmp_path):
    with running_board(tmp_path, sensor=False) as board:
        _prepare(board, tmp_path)
        run = laterne("check", "--port", board.pty)
        as_json = laterne("check", "--port", board.pty, "--json")
    assert run.returncode == 1
    sensor_line = [l for l in run.stdout.splitlines() if l.startswith("sensor")][0]
    assert "FAIL" in sensor_line
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and report["ok"] is False
    status = {l["item"]: l["status"] for l in report["lines"]}
    assert status["sensor"] == "FAIL" and status["i2c scan"] == "FAIL"
    assert status["firmware"] == "PASS" and status["config"] == "PASS"
    assert "Traceback" not in run.stderr


def test_configured_node_with_sensor(tmp_path):
    with running_board(tmp_path) as board:
        _prepare(board, tmp_path)
        report = _check_running(board)
        again = _check_running(board)  # the node resumed after the first check
    status = _statuses(report)
    for item in ("firmware", "board", "mac", "i2c scan", "sensor", "reading", "config", "spool"):
        assert status[item] == "PASS", report["lines"]
    assert report["facts"]["snapshot"]["fw"] == report["fw"]
    assert report["board"] == "esp32-devkitc"
    t, p, h = report["facts"]["reading"][:3]
    assert -4000 < t < 8500 and 30000 < p < 110000 and 0 <= h <= 10000
    config_line = [d for i, s, d in report["lines"] if i == "config"][0]
    assert "lp-0001" in config_line
    text = json.dumps(report["facts"])
    for secret in SECRET_VALUES:
        assert secret not in text  # masked on the board before it is sent
    assert again["facts"].get("snapshot"), again["lines"]


def test_evaluate_flags_a_bmp280_and_an_unknown_chip():
    base = {"fw": "0.1.0", "board": "x", "mac": "02:00:00:00:00:01", "scan": [0x76],
            "address": 0x76, "reading": [2000, 100000, 4000, 0]}
    bmp = _statuses({"lines": check.evaluate(dict(base, chip_id=0x58))})
    assert bmp["sensor"] == "WARN"
    other = _statuses({"lines": check.evaluate(dict(base, chip_id=0x11))})
    assert other["sensor"] == "FAIL"
    good = _statuses({"lines": check.evaluate(dict(base, chip_id=0x60))})
    assert good["sensor"] == "PASS" and good["wifi"] == "WARN"  # node not running


def test_before_deploy_and_before_configure_it_says_what_to_run(tmp_path):
    with running_board(tmp_path) as board:
        bare = laterne("check", "--port", board.pty)
        deploy.deploy(board.pty, progress=False, log=lambda m: None)
        unconfigured = laterne("check", "--port", board.pty)
        as_json = laterne("check", "--port", board.pty, "--json")
    assert bare.returncode == 1 and "Traceback" not in bare.stderr
    assert "no firmware on the node yet: run  laterne deploy --port %s" % board.pty in bare.stdout
    assert unconfigured.returncode == 1, unconfigured.stderr
    out = unconfigured.stdout
    assert "not configured yet" in out
    assert "run  laterne configure --port %s --inventory" % board.pty in out
    assert out.count("FAIL") == 1, out  # one line that says so, not a row of FAILs
    report = json.loads(as_json.stdout)
    assert report["next"]["run"].startswith("laterne configure --port ")
    assert [l["item"] for l in report["lines"] if l["status"] == "FAIL"] == ["config"]


def test_evaluate_judges_the_reading_by_the_drivers_flag():
    """The driver's plausible ranges decide (78 degC is beyond its 70 degC), not a second
    copy of them in the check."""
    from laterne import flags
    base = {"fw": "0.1.0", "board": "x", "mac": "02:00:00:00:00:01", "scan": [0x76],
            "address": 0x76, "chip_id": 0x60}
    hot = _statuses({"lines": check.evaluate(dict(base, reading=[7800, 100000, 2000,
                                                                 flags.IMPLAUSIBLE]))})
    assert hot["reading"] == "WARN"
    fine = _statuses({"lines": check.evaluate(dict(base, reading=[2000, 100000, 4000, 0]))})
    assert fine["reading"] == "PASS"
