# laterne configure against the virtual board: the config built from site + inventory row +
# secrets (host_tools/inventory.py) lands on the board through the firmware's own
# laterne.service and laterne.config, secrets never show, a bad field is refused before
# anything is written. Reading the inputs on their own: tests/test_inventory.py.
import json

import pytest

from host_tools import inventory
from host_tools.errors import UserError
from host_tools.paths import BOARDS
from host_tools.usb import configure, deploy
from vboard_fixture import SECRET_VALUES, SECRETS, SITE, laterne, vboard, write_inputs  # noqa: F401


def test_configure_from_inventory_writes_config_and_board_file(vboard, tmp_path):
    deploy.deploy(vboard.pty, progress=False)
    site, inv, _ = write_inputs(tmp_path)
    logged = []
    spec = inventory.node_spec(inventory=inv, row_id="lp-0001", site=site, environ=SECRETS)
    result = configure.configure(vboard.pty, spec.config, spec.board, log=logged.append)
    cfg = json.loads((vboard.fs / "config.json").read_text())
    assert cfg["node_id"] == "lp-0001" and cfg["board"] == "esp32-devkitc"
    assert cfg["site"] == {"lamp_post": "LP-17", "lat": 52.52, "lon": 13.405,
                           "notes": "corner of Main St"}
    assert cfg["broker"]["host"] == "127.0.0.1" and cfg["broker"]["password"] == \
        SECRETS["LATERNE_MQTT_PASSWORD"]
    assert cfg["wifi"] == [{"ssid": "depot-net", "password": "wifi-Secret-8311"}]
    assert cfg["sample_interval_s"] == SITE["sample_interval_s"]
    assert json.loads((vboard.fs / "config.bak").read_text()) == cfg  # config.save's copy
    assert not (vboard.fs / "config.new").exists()
    board = json.loads((vboard.fs / "board.json").read_text())
    assert board == json.loads((BOARDS / "esp32-devkitc.json").read_text())
    shown = "\n".join(logged) + result["summary"]
    for secret in ("wifi-Secret-8311", "mqtt-Secret-4417", "lamp-user"):
        assert secret not in shown
    assert "***" in shown and "lp-0001" in shown


def test_cli_with_secrets_file_never_prints_secrets(vboard, tmp_path):
    deploy.deploy(vboard.pty, progress=False)
    site, _, secrets = write_inputs(tmp_path)
    run = laterne("configure", "--port", vboard.pty, "--node-id", "lamp-9", "--board",
                  "esp32-s3-devkitc", "--site", site, "--secrets", secrets)
    assert run.returncode == 0, run.stderr
    cfg = json.loads((vboard.fs / "config.json").read_text())
    assert cfg["node_id"] == "lamp-9" and cfg["wifi"][0]["password"] == "wifi-Secret-8311"
    assert json.loads((vboard.fs / "board.json").read_text())["name"] == "esp32-s3-devkitc"
    for secret in SECRET_VALUES:
        assert secret not in run.stdout + run.stderr


def test_keys_put_the_nodes_own_update_key_on_it_and_never_show_it(vboard, tmp_path):
    from host_tools.ota import keys
    deploy.deploy(vboard.pty, progress=False)
    site, _, secrets = write_inputs(tmp_path)
    key_file = tmp_path / "fleet-keys.json"
    run = laterne("configure", "--port", vboard.pty, "--node-id", "lamp-9", "--board",
                  "esp32-devkitc", "--site", site, "--secrets", secrets, "--keys", key_file)
    assert run.returncode == 0, run.stderr
    assert key_file.stat().st_mode & 0o077 == 0, "the fleet key file is private"
    master = keys.load(key_file)
    node_key = keys.node_key(master, "lamp-9")
    assert (vboard.fs / "ota.key").read_text() == node_key.hex()
    assert node_key != keys.node_key(master, "lamp-10")  # every node has its own
    shown = run.stdout + run.stderr
    assert "update key of lamp-9 installed" in shown
    for secret in (master.hex(), node_key.hex()):
        assert secret not in shown


def test_bad_field_is_refused_before_anything_is_written(vboard, tmp_path):
    deploy.deploy(vboard.pty, progress=False)
    site = dict(SITE, broker={"host": "127.0.0.1", "port": 70000})
    site_path, inv, secrets = write_inputs(tmp_path, site=site)
    run = laterne("configure", "--port", vboard.pty, "--inventory", inv, "--row", "lp-0001",
                  "--site", site_path, "--secrets", secrets)
    assert run.returncode != 0
    assert "broker.port" in run.stderr and "65535" in run.stderr
    assert "nothing was written" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (vboard.fs / "config.json").exists()
    assert not (vboard.fs / "board.json").exists()


def test_board_without_firmware_says_deploy_first(vboard, tmp_path):
    site, inv, _ = write_inputs(tmp_path)
    spec = inventory.node_spec(inventory=inv, row_id="lp-0001", site=site, environ=SECRETS)
    with pytest.raises(UserError) as e:
        configure.configure(vboard.pty, spec.config, spec.board)
    assert "laterne deploy" in e.value.hint
    assert not (vboard.fs / "config.json").exists()
