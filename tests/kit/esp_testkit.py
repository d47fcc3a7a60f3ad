# Test kit for flashing: real ESP images built by esptool (elf2image of a tiny ELF we assemble
# here, then merge_bin like a MicroPython release .bin), and FakeLoader: the real esptool chip
# class with only the methods that would talk to the serial port replaced by an emulated flash.
import hashlib
import struct
import zlib

from esptool import cmds
from esptool.targets import CHIP_DEFS
from esptool.util import FatalError

# (e_machine, IRAM address, DRAM address) per chip: where a tiny app's code and data live
MEMORY = {"esp32": (0x5E, 0x40080000, 0x3FFB0000),
          "esp32s3": (0x5E, 0x40370000, 0x3FC88000),
          "esp32c3": (0xF3, 0x40380000, 0x3FC80000)}


def tiny_elf(chip, code=b"\x00" * 64, data=b"laterne test data"):
    """A minimal 32-bit little-endian ELF with .iram0.text, .dram0.data and .shstrtab."""
    machine, iram, dram = MEMORY[chip]
    data = data + b"\x00" * (-len(data) % 4)
    names = b"\x00.iram0.text\x00.dram0.data\x00.shstrtab\x00"
    n_text, n_data, n_str = 1, names.index(b".dram0.data"), names.index(b".shstrtab")
    off_text = 0x34
    off_data = off_text + len(code)
    off_str = off_data + len(data)
    off_sh = off_str + len(names) + (-(off_str + len(names)) % 4)

    def section(name, stype, flags, addr, off, size):
        return struct.pack("<10L", name, stype, flags, addr, off, size, 0, 0, 4, 0)

    shdrs = (section(0, 0, 0, 0, 0, 0)
             + section(n_text, 1, 0x6, iram, off_text, len(code))
             + section(n_data, 1, 0x3, dram, off_data, len(data))
             + section(n_str, 3, 0, 0, off_str, len(names)))
    ident = b"\x7fELF\x01\x01\x01" + b"\x00" * 9
    header = struct.pack("<16sHHLLLLLHHHHHH", ident, 2, machine, 1, iram, 0, off_sh, 0,
                         0x34, 0x20, 0, 0x28, 4, 3)
    body = header + code + data + names
    return body + b"\x00" * (off_sh - len(body)) + shdrs


def app_image(chip, **kw):
    """An ESP app image for `chip`, made by esptool's elf2image."""
    return cmds.elf2image(tiny_elf(chip, **kw), chip, output=None, flash_mode="dio",
                          flash_size="4MB", flash_freq="40m")


# (type, subtype, offset, size, label): the layout of MicroPython's generic 4 MB ESP32 builds
MICROPYTHON_LAYOUT = [(1, 0x02, 0x9000, 0x6000, "nvs"), (1, 0x01, 0xF000, 0x1000, "phy_init"),
                      (0, 0x00, 0x10000, 0x1F0000, "factory"),
                      (1, 0x81, 0x200000, 0x200000, "vfs")]


def partition_table(layout=MICROPYTHON_LAYOUT):
    """A partition table blob (32-byte entries, then the MD5 row), padded like ESP-IDF's."""
    entries = b"".join(struct.pack("<2sBBLL16sL", b"\xaa\x50", t, st, off, size,
                                   label.encode().ljust(16, b"\x00"), 0)
                       for t, st, off, size, label in layout)
    md5_row = b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(entries).digest()
    return (entries + md5_row).ljust(0xC00, b"\xff")


def micropython_like_bin(chip, path=None):
    """A merged image shaped like a MicroPython release: bootloader at the chip's boot
    offset, partition table at 0x8000, app at 0x10000, starting at the boot offset."""
    boot = CHIP_DEFS[chip].BOOTLOADER_FLASH_OFFSET
    app = app_image(chip)
    return cmds.merge_bin([(boot, app), (0x8000, partition_table()), (0x10000, app)], chip,
                          output=path, target_offset=boot)


class FakePort:
    """Stands in for the pyserial port: the loader only opens, closes and sets the rate."""

    def __init__(self, name):
        self.port = self.name = name
        self.baudrate = 115200
        self.is_open = True
        self.closed_count = 0

    def close(self):
        self.is_open = False
        self.closed_count += 1

    def isOpen(self):
        return self.is_open


def fake_loader_class(chip):
    rom = CHIP_DEFS[chip]

    class FakeLoader(rom):
        """The real `rom` chip class; only the wire-level methods are emulated."""

        def __init__(self, port, flash_size=4 << 20, mac=(0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56),
                     max_baud=921600, contents="micropython"):
            self._port = FakePort(port)
            self._trace_enabled = False
            self.secure_download_mode = False
            self.sync_stub_detected = False
            self.stub_is_disabled = False
            self.cache = {"flash_id": None, "usb_vid": None, "usb_pid": None,
                          "security_info": None}
            self.flash = bytearray(b"\xa5" * flash_size)  # old contents, not erased
            if contents == "micropython":  # installed before: its partition table is there
                self.flash[0x8000:0x8C00] = partition_table()
            self.mac = mac
            self.max_baud = max_baud
            self.calls = []
            self._write = None

        # -- the link ------------------------------------------------------------------------
        def _wire(self, name, *args):
            if not self._port.is_open:
                raise FatalError("port is closed")
            if self._port.baudrate > self.max_baud:
                raise FatalError("Timed out waiting for packet header")
            self.calls.append((name,) + args)

        def read_reg(self, addr, timeout=None):
            self._wire("read_reg", addr)
            return 0  # efuses all zero: no secure boot, no encryption, revision 0

        def get_security_info(self, cache=True):
            self._wire("get_security_info")
            return {"flags": 0, "flash_crypt_cnt": 0, "key_purposes": [0] * 7, "chip_id": None,
                    "api_version": None, "parsed_flags": {"SECURE_DOWNLOAD_ENABLE": False}}

        def run_stub(self, stub=None):
            self._wire("run_stub")
            self.IS_STUB = True
            return self

        def change_baud(self, baud):
            self._wire("change_baud", baud)
            self._port.baudrate = baud

        def read_mac(self, mac_type="BASE_MAC"):
            self._wire("read_mac", mac_type)
            return self.mac if mac_type == "BASE_MAC" else None

        def hard_reset(self, uses_usb=False):
            self._wire("hard_reset")

        # -- the flash chip ------------------------------------------------------------------
        def flash_id(self, cache=True):
            self._wire("flash_id")
            size_id = {1 << 20: 0x14, 2 << 20: 0x15, 4 << 20: 0x16, 8 << 20: 0x17,
                       16 << 20: 0x18}[len(self.flash)]
            return (size_id << 16) | 0x4000 | 0xEF  # a Winbond W25Q-series chip

        def read_spiflash_sfdp(self, addr, read_bits):
            self._wire("read_spiflash_sfdp", addr)
            return 0x50444653 if addr == 0 else 0

        def run_spiflash_command(self, *args, **kwargs):
            self._wire("spiflash_command", args[0] if args else None)
            return 0

        def flash_spi_attach(self, hspi_arg):
            self._wire("flash_spi_attach", hspi_arg)

        def flash_set_parameters(self, size):
            self._wire("flash_set_parameters", size)

        def erase_flash(self):
            self._wire("erase_flash")
            self.flash[:] = b"\xff" * len(self.flash)

        def flash_begin(self, size, offset, encrypted_write=False, logging=True):
            self._wire("flash_begin", size, offset)
            self._write = [offset, None]
            return 0

        def flash_block(self, data, seq, timeout=None, encrypted=False):
            self._wire("flash_block", seq)
            start = self._write[0] + seq * self.FLASH_WRITE_SIZE
            self.flash[start:start + len(data)] = data

        def flash_finish(self, reboot=False, timeout=None):
            self._wire("flash_finish")

        def flash_defl_begin(self, size, compsize, offset, encrypted_write=False):
            self._wire("flash_defl_begin", size, offset)
            self._write = [offset, zlib.decompressobj()]
            return 0

        def flash_defl_block(self, data, seq, timeout=None):
            self._wire("flash_defl_block", seq)
            out = self._write[1].decompress(data)
            self.flash[self._write[0]:self._write[0] + len(out)] = out
            self._write[0] += len(out)

        def flash_defl_finish(self, reboot=False, timeout=None):
            self._wire("flash_defl_finish")

        def read_flash(self, offset, length, progress_fn=None):
            self._wire("read_flash", offset, length)
            return bytes(self.flash[offset:offset + length])

        def flash_md5sum(self, addr, size):
            self._wire("flash_md5sum", addr, size)
            return hashlib.md5(bytes(self.flash[addr:addr + size])).hexdigest()

        def names(self):
            return [c[0] for c in self.calls]

    FakeLoader.__name__ = "Fake" + rom.__name__
    return FakeLoader
