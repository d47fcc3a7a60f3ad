# laterne check against a configured virtual board with Wi-Fi and a real mosquitto: the node
# goes online and every line passes.
import time

from host_tools import inventory
from host_tools.usb import configure, deploy
from vboard_fixture import SECRETS, SITE, laterne, running_board, write_inputs


def test_all_pass_once_the_node_is_online(tmp_path, broker):
    """Virtual Wi-Fi plus a real mosquitto: every line passes and the exit code is 0."""
    site = dict(SITE, broker={"host": "127.0.0.1", "port": broker.port})
    with running_board(tmp_path) as board:
        deploy.deploy(board.pty, progress=False)
        site_path, inv, _ = write_inputs(tmp_path, site=site)
        spec = inventory.node_spec(inventory=inv, row_id="lp-0001", site=site_path,
                                   environ=SECRETS)
        configure.configure(board.pty, spec.config, spec.board, log=lambda m: None)
        deadline = time.monotonic() + 120  # generous: CI runs other tests on both cores
        while True:  # each check restarts the node, so give it time to get online between
            time.sleep(10)
            run = laterne("check", "--port", board.pty)
            if run.returncode == 0 or time.monotonic() > deadline:
                break
    assert run.returncode == 0, run.stdout
    assert "FAIL" not in run.stdout and "WARN" not in run.stdout
    assert "check: all PASS" in run.stdout
