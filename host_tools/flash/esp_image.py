# Checks a firmware file before any port is touched: it exists, is readable, is big enough,
# is an ESP image (magic 0xE9, parsed by esptool's image classes, checksum right) and is built
# for the board's chip. Returns its size and hashes for the provisioning log.
import hashlib
import struct

from host_tools.errors import UserError
from host_tools.serial_hints import missing_firmware

ESP_IMAGE_MAGIC = 0xE9
MIN_SIZE = 32 * 1024  # a MicroPython image is 1.5-2 MB, a bootloader alone ~25 KB
OTHER_FORMATS = [(b"\x7fELF", "an ELF file (pass the .bin, not the .elf)"),
                 (b"UF2\n", "a UF2 file (for drag-and-drop boards, not esptool)"),
                 (b"<", "a web page (the download saved HTML instead of the .bin)"),
                 (b":", "an Intel HEX file (pass the .bin)"),
                 (b"PK\x03\x04", "a zip archive (unpack it first)")]


def chip_of_image_id(image_chip_id):
    from esptool.targets import ROM_LIST
    for rom in ROM_LIST:
        if getattr(rom, "IMAGE_CHIP_ID", None) == image_chip_id and rom.CHIP_NAME != "ESP8266":
            return rom.CHIP_NAME
    return None


def read_firmware(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise missing_firmware(path)
    except IsADirectoryError:
        raise missing_firmware(path, "is a folder, not a .bin file")
    except OSError as e:
        raise missing_firmware(path, "cannot be read (%s)" % (e.strerror or e))


def check_firmware(path, board):
    """Validate `path` for `board`; UserError on any problem, else a summary dict."""
    data = read_firmware(path)
    if len(data) < MIN_SIZE:
        raise UserError("firmware file %s is only %d bytes: too small for a MicroPython image"
                        % (path, len(data)),
                        "the download was probably cut short: download it again")
    if data[0] != ESP_IMAGE_MAGIC:
        what = next((d for magic, d in OTHER_FORMATS if data.startswith(magic)),
                    "not an ESP firmware image (first byte %#04x, expected 0xe9)" % data[0])
        raise UserError("firmware file %s is %s" % (path, what),
                        "use the .bin for %s from micropython.org/download"
                        % board["micropython_build"])
    from esptool.bin_image import LoadFirmwareImage
    from esptool.targets import CHIP_DEFS
    want = CHIP_DEFS[board["chip"]]
    image_chip = struct.unpack_from("<H", data, 12)[0]
    if image_chip != want.IMAGE_CHIP_ID:
        found = chip_of_image_id(image_chip) or "chip id %d" % image_chip
        raise UserError("firmware file %s is built for %s but board '%s' is an %s"
                        % (path, found, board["name"], want.CHIP_NAME),
                        "use the %s build (micropython.org/download/%s)"
                        % (board["micropython_build"], board["micropython_build"]))
    try:
        image = LoadFirmwareImage(board["chip"], data)
        bad_sum = image.checksum != image.calculate_checksum()
    except Exception as e:  # esptool raises FatalError, struct.error or RuntimeError here
        raise UserError("firmware file %s is damaged: %s" % (path, e),
                        "download the image again")
    if bad_sum:
        raise UserError("firmware file %s is damaged: image checksum does not match" % path,
                        "download the image again")
    return {"path": str(path), "size": len(data), "chip": want.CHIP_NAME,
            "sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}


PARTITION_TABLE_OFFSET = 0x8000  # the same on every ESP32 family chip (ESP-IDF default)
PARTITION_TABLE_SIZE = 0xC00


def partitions(blob):
    """[(type, subtype, offset, size, label)] from a raw ESP-IDF partition table (32-byte
    entries starting with 0xAA 0x50; the table ends at the first other entry)."""
    out = []
    for i in range(0, len(blob) - 31, 32):
        entry = blob[i:i + 32]
        if entry[:2] != b"\xaa\x50":
            break
        ptype, subtype, offset, size = struct.unpack_from("<BBLL", entry, 2)
        label = entry[12:28].split(b"\x00")[0].decode("ascii", "replace")
        out.append((ptype, subtype, offset, size, label))
    return out


def holds_micropython(table_blob):
    """True when the partition table has MicroPython's filesystem partition ("vfs", data)."""
    return any(ptype == 1 and label == "vfs" for ptype, _, _, _, label in partitions(table_blob))
