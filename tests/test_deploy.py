# laterne deploy against the virtual board over a real pty: compiled files land, a second
# deploy copies nothing, a changed file is the only one copied, stale files go, and bad
# ports or devices get a clear message without a traceback.
import hashlib
import os
import shutil
import threading

import pytest

from host_tools.errors import UserError
from host_tools.paths import FIRMWARE
from host_tools.usb import deploy
from vboard_fixture import laterne, vboard  # noqa: F401


def _device_exec(port, code):
    from host_tools.usb.device import Device, retry_once

    def run():
        with Device(port) as dev:
            return dev.exec(code).decode()
    return retry_once(run)


def test_first_deploy_lands_compiled_files_and_second_copies_nothing(vboard):
    first = deploy.deploy(vboard.pty, progress=False)
    lib_sources = sorted(p.relative_to(FIRMWARE).with_suffix(".mpy").as_posix()
                         for p in (FIRMWARE / "lib").rglob("*.py"))
    assert first["unchanged"] == 0 and first["removed"] == []
    assert sorted(p.lstrip("/") for p in first["copied"] if p.endswith(".mpy")) == lib_sources
    assert {"/boot.py", "/main.py"} <= set(first["copied"])
    for rel in lib_sources:
        data = (vboard.fs / rel).read_bytes()
        assert data[:2] == b"M\x06"  # a .mpy file, version 6
        assert not (vboard.fs / rel).with_suffix(".py").exists()
    assert (vboard.fs / "main.py").read_bytes() == (FIRMWARE / "main.py").read_bytes()

    import laterne as host_laterne
    out = _device_exec(vboard.pty, "import laterne\nprint(laterne.VERSION)")
    assert out.strip() == host_laterne.VERSION  # the compiled package imports on the board

    second = deploy.deploy(vboard.pty, progress=False)
    assert second["copied"] == [] and second["removed"] == []
    assert second["unchanged"] == len(first["copied"])
    assert second["app_hash"] == first["app_hash"]


def test_only_changed_files_are_copied_and_stale_ones_removed(vboard, tmp_path):
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
    deploy.deploy(vboard.pty, firmware_dir=fw, progress=False)
    (vboard.fs / "lib" / "old").mkdir()
    (vboard.fs / "lib" / "old" / "gone.mpy").write_bytes(b"stale")
    (vboard.fs / "lib" / "laterne" / "legacy.py").write_text("x = 1\n")
    (vboard.fs / "config.json").write_text("{}")  # outside /lib: never touched

    flags = fw / "lib" / "laterne" / "flags.py"
    flags.write_text(flags.read_text() + "\nDEPLOY_TEST_MARK = 1\n")
    plan = deploy.deploy(vboard.pty, firmware_dir=fw, dry_run=True, progress=False)
    assert plan["copied"] == ["/lib/laterne/flags.mpy"]
    assert (vboard.fs / "lib" / "old" / "gone.mpy").exists()  # dry run changes nothing

    result = deploy.deploy(vboard.pty, firmware_dir=fw, progress=False)
    assert result["copied"] == ["/lib/laterne/flags.mpy"]
    assert set(result["removed"]) == {"/lib/old/gone.mpy", "/lib/laterne/legacy.py",
                                      "/lib/old/"}
    assert not (vboard.fs / "lib" / "old").exists()
    assert not (vboard.fs / "lib" / "laterne" / "legacy.py").exists()
    assert (vboard.fs / "config.json").read_text() == "{}"
    built = deploy.build(fw, {"mpy": 6 | (2 << 10)})  # x64, like the unix port
    assert hashlib.sha256((vboard.fs / "lib/laterne/flags.mpy").read_bytes()).digest() == \
        hashlib.sha256(built["/lib/laterne/flags.mpy"]).digest()


def test_deploy_installs_the_factory_app_and_resets_updates(vboard):
    """The loader boots what deploy put in /lib: the update record and slots go, the node's
    update key stays."""
    deploy.deploy(vboard.pty, progress=False)
    slot = vboard.fs / "ota" / "a" / "laterne"
    slot.mkdir(parents=True)
    (slot / "__init__.mpy").write_bytes(b"an update")
    (vboard.fs / "ota" / "state").write_text(
        '{"slot": "a", "version": "9.9.9", "previous": "0.1.0", "last": null}')
    (vboard.fs / "ota.key").write_text("ab" * 32)
    result = deploy.deploy(vboard.pty, progress=False)
    assert result["ota_reset"] and not (vboard.fs / "ota").exists()
    assert (vboard.fs / "ota.key").read_text() == "ab" * 32
    out = _device_exec(vboard.pty, "import laterne\nprint(laterne.__path__)")
    assert out.strip().endswith("/lib/laterne")
    assert deploy.deploy(vboard.pty, progress=False)["ota_reset"] is False


def test_cli_says_when_nothing_changed(vboard):
    first = laterne("deploy", "--port", vboard.pty)
    assert first.returncode == 0, first.stderr
    assert "copied /lib/laterne/__init__.mpy" in first.stdout
    again = laterne("deploy", "--port", vboard.pty)
    assert again.returncode == 0, again.stderr
    assert "nothing to copy" in again.stdout and "copied /" not in again.stdout


def test_refuses_an_mpy_version_the_board_cannot_load(tmp_path):
    with pytest.raises(UserError) as e:
        deploy.build(FIRMWARE, {"mpy": 5 | (10 << 10), "version": (1, 18, 0)},
                     out_dir=tmp_path)
    assert "v5" in e.value.message and "v6" in e.value.message
    with pytest.raises(UserError) as e:
        deploy.build(FIRMWARE, {"mpy": 0, "version": (1, 9, 4)}, out_dir=tmp_path)
    assert "1.9.4" in e.value.message


def test_bad_port_is_a_clear_message():
    run = laterne("deploy", "--port", "/dev/ttyUSB-nonexistent")
    assert run.returncode != 0
    assert "no serial port /dev/ttyUSB-nonexistent" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_a_device_that_is_not_micropython(tmp_path):
    """A serial device that only prints noise: refused with a message, quickly."""
    master, slave = os.openpty()
    port = str(tmp_path / "modem")  # named like the virtual board's port (not /dev/pts/N,
    os.symlink(os.ttyname(slave), port)  # where mpremote blocks reading forever)
    stop = threading.Event()

    def noise():
        os.set_blocking(master, False)
        while not stop.is_set():
            try:
                os.read(master, 1024)
                os.write(master, b"AT OK\r\n")
            except BlockingIOError:
                pass
            stop.wait(0.05)

    th = threading.Thread(target=noise, daemon=True)
    th.start()
    try:
        with pytest.raises(UserError) as e:
            deploy.deploy(port, progress=False, timeout=1)
    finally:
        stop.set()
        th.join()
        os.close(master)
        os.close(slave)
    assert "raw repl" in (e.value.message + (e.value.hint or "")).lower()
