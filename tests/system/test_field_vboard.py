# Technician sessions against the virtual board, whose watchdog behaves like the ESP32's: it
# cannot be stopped, survives soft resets and fires while the board idles at the REPL. With
# the clock 20 times faster the node's 120 s watchdog is 6 s: every session below outlasts it.
import json
import time

from host_tools.usb.device import Device, retry_once
from host_tools.virtual import sim
from vboard_fixture import running_board

SCALE = 20
WATCHDOG_REAL_S = 120 / SCALE


def install(state):
    fs = state / "fs"
    sim.install_firmware(fs)
    (fs / "board.json").write_text((sim.paths.BOARDS / "esp32-devkitc.json").read_text())
    (fs / "config.json").write_text(json.dumps({
        "node_id": "vb-wdt", "wifi": [{"ssid": "depot", "password": "depot-pass-1"}],
        "broker": {"host": "127.0.0.1", "port": 9}, "ntp_servers": []}))


def hold(port, soft_reset):
    """A session that stays in the raw REPL longer than the watchdog's timeout, entered as
    the tools enter it (once more when the link failed on the way in: a loaded machine may
    catch the node still booting from the last session's resume)."""
    def session():
        with Device(port, soft_reset=soft_reset) as dev:
            time.sleep(WATCHDOG_REAL_S * 1.5)
            assert dev.exec("print(6 * 7)").strip() == b"42"
            dev.resume()
    retry_once(session)


def test_tool_sessions_outlast_the_watchdog_and_never_count_as_crashes(tmp_path):
    install(tmp_path / "state")
    with running_board(tmp_path, state=tmp_path / "state",
                       extra=["--time-scale", str(SCALE)]) as board:
        time.sleep(2)                       # the node boots and arms its watchdog
        hold(board.pty, soft_reset=False)   # laterne check: Ctrl-C into the REPL
        hold(board.pty, soft_reset=True)    # deploy, configure, plain mpremote: soft reset
        hold(board.pty, soft_reset=True)
        time.sleep(2)
        with Device(board.pty, soft_reset=False) as dev:
            snap = dev.exec("from laterne import node\nprint(node.snapshot())").strip()
            dev.resume()
    output = "\n".join(board.output)
    assert "watchdog reset" not in output, output[-3000:]
    assert b"'safe_mode': False" in snap and b"'reset_cause': 'soft'" in snap, snap
