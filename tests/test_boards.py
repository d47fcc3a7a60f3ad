# The board files: every shipped board is valid, broken copies fail naming the key, and the
# `laterne boards` verb lists and checks them.
import json
import shutil

import pytest

from host_tools import boards, paths
from host_tools.cli import main
from host_tools.errors import UserError

REQUIRED = {"esp32-devkitc": ("esp32", "ESP32_GENERIC", 0x1000),
            "esp32-c3-devkitm": ("esp32c3", "ESP32_GENERIC_C3", 0x0),
            "esp32-s3-devkitc": ("esp32s3", "ESP32_GENERIC_S3", 0x0)}


def test_shipped_boards_are_valid_and_include_the_required_ones():
    assert boards.validate_all() == []
    names = boards.list_boards()
    for name, (chip, build, offset) in REQUIRED.items():
        b = boards.load_board(name)
        assert (b["chip"], b["micropython_build"], b["flash_offset"]) == (chip, build, offset)
    assert len(names) >= 4  # plus at least one compact board


def test_heap_budgets_are_the_ports():
    """96 KB on the plain ESP32 (its port starts with 56 KB and doubles once), 112 KB on the
    C3 and S3 (64 KB doubled), 16 KB left for Wi-Fi and TLS each time."""
    for name, budget in (("esp32-devkitc", 96), ("lolin-d1-mini32", 96),
                         ("esp32-c3-devkitm", 112), ("xiao-esp32c3", 112),
                         ("esp32-s3-devkitc", 112)):
        heap = boards.load_board(name)["gc_heap"]
        assert heap["budget_kb"] == budget and heap["first_area_kb"] == (56 if budget == 96 else 64)


def test_firmware_keys_are_present_in_every_board():
    # platform.py reads exactly these at boot
    for name in boards.list_boards():
        b = boards.load_board(name)
        assert set(b["i2c"]) == {"id", "sda", "scl", "freq"}
        assert b["bme280_address"] in (0x76, 0x77)
        assert b["led"] is None or set(b["led"]) == {"pin", "active_low"}
        assert "SDA" in b["wiring"] and "SCL" in b["wiring"]


def test_unknown_board_names_the_known_ones():
    with pytest.raises(UserError) as e:
        boards.load_board("esp8266-nodemcu")
    assert "esp32-devkitc" in e.value.hint and "xiao-esp32c3" in e.value.hint


@pytest.fixture
def folder(tmp_path):
    shutil.copy(paths.BOARDS / "schema.json", tmp_path)
    shutil.copy(paths.BOARDS / "esp32-devkitc.json", tmp_path)
    return tmp_path


def _break(folder, change, name="esp32-devkitc"):
    path = folder / (name + ".json")
    board = json.loads(path.read_text())
    change(board)
    path.write_text(json.dumps(board))


@pytest.mark.parametrize("change, key", [
    (lambda b: b.pop("flash_offset"), "flash_offset"),
    (lambda b: b["i2c"].update(sda="21"), "i2c.sda"),
    (lambda b: b.update(bme280_address=0x78), "bme280_address"),
    (lambda b: b.update(flash_offset=0), "flash_offset"),  # wrong for an ESP32
    (lambda b: b.update(micropython_build="ESP32_GENERIC_C3"), "micropython_build"),
    (lambda b: b["i2c"].update(scl=35), "i2c.scl"),  # input-only on the ESP32
    (lambda b: b.update(led={"pin": 21, "active_low": False}), "led.pin"),  # clashes with SDA
    (lambda b: b.update(name="other"), "name"),
    (lambda b: b.update(colour="blue"), "colour"),
    (lambda b: b.pop("gc_heap"), "gc_heap"),
    (lambda b: b["gc_heap"].update(first_area_kb=64), "gc_heap.first_area_kb"),  # an S3's
    (lambda b: b["gc_heap"].update(budget_kb=112), "gc_heap.budget_kb"),  # beyond the ESP32's
])
def test_broken_copy_fails_with_the_key_named(folder, change, key):
    _break(folder, change)
    errors = boards.validate_all(folder)
    assert errors, "a broken board must not validate"
    assert any(e.startswith("esp32-devkitc.json: ") and key in e for e in errors), errors


def test_not_json_is_reported(folder):
    (folder / "esp32-devkitc.json").write_text("{ not json")
    assert boards.validate_all(folder)[0].startswith("esp32-devkitc.json: not valid JSON")


def test_boards_verb_lists_and_checks(folder, capsys):
    assert main(["boards"]) == 0
    out = capsys.readouterr().out
    assert "esp32-s3-devkitc" in out and "ESP32_GENERIC_S3" in out and "0x1000" in out
    assert "96 KB" in out and "112 KB" in out
    assert main(["boards", "--check"]) == 0
    _break(folder, lambda b: b.update(flash_offset=0x2000))
    assert main(["boards", "--check", "--dir", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "flash_offset" in err and "0x1000" in err
