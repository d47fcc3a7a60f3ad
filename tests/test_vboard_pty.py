# The virtual board behind a real pseudo-terminal, driven by mpremote's SerialTransport (and
# once by the mpremote command): exec, files landing in STATE/fs, soft reset, boot/main,
# Ctrl-C, hard reset, the simulated sensor, and a clean stop.
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mpremote.transport_serial import SerialTransport

from vboard_fixture import running_board, vboard, vboard_nosensor  # noqa: F401


def connect(board, soft_reset=True):
    t = SerialTransport(board.pty, baudrate=115200)
    t.enter_raw_repl(soft_reset=soft_reset)
    return t


def test_exec_sensor_on_i2c_and_files_in_the_state_folder(vboard):
    t = connect(vboard)
    try:
        assert t.exec("print(6 * 7)") == b"42\r\n"
        scan = t.eval("__import__('machine').I2C(0).scan()")
        assert scan == [0x76]
        t.fs_writefile("/lib/hello.py", b"GREETING = 'hi'\n")
        t.fs_mkdir("/spool")
        t.fs_writefile("notes.txt", b"relative path\n")
        names = sorted(e.name for e in t.fs_listdir("/"))
    finally:
        t.close()
    assert (vboard.fs / "lib" / "hello.py").read_bytes() == b"GREETING = 'hi'\n"
    assert (vboard.fs / "notes.txt").read_bytes() == b"relative path\n"
    assert (vboard.fs / "spool").is_dir()
    assert not os.path.exists("/lib/hello.py") and not os.path.exists("/notes.txt")
    assert {"lib", "notes.txt", "spool"} <= set(names)


def test_no_sensor_means_empty_bus(vboard_nosensor):
    t = connect(vboard_nosensor)
    try:
        assert t.eval("__import__('machine').I2C(0).scan()") == []
    finally:
        t.close()


def test_soft_reset_restarts_the_interpreter_and_keeps_files(vboard):
    t = connect(vboard)
    try:
        t.fs_writefile("/lib/keep.py", b"VALUE = 5\n")
        t.exec("marker = 1")
        assert t.eval("marker") == 1
        t.enter_raw_repl(soft_reset=True)  # Ctrl-D in the raw REPL
        out = t.exec("try:\n print(marker)\nexcept NameError:\n print('fresh')")
        assert out.strip() == b"fresh"
        assert t.eval("__import__('keep').VALUE") == 5  # /lib is on sys.path
        # rename is what atomic writes rely on
        t.exec("import os\nos.rename('/lib/keep.py', '/lib/kept.py')")
    finally:
        t.close()
    assert (vboard.fs / "lib" / "kept.py").exists() and not (vboard.fs / "lib" / "keep.py").exists()


def _read_until(t, text, timeout=10):
    data = b""
    end = time.monotonic() + timeout
    while text not in data and time.monotonic() < end:
        data += t.read_until(1, text, timeout=1)
    return data


def test_boot_and_main_run_and_ctrl_c_drops_to_the_repl(vboard):
    (vboard.fs / "boot.py").write_text("print('boot ran')\n")
    (vboard.fs / "main.py").write_text(
        "import time\nprint('main alive')\nwhile True:\n    time.sleep_ms(50)\n")
    t = connect(vboard)
    try:
        t.exit_raw_repl()
        t.serial.write(b"\x04")  # soft reset in the friendly REPL: boot.py then main.py
        seen = _read_until(t, b"main alive")
        assert b"MPY: soft reboot" in seen
        assert seen.index(b"boot ran") < seen.index(b"main alive")
        t.enter_raw_repl(soft_reset=False)  # Ctrl-C interrupts main.py
        assert t.exec("print('at the repl')") == b"at the repl\r\n"
    finally:
        t.close()


def test_machine_reset_restarts_with_hard_reset_cause(vboard):
    t = connect(vboard)
    try:
        t.exec_raw_no_follow("import machine\nmachine.reset()")
        _read_until(t, b">>> ")
        t.enter_raw_repl(soft_reset=False)
        assert t.eval("__import__('machine').reset_cause()") == 2  # machine.HARD_RESET
        assert t.eval("__import__('machine').unique_id()") == t.eval(
            "__import__('machine').unique_id()")
    finally:
        t.close()


def test_unique_id_follows_the_node_id(tmp_path):
    ids = []
    for node in ("lamp-a", "lamp-b", "lamp-a"):
        with running_board(tmp_path / node, node_id=node) as b:
            t = connect(b)
            try:
                ids.append(t.eval("__import__('machine').unique_id()"))
            finally:
                t.close()
    assert len(ids[0]) == 6
    assert ids[0] == ids[2] and ids[0] != ids[1]


def test_mpremote_command_line(vboard, tmp_path):
    src = tmp_path / "app.py"
    src.write_text("print('app says', 3 + 4)\n")
    mpremote = os.path.join(os.path.dirname(sys.executable), "mpremote")
    run = subprocess.run([mpremote, "connect", vboard.pty, "fs", "cp", str(src), ":app.py",
                          "+", "exec", "import app", "+", "fs", "ls", ":/", "+",
                          "sha256sum", ":app.py", "+", "soft-reset", "+", "exec",
                          "import os; print(os.listdir('/'))"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "app says 7" in run.stdout
    assert (vboard.fs / "app.py").read_text() == src.read_text()
    import hashlib
    assert hashlib.sha256(src.read_bytes()).hexdigest() in run.stdout
    assert "'app.py'" in run.stdout


def test_sigterm_stops_the_board_and_leaves_no_process(tmp_path):
    with running_board(tmp_path) as b:
        t = connect(b)
        t.close()
    assert b.proc.returncode is not None
    assert not os.path.lexists(b.pty)  # the port symlink is gone
    pids = b.child_pids()
    assert pids, b.output
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_deep_sleep_wakes_with_the_deep_sleep_cause_and_keeps_rtc_memory(vboard):
    t = connect(vboard)
    try:
        t.exec("import machine\nmachine.RTC().memory(b'kept over sleep')")
        t.exec_raw_no_follow("import machine\nmachine.deepsleep(300)")
        _read_until(t, b">>> ")  # woke up: boot.py, main.py, the REPL
        t.enter_raw_repl(soft_reset=False)
        assert t.eval("__import__('machine').reset_cause()") == 4  # DEEPSLEEP_RESET
        assert t.eval("__import__('machine').RTC().memory()") == b"kept over sleep"
    finally:
        t.close()


def test_state_defaults_to_the_folder_make_uses():
    from host_tools.cli import build_parser
    from host_tools.paths import REPO
    makefile = (REPO / "Makefile").read_text()
    folder = re.search(r"\$\(LATERNE\) virtual-board .*--state (\S+)", makefile).group(1)
    args = build_parser().parse_args(["virtual-board", "--pty", "x.pty"])
    assert Path(args.state) == REPO / folder
