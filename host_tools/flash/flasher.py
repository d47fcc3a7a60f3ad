# Writes a MicroPython image to a board with esptool's public API (esptool.cmds): check the
# file, detect the chip and refuse a mismatch, run the stub, raise the baud rate (falling back
# to 115200), erase when asked or on a first install (no MicroPython partition table yet; a node
# that has one keeps its files), write at the board's offset, verify by MD5, hard reset.
import hashlib

import esptool.cmds as cmds
from esptool.loader import ESPLoader
from esptool.targets import CHIP_DEFS

from host_tools import boards
from host_tools.errors import UserError
from host_tools.flash.esp_image import (PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE,
                                        check_firmware, holds_micropython)
from host_tools.flash.esptool_log import esptool_output
from host_tools.serial_hints import chip_mismatch, explain_serial_error

ROM_BAUD = ESPLoader.ESP_ROM_BAUD  # 115200: what every ESP32 ROM bootloader starts at
FIRST_INSTALL = ("no MicroPython on this board yet (no 'vfs' partition): first install, "
                 "erasing the whole flash so nothing of the old firmware survives")
KEEPING_FILES = "not erasing: the node's files (config, spool) stay; use --erase to wipe them"


def _close(esp):
    port = getattr(esp, "_port", None)
    try:
        if port is not None and port.is_open:
            port.close()
    except Exception:
        pass


def _connect(port, board):
    """Detect the chip on `port` at the ROM baud rate, refuse a wrong chip, start the stub."""
    esp = cmds.detect_chip(port, ROM_BAUD)
    want = CHIP_DEFS[board["chip"]].CHIP_NAME
    if esp.CHIP_NAME != want:
        _close(esp)
        raise chip_mismatch(board, esp.CHIP_NAME)
    return cmds.run_stub(esp)


def _mac(esp):
    return ":".join("%02x" % b for b in esp.read_mac("BASE_MAC"))


def _speed_up(port, board, esp, baud, log):
    """Switch to `baud`; when the link does not work there, reconnect at 115200.
    Returns (loader, baud in use, MAC) - reading the MAC doubles as the link test."""
    if baud == ROM_BAUD:
        return esp, ROM_BAUD, _mac(esp)
    try:
        esp.change_baud(baud)
        return esp, baud, _mac(esp)
    except Exception as e:
        if isinstance(e, (KeyboardInterrupt, UserError)):
            raise
        log("no reliable link at %d baud (%s); reconnecting at %d" % (baud, e, ROM_BAUD))
        _close(esp)
        esp = _connect(port, board)
        return esp, ROM_BAUD, _mac(esp)


def _verify(esp, offset, firmware_path):
    """Our own read-back check, independent of esptool's messages: the flash MD5 over the
    image (padded to 4 bytes with 0xFF, as written) equals the file's."""
    with open(firmware_path, "rb") as f:
        data = f.read()
    data += b"\xff" * (-len(data) % 4)
    return esp.flash_md5sum(offset, len(data)) == hashlib.md5(data).hexdigest()


def flash_board(port, board, firmware_path, erase=False, baud=460800, progress=True, log=print):
    """Flash `firmware_path` onto the board on `port`; `board` is the board dict
    (boards.load_board). Returns a summary dict; raises UserError with a hint on every
    failure we can explain."""
    if not isinstance(baud, int) or baud < 9600:
        raise UserError("baud rate %r is not usable" % (baud,), "use 115200, 460800 or 921600")
    offset = board["flash_offset"]
    if offset != boards.bootloader_offset(board["chip"]):  # a wrong offset leaves it unbootable
        raise UserError("board '%s' says flash_offset %#x but an %s boots from %#x"
                        % (board["name"], offset, board["chip"],
                           boards.bootloader_offset(board["chip"])),
                        "fix the board file; `laterne boards --check` lists its problems")
    image = check_firmware(firmware_path, board)  # before anything touches the port
    esp = None
    with esptool_output(log, progress):
        try:
            esp = _connect(port, board)
            esp, used_baud, mac = _speed_up(port, board, esp, baud, log)
            log("%s %s on %s at %d baud" % (esp.CHIP_NAME, mac, port, used_baud))
            cmds.attach_flash(esp)
            first_install = not holds_micropython(
                esp.read_flash(PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE))
            if first_install and not erase:
                log(FIRST_INSTALL)
            if erase or first_install:
                cmds.erase_flash(esp)
            else:
                log(KEEPING_FILES)
            cmds.write_flash(esp, [(offset, str(firmware_path))])  # verifies by MD5 itself
            if not _verify(esp, offset, firmware_path):
                raise UserError("the flash of the board on %s does not read back as written"
                                % port, "run again with --erase --baud 115200; if it fails "
                                "again the board's flash or the USB cable is faulty")
            cmds.reset_chip(esp, "hard-reset")
        except UserError:
            raise
        except Exception as e:
            raise explain_serial_error(e, port)
        finally:
            if esp is not None:
                _close(esp)
    return {"port": port, "board": board["name"], "chip": esp.CHIP_NAME, "mac": mac,
            "offset": offset, "baud": used_baud, "erased": bool(erase or first_install),
            "first_install": first_install, "md5_verified": True,
            "firmware": image["path"], "firmware_size": image["size"],
            "firmware_sha256": image["sha256"]}
