# `laterne flash` against esptool's real command code: only the serial loader is replaced
# (tests/kit/esp_testkit.FakeLoader, the real chip class with an emulated flash behind the wire
# methods). Images are built and inspected by esptool for real.
import inspect
from unittest import mock

import pytest
from esp_pylib.logger import EspLog
from esptool import cmds
from esptool.loader import ESPLoader
from esptool.util import FatalError

import esp_testkit as kit
from host_tools import boards
from host_tools.cli import main
from host_tools.errors import UserError
from host_tools.flash import flasher
from host_tools.flash.esptool_log import esptool_output

# Facts from the chip documentation, written out here rather than read from the code under test
BOOT_OFFSET = {"esp32": 0x1000, "esp32c3": 0x0, "esp32s3": 0x0}
CHIP_NAME = {"esp32": "ESP32", "esp32c3": "ESP32-C3", "esp32s3": "ESP32-S3"}
PORT = "/dev/ttyUSB7"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fw")
    out = {}
    for chip in BOOT_OFFSET:
        path = folder / ("%s.bin" % chip)
        kit.micropython_like_bin(chip, str(path))
        out[chip] = path
    return out


def fake_chips(*loaders):
    """Patch esptool's detect_chip (the port opening + sync) to hand out these loaders."""
    queue = list(loaders)
    return mock.patch.object(cmds, "detect_chip",
                             side_effect=lambda port, baud, *a, **k: queue.pop(0))


def flash(board, firmware, **kw):
    lines = []
    kw.setdefault("progress", False)
    result = flasher.flash_board(PORT, boards.load_board(board), str(firmware),
                                 log=lines.append, **kw)
    return result, lines


@pytest.mark.parametrize("name", boards.list_boards())
def test_each_board_writes_at_its_offset_verifies_and_resets(name, images):
    board = boards.load_board(name)
    chip = board["chip"]
    esp = kit.fake_loader_class(chip)(PORT)
    with fake_chips(esp):
        result, lines = flash(name, images[chip])
    data = images[chip].read_bytes()
    off = BOOT_OFFSET[chip]
    assert result["offset"] == off
    assert bytes(esp.flash[off:off + len(data)]) == data
    assert esp.flash[off - 1] == 0xA5 if off else True  # nothing written before the offset
    assert result["chip"] == CHIP_NAME[chip] and result["md5_verified"] is True
    assert result["mac"] == "24:0a:c4:12:34:56"
    assert "erase_flash" not in esp.names() and result["first_install"] is False
    assert esp.flash[-1] == 0xA5  # the node's filesystem area was left alone
    assert any("--erase" in line for line in lines)
    assert esp.names()[-1] == "hard_reset"
    assert esp.names().index("run_stub") < esp.names().index("flash_defl_begin")
    assert not esp._port.is_open


def test_erase_only_when_asked_and_before_writing(images):
    esp = kit.fake_loader_class("esp32")(PORT)
    with fake_chips(esp):
        result, _ = flash("esp32-devkitc", images["esp32"], erase=True)
    names = esp.names()
    assert result["erased"] is True
    assert names.count("erase_flash") == 1
    assert names.index("erase_flash") < names.index("flash_defl_begin")
    assert esp.flash[0] == 0xFF and esp.flash[-1] == 0xFF  # outside the image: erased


@pytest.mark.parametrize("contents", ["foreign", "blank"])
def test_first_install_erases_without_being_asked(images, contents):
    esp = kit.fake_loader_class("esp32c3")(PORT, contents=contents)
    if contents == "blank":
        esp.flash[:] = b"\xff" * len(esp.flash)
    with fake_chips(esp):
        result, lines = flash("xiao-esp32c3", images["esp32c3"])
    names = esp.names()
    assert result["first_install"] is True and result["erased"] is True
    assert names.index("read_flash") < names.index("erase_flash") < names.index("flash_defl_begin")
    assert any("first install" in line for line in lines)


def test_partition_table_detection():
    from host_tools.flash.esp_image import holds_micropython, partitions
    assert holds_micropython(kit.partition_table())
    arduino = [(1, 0x02, 0x9000, 0x5000, "nvs"), (0, 0x10, 0x10000, 0x140000, "app0"),
               (1, 0x82, 0x290000, 0x160000, "spiffs")]
    assert not holds_micropython(kit.partition_table(arduino))
    assert not holds_micropython(b"\xff" * 0xC00)
    assert [p[4] for p in partitions(kit.partition_table())] == ["nvs", "phy_init", "factory",
                                                                  "vfs"]


def test_high_baud_is_used_when_it_works(images):
    esp = kit.fake_loader_class("esp32c3")(PORT, max_baud=921600)
    with fake_chips(esp):
        result, _ = flash("esp32-c3-devkitm", images["esp32c3"], baud=921600)
    assert result["baud"] == 921600
    assert ("change_baud", 921600) in esp.calls


def test_baud_falls_back_to_115200_when_the_link_fails(images):
    cls = kit.fake_loader_class("esp32s3")
    first, second = cls(PORT, max_baud=230400), cls(PORT, max_baud=230400)
    with fake_chips(first, second) as detect:
        result, lines = flash("esp32-s3-devkitc", images["esp32s3"], baud=921600)
    assert result["baud"] == 115200
    assert detect.call_count == 2
    assert [c.args[1] for c in detect.call_args_list] == [115200, 115200]
    assert not first._port.is_open and "flash_defl_begin" not in first.names()
    assert "change_baud" not in second.names() and "flash_defl_begin" in second.names()
    assert any("921600" in line and "115200" in line for line in lines)


def test_chip_that_does_not_match_the_board_is_refused(images):
    esp = kit.fake_loader_class("esp32c3")(PORT)
    with fake_chips(esp), pytest.raises(UserError) as e:
        flash("esp32-devkitc", images["esp32"])
    assert "ESP32-C3" in e.value.message and "esp32-devkitc" in e.value.message
    assert "--board" in e.value.hint
    assert "run_stub" not in esp.names() and not esp._port.is_open


def test_board_dict_with_a_wrong_offset_is_refused(images):
    board = dict(boards.load_board("esp32-devkitc"), flash_offset=0x0)
    with fake_chips() as detect, pytest.raises(UserError) as e:
        flasher.flash_board(PORT, board, str(images["esp32"]), progress=False, log=print)
    assert "0x1000" in e.value.message and detect.call_count == 0


def test_write_that_does_not_verify_is_reported(images):
    class Corrupting(kit.fake_loader_class("esp32")):
        def flash_md5sum(self, addr, size):
            self.flash[addr + 100] ^= 0xFF  # a flipped bit in the flash chip
            return super().flash_md5sum(addr, size)

    with fake_chips(Corrupting(PORT)), pytest.raises(UserError) as e:
        flash("esp32-devkitc", images["esp32"])
    assert "did not verify" in e.value.message and "--erase" in e.value.hint


def test_own_read_back_catches_what_esptool_missed(images):
    class FadingFlash(kit.fake_loader_class("esp32")):
        def flash_md5sum(self, addr, size):
            if self.names().count("flash_md5sum") == 1:  # after esptool's own check passed
                self.flash[addr + 10] ^= 0x01
            return super().flash_md5sum(addr, size)

    esp = FadingFlash(PORT)
    with fake_chips(esp), pytest.raises(UserError) as e:
        flash("esp32-devkitc", images["esp32"])
    assert "does not read back as written" in e.value.message
    assert esp.names().count("flash_md5sum") == 2 and "hard_reset" not in esp.names()


@pytest.mark.parametrize("content, words", [
    (None, "does not exist"),
    (b"\xe9" * 100, "too small"),
    (b"<!DOCTYPE html>" + b" " * 40000, "web page"),
    (b"\x7fELF" + b"\x00" * 40000, "ELF"),
    (b"\x00" * 40000, "not an ESP firmware image"),
])
def test_bad_firmware_file_is_refused_before_the_port_is_touched(tmp_path, content, words):
    path = tmp_path / "fw.bin"
    if content is not None:
        path.write_bytes(content)
    with fake_chips() as detect, pytest.raises(UserError) as e:
        flash("esp32-devkitc", path)
    assert words in e.value.message
    assert detect.call_count == 0


def test_firmware_for_another_chip_is_refused(images):
    with fake_chips() as detect, pytest.raises(UserError) as e:
        flash("esp32-devkitc", images["esp32c3"])
    assert "ESP32-C3" in e.value.message and "ESP32_GENERIC" in e.value.hint
    assert detect.call_count == 0


def test_damaged_image_is_refused(images, tmp_path):
    data = bytearray(images["esp32"].read_bytes())
    data[0x40] ^= 0x01  # inside the first segment: the stored checksum no longer matches
    path = tmp_path / "damaged.bin"
    path.write_bytes(bytes(data))
    with fake_chips() as detect, pytest.raises(UserError) as e:
        flash("esp32-devkitc", path)
    assert "damaged" in e.value.message and detect.call_count == 0


def test_no_answer_from_the_bootloader_gets_the_boot_button_hint(images):
    def silent(port, baud, *a, **k):
        raise FatalError("Failed to connect to ESP32: No serial data received.\n"
                         "For troubleshooting steps visit: https://docs.espressif.com")

    with mock.patch.object(cmds, "detect_chip", side_effect=silent), \
            pytest.raises(UserError) as e:
        flash("esp32-devkitc", images["esp32"])
    assert "BOOT" in e.value.hint and "EN" in e.value.hint


def test_missing_port_through_real_esptool(images):
    # No mock at all: esptool really tries to open the port and fails.
    port = "/dev/ttyLATERNE-missing"
    with pytest.raises(UserError) as e:
        flasher.flash_board(port, boards.load_board("esp32-devkitc"), str(images["esp32"]),
                            progress=False,
                            log=lambda s: None)
    assert e.value.message == "no serial port %s" % port


def test_esptool_logger_is_restored_and_progress_goes_to_tqdm(capsys):
    before = EspLog.instance
    lines = []
    with esptool_output(lines.append, progress=True):
        cmds.log.print("Hash of data verified.")
        with cmds.log.progress(total=4096, unit="B") as bar:
            bar.update(2048)
            bar.update(2048)
    assert EspLog.instance is before
    assert lines == ["Hash of data verified."]
    assert "writing" in capsys.readouterr().err


def test_real_image_info_and_merge_bin_layout(images):
    data = images["esp32"].read_bytes()
    boot = BOOT_OFFSET["esp32"]
    assert data[0x8000 - boot:0x8002 - boot] == b"\xaa\x50"  # partition table at 0x8000
    assert data[0x10000 - boot] == 0xE9  # app image at 0x10000
    lines = []
    with esptool_output(lines.append, progress=False):
        cmds.image_info(data[:0x8000 - boot])
    text = "\n".join(lines)
    assert "Chip ID: 0 (ESP32)" in text
    assert "Checksum: " in text and "(valid)" in text
    assert "0x40080000" in text  # our tiny ELF's entry point survived elf2image


def test_fake_loader_only_replaces_methods_the_real_loader_has():
    fake = kit.fake_loader_class("esp32")
    own = [n for n, v in vars(fake).items() if inspect.isfunction(v) and not n.startswith("_")]
    assert own, "the fake must override something"
    missing = [n for n in own if n != "names" and not hasattr(ESPLoader, n)]
    assert missing == []


def test_cli_unknown_board_and_missing_firmware(tmp_path, capsys):
    assert main(["flash", "--port", PORT, "--board", "nope", "--firmware", "x.bin"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'nope'" in err and "esp32-devkitc" in err
    missing = str(tmp_path / "none.bin")
    assert main(["flash", "--port", PORT, "--board", "esp32-devkitc", "--firmware", missing]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_cli_flash_passes_with_a_progress_bar(images, capsys):
    esp = kit.fake_loader_class("esp32")(PORT)
    with fake_chips(esp):
        code = main(["flash", "--port", PORT, "--board", "lolin-d1-mini32",
                     "--firmware", str(images["esp32"]), "--baud", "921600"])
    out, err = capsys.readouterr()
    assert code == 0
    assert out.strip().splitlines()[-1] == ("PASS: flashed lolin-d1-mini32 (ESP32, MAC "
                                            "24:0a:c4:12:34:56) at 0x1000, verified")
    assert "writing" in err and "100%" in err  # tqdm's bar
