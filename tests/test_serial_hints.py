# One test per serial hint, with the exceptions raised the way pyserial, esptool and mpremote
# raise them (for real where the machine allows: missing port, a port held by another process).
import errno
import grp
import os
import subprocess
import sys
from unittest import mock

import pytest
import serial
from esptool.util import FatalError
from mpremote.transport import TransportError
from serial.tools.list_ports_common import ListPortInfo

from host_tools import serial_hints
from host_tools.cli import main
from host_tools.serial_hints import explain_serial_error


@pytest.fixture
def no_proc(tmp_path):
    """An empty /proc: no brltty, no other process holding anything."""
    root = tmp_path / "proc"
    root.mkdir()
    return str(root)


def fake_process(proc_root, pid, comm):
    d = os.path.join(proc_root, str(pid))
    os.makedirs(os.path.join(d, "fd"))
    with open(os.path.join(d, "comm"), "w") as f:
        f.write(comm + "\n")


def test_permission_denied_names_the_group_owning_the_port(tmp_path, no_proc):
    groups = [g.gr_name for g in grp.getgrall()]
    group = "dialout" if "dialout" in groups else grp.getgrgid(os.getgid()).gr_name
    port = tmp_path / "ttyUSB0"
    port.write_text("")
    os.chown(port, -1, grp.getgrnam(group).gr_gid)
    # how esptool 5 reports it (wrapping pyserial's message)
    exc = FatalError("Could not open %s, the port is busy or doesn't exist.\n(could not open port "
                     "%s: [Errno 13] Permission denied: '%s')\n\nHint: Try to add user into "
                     "dialout or uucp group.\n" % (port, port, port))
    e = explain_serial_error(exc, str(port), no_proc)
    assert e.message.startswith("permission denied on %s" % port)
    assert "'%s'" % group in e.message
    assert "usermod -aG %s" % group in e.hint and "log out" in e.hint


def test_permission_denied_from_pyserial_directly(tmp_path, no_proc):
    port = str(tmp_path / "ttyACM0")
    exc = serial.SerialException(errno.EACCES, "could not open port %s: [Errno 13] Permission "
                                 "denied: '%s'" % (port, port))
    e = explain_serial_error(exc, port, no_proc)
    assert e.message.startswith("permission denied") and "usermod -aG" in e.hint


def test_missing_port_lists_the_ports_pyserial_sees(no_proc):
    port = "/dev/ttyLATERNE9"
    with pytest.raises(serial.SerialException) as real:
        serial.Serial(port)  # the real error pyserial raises
    seen = ListPortInfo("/dev/ttyUSB3", skip_link_detection=True)
    seen.description = "CP2102 USB to UART Bridge Controller"
    with mock.patch("serial.tools.list_ports.comports", return_value=[seen]):
        e = explain_serial_error(real.value, port, no_proc)
    assert e.message == "no serial port %s" % port
    assert "/dev/ttyUSB3 (CP2102 USB to UART Bridge Controller)" in e.hint and "--port" in e.hint


def test_missing_port_and_no_ports_at_all_says_check_the_cable(no_proc):
    with mock.patch("serial.tools.list_ports.comports", return_value=[]):
        e = explain_serial_error(FileNotFoundError(2, "No such file or directory", "/dev/ttyUSB0"),
                                 "/dev/ttyUSB0", no_proc)
    assert "no serial ports found" in e.hint and "data USB cable" in e.hint


def test_brltty_grabbing_the_adapter(no_proc):
    fake_process(no_proc, 812, "brltty")
    exc = TransportError("failed to access /dev/ttyUSB0")  # mpremote's wording
    e = explain_serial_error(exc, "/dev/ttyUSB0", no_proc)
    assert "brltty" in e.message and "sudo apt remove brltty" in e.hint


@pytest.fixture
def held_pty():
    """A pseudo-terminal held open (and locked, as esptool does) by another process."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    code = ("import serial, sys, time; s = serial.Serial(sys.argv[1], exclusive=True); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield path, proc.pid
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


def test_port_busy_names_the_process_holding_it(held_pty):
    path, pid = held_pty
    with pytest.raises(serial.SerialException) as real:
        serial.serial_for_url(path, exclusive=True)  # what esptool does: real EAGAIN on flock
    e = explain_serial_error(real.value, path)
    assert "%s is busy" % path in e.message
    assert "pid %d" % pid in e.message and "python" in e.message
    assert "kill %d" % pid in e.hint


def test_port_holders_ignores_the_caller_itself(held_pty):
    path, pid = held_pty
    pids = [p for p, _ in serial_hints.port_holders(path)]
    assert pids == [pid]  # this test process has the pty open too, but is not "another"


@pytest.mark.parametrize("message", [
    "Failed to connect to ESP32: No serial data received.\nFor troubleshooting steps visit: "
    "https://docs.espressif.com/projects/esptool/en/latest/troubleshooting.html",
    "Failed to connect to ESP32-C3: Wrong boot mode detected (0x13)! The chip needs to be in "
    "download mode.",
    "Failed to connect to Espressif device: Invalid head of packet (0x1B): Possible serial noise "
    "or corruption.",
])
def test_no_bootloader_answer_says_hold_boot(message, no_proc):
    e = explain_serial_error(FatalError(message), "/dev/ttyUSB0", no_proc)
    assert "download mode" in e.message
    assert "hold the BOOT button, tap EN/RESET" in e.hint


def test_could_not_enter_raw_repl(no_proc):
    e = explain_serial_error(TransportError("could not enter raw repl"), "/dev/ttyACM0", no_proc)
    assert "raw REPL" in e.message
    assert "Ctrl-C" in e.hint and "laterne flash" in e.hint


def test_chip_board_mismatch_names_both():
    e = serial_hints.chip_mismatch({"name": "esp32-devkitc", "chip": "esp32"}, "ESP32-S3")
    assert "ESP32-S3" in e.message and "esp32-devkitc" in e.message and "ESP32" in e.message


def test_missing_firmware_file(no_proc):
    exc = FileNotFoundError(2, "No such file or directory", "build/micropython.bin")
    e = explain_serial_error(exc, "/dev/ttyUSB0", no_proc)
    assert e.message == "firmware file build/micropython.bin does not exist"
    assert "micropython.org/download" in e.hint


def test_unknown_failure_keeps_the_first_line(no_proc):
    e = explain_serial_error(OSError("read failed: device reports readiness\nmore"), "/dev/x",
                             no_proc)
    assert e.message == "serial error on /dev/x: read failed: device reports readiness"
    assert e.hint


def test_cli_prints_hint_and_no_traceback(capsys, tmp_path):
    fw = tmp_path / "fw.bin"
    fw.write_bytes(b"\xe9" * 10)
    code = main(["flash", "--port", "/dev/ttyNONE", "--board", "esp32-devkitc",
                 "--firmware", str(fw)])
    err = capsys.readouterr().err
    assert code == 2 and "hint:" in err and "Traceback" not in err
