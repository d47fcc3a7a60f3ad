# laterne provision against the virtual board. The flash step is the only one replaced: a fake
# flash function is injected at the function level (flash itself is tested in test_flash.py
# against esptool with a mocked loader); deploy, configure and check run for real.
import json

import pytest

from host_tools.errors import UserError
from host_tools.usb import provision
from vboard_fixture import SECRET_VALUES, SECRETS, laterne, running_board, write_inputs  # noqa


class FakeFlash:
    def __init__(self):
        self.calls = []

    def __call__(self, port, board, firmware, **kw):
        self.calls.append((port, board["name"], str(firmware)))
        return {"mac": "24:0a:c4:00:00:99", "chip": "ESP32"}


def _run(board, tmp_path, flash, firmware, log, say=lambda m: None, **kw):
    site, inv, _ = write_inputs(tmp_path)
    return provision.provision(board.pty, inv, "lp-0001", firmware=firmware, site=site,
                               log_path=log, state_dir=tmp_path / "provision", flash=flash,
                               environ=SECRETS, log=say, **kw)


def test_resumes_at_the_failed_step_and_logs_each_run(tmp_path):
    firmware = tmp_path / "micropython.bin"
    firmware.write_bytes(b"\xe9" + b"\0" * 255)
    log = tmp_path / "provisioning.jsonl"
    flash = FakeFlash()
    state = tmp_path / "board-state"
    with running_board(tmp_path, sensor=False, state=state) as board:  # sensor not wired yet
        with pytest.raises(UserError) as e:
            _run(board, tmp_path, flash, firmware, log)
    assert "sensor" in e.value.message
    assert len(flash.calls) == 1
    saved = json.loads((tmp_path / "provision" / "lp-0001.json").read_text())
    assert set(saved["done"]) == {"flash", "deploy", "configure"}

    with running_board(tmp_path, sensor=True, state=state) as board:  # the technician fixed it
        record = _run(board, tmp_path, flash, firmware, log)
    assert len(flash.calls) == 1  # not flashed again
    assert record["result"] == "ok"
    assert record["steps_skipped"] == ["flash", "deploy", "configure"]
    assert record["steps_run"] == ["check"]

    lines = [json.loads(l) for l in log.read_text().splitlines()]
    assert [r["result"] for r in lines] == ["failed", "ok"]
    assert lines[0]["failed_step"] == "check" and "sensor" in lines[0]["reason"]
    import hashlib
    assert lines[1]["firmware_sha256"] == hashlib.sha256(firmware.read_bytes()).hexdigest()
    assert lines[1]["mac"] and lines[1]["app_hash"] and lines[1]["app_version"]
    assert lines[1]["board"] == "esp32-devkitc" and lines[1]["node_id"] == "lp-0001"
    text = log.read_text()
    for secret in SECRET_VALUES:
        assert secret not in text


def test_a_new_firmware_image_starts_over(tmp_path):
    firmware = tmp_path / "micropython.bin"
    firmware.write_bytes(b"\xe9" + b"\1" * 255)
    log = tmp_path / "provisioning.jsonl"
    flash = FakeFlash()
    messages = []
    with running_board(tmp_path) as board:
        first = _run(board, tmp_path, flash, firmware, log, say=messages.append)
        firmware.write_bytes(b"\xe9" + b"\2" * 255)
        second = _run(board, tmp_path, flash, firmware, log)
    assert first["result"] == second["result"] == "ok"
    assert len(flash.calls) == 2
    assert second["steps_run"] == ["flash", "deploy", "configure", "check"]
    # provision's log sees what each step says, deploy's file list included
    shown = "\n".join(messages)
    assert "copied /lib/laterne/config.mpy" in shown and "deploy: copied" in shown
    assert "configured lp-0001" in shown and "sensor" in shown


def test_a_refused_config_stops_before_any_step(tmp_path):
    """The node spec is built once, up front: missing secrets touch no board."""
    firmware = tmp_path / "micropython.bin"
    firmware.write_bytes(b"\xe9" + b"\0" * 255)
    site, inv, _ = write_inputs(tmp_path)
    flash = FakeFlash()
    with pytest.raises(UserError) as e:
        provision.provision("/dev/ttyUSB-unused", inv, "lp-0001", firmware=firmware, site=site,
                            log_path=tmp_path / "p.jsonl", state_dir=tmp_path / "provision",
                            flash=flash, environ={}, log=lambda m: None)
    assert "wifi: required" in e.value.message
    assert flash.calls == [] and not (tmp_path / "provision").exists()


def test_cli_missing_firmware_file_is_a_clear_message(tmp_path):
    _, inv, _ = write_inputs(tmp_path)
    run = laterne("provision", "--port", "/dev/null", "--inventory", inv, "--row", "lp-0001",
                  "--firmware", tmp_path / "nope.bin", "--log", tmp_path / "p.jsonl")
    assert run.returncode != 0
    assert "nope.bin not found" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "p.jsonl").exists()
