# One node spec, read once (host_tools/inventory.py): site defaults, the inventory row and the
# secrets become one validated config with the board file beside it; bad inputs get clear
# messages that never show a secret, and `laterne sim` builds its nodes' configs the same way.
import json
import os

import pytest

from host_tools import inventory
from host_tools.errors import UserError
from host_tools.paths import BOARDS
from vboard_fixture import SECRETS, SITE, laterne, write_inputs


def test_node_spec_holds_the_row_the_board_file_and_the_validated_config(tmp_path):
    site, inv, secrets = write_inputs(tmp_path)
    spec = inventory.node_spec(inventory=inv, row_id="lp-0001", site=site, secrets_file=secrets,
                               environ={})
    assert spec.row["node_id"] == "lp-0001" and spec.row["board"] == "esp32-devkitc"
    assert spec.board == json.loads((BOARDS / "esp32-devkitc.json").read_text())
    cfg = spec.config
    assert cfg["node_id"] == "lp-0001" and cfg["board"] == "esp32-devkitc"
    assert cfg["site"] == {"lamp_post": "LP-17", "lat": 52.52, "lon": 13.405,
                           "notes": "corner of Main St"}
    assert cfg["wifi"] == [{"ssid": "depot-net", "password": "wifi-Secret-8311"}]
    assert cfg["broker"]["username"] == "lamp-user"
    assert cfg["sample_interval_s"] == SITE["sample_interval_s"]
    assert cfg["spool_bytes"] > 0  # validated: the schema's defaults are filled in


def test_board_option_overrides_the_row_and_a_bare_node_id_needs_a_board(tmp_path):
    site, inv, _ = write_inputs(tmp_path)
    spec = inventory.node_spec(inventory=inv, row_id="lp-0001", board_name="esp32-s3-devkitc",
                               site=site, environ=SECRETS)
    assert spec.board["name"] == spec.config["board"] == "esp32-s3-devkitc"
    bare = inventory.node_spec(node_id="lamp-9", board_name="xiao-esp32c3", site=site,
                               environ=SECRETS)
    assert bare.row is None and bare.config["site"] is None
    assert bare.config["node_id"] == "lamp-9" and bare.board["name"] == "xiao-esp32c3"
    with pytest.raises(UserError) as e:
        inventory.node_spec(node_id="lamp-9", site=site, environ=SECRETS)
    assert "which board" in e.value.message


def test_missing_secrets_are_a_config_error_naming_the_key(tmp_path):
    site, inv, _ = write_inputs(tmp_path)
    with pytest.raises(UserError) as e:
        inventory.node_spec(inventory=inv, row_id="lp-0001", site=site, environ={})
    assert "wifi: required" in e.value.message


def test_readable_secrets_file_is_refused(tmp_path):
    _, _, secrets = write_inputs(tmp_path)
    os.chmod(secrets, 0o644)
    with pytest.raises(UserError) as e:
        inventory.read_secrets(secrets, environ={})
    assert e.value.hint == "chmod 600 %s" % secrets


def test_secrets_file_overrides_environment_and_rejects_unknown_keys(tmp_path):
    sec = tmp_path / "s.env"
    sec.write_text("# depot\nLATERNE_WIFI_PASSWORD=from-file-123\n")
    os.chmod(sec, 0o600)
    got = inventory.read_secrets(sec, environ={"LATERNE_WIFI_PASSWORD": "from-env-123",
                                               "LATERNE_WIFI_SSID": "x"})
    assert got == {"LATERNE_WIFI_PASSWORD": "from-file-123", "LATERNE_WIFI_SSID": "x"}
    sec.write_text("WIFI_PASS=hunter2hunter2\n")
    with pytest.raises(UserError) as e:
        inventory.read_secrets(sec, environ={})
    assert "line 1" in e.value.message and "hunter2" not in e.value.message


def test_unknown_row_lists_known_ids(tmp_path):
    _, inv, _ = write_inputs(tmp_path)
    run = laterne("configure", "--port", "/dev/null", "--inventory", inv, "--row", "lp-9999")
    assert run.returncode != 0
    assert "lp-9999" in run.stderr and "lp-0001, lp-0002" in run.stderr


def test_sim_nodes_are_built_by_the_same_builder(monkeypatch):
    from host_tools.virtual import sim
    from laterne import config
    calls = []
    real = inventory.build_config
    monkeypatch.setattr(inventory, "build_config",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    opts = {"ca": None, "prefix": "laterne", "sample_interval": 60, "upload_interval": 300,
            "ntp": True, "deep_sleep": False, "board_name": "esp32-devkitc"}
    cfg, errors = config.validate(sim.node_config("lamp-004", "127.0.0.1", 1883, 12345, opts))
    assert len(calls) == 1 and errors == []
    assert cfg["node_id"] == "lamp-004" and cfg["wifi"][0]["ssid"] == sim.SIM_AP["ssid"]
    assert cfg["broker"]["port"] == 1883 and cfg["ntp_servers"] == ["127.0.0.1:12345"]
