# The simulated flash under the spool's proofs: counters, NOR programming, power cuts,
# sessions, the file-backed image. (littlefs2 on both devices: tests/system/test_spool_powercut.py)
import os
import sys

import blockdev
from check import raises

_MP = sys.implementation.name == "micropython"


def _tmpfile(name):
    if _MP:
        return "/tmp/laterne_bd_%s_%d.img" % (name, os.urandom(2)[0] * 256 + os.urandom(1)[0])
    import tempfile
    return os.path.join(tempfile.mkdtemp(), name + ".img")


def test_protocol_answers_geometry_and_starts_erased():
    bd = blockdev.RamBlockDev(512, 8)
    assert bd.ioctl(4, 0) == 8 and bd.ioctl(5, 0) == 512
    buf = bytearray(16)
    bd.readblocks(3, buf, 100)
    assert buf == b"\xff" * 16


def test_counters_and_nor_programming_only_clears_bits():
    bd = blockdev.RamBlockDev(512, 4)
    bd.writeblocks(1, b"\x0f\xf0", 10)
    bd.writeblocks(1, b"\xff\x3c", 10)  # over-programming cannot set bits again
    buf = bytearray(2)
    bd.readblocks(1, buf, 10)
    assert buf == b"\x0f\x30"
    assert bd.programs == 4 and bd.writes == 2 and bd.erases == 0
    assert bd.overprograms == 2
    assert bd.ioctl(6, 1) == 0
    bd.readblocks(1, buf, 10)
    assert buf == b"\xff\xff" and bd.erases == 1 and bd.ops == 3


def test_simple_interface_write_erases_whole_blocks():
    bd = blockdev.RamBlockDev(16, 4)
    bd.writeblocks(2, b"\x00" * 16, 0)
    bd.writeblocks(2, b"\xaa" * 16)  # no offset: erase then program
    buf = bytearray(16)
    bd.readblocks(2, buf)
    assert buf == b"\xaa" * 16 and bd.erases == 1


def test_cut_modes_torn_lost_done():
    for mode, expect in ((blockdev.TORN, b"\x01\x02\xff\xff"), (blockdev.LOST, b"\xff" * 4),
                         (blockdev.DONE, b"\x01\x02\x03\x04")):
        bd = blockdev.RamBlockDev(64, 2)
        bd.writeblocks(0, b"\x00", 0)
        bd.cut_after(2, mode)
        bd.writeblocks(0, b"\x00", 1)  # the 1st operation from now: applied
        raises(blockdev.PowerCut, bd.writeblocks, 1, b"\x01\x02\x03\x04", 0)
        buf = bytearray(4)
        bd.readblocks(1, buf, 0)
        assert buf == expect, (mode, buf)
        e = raises(blockdev.PowerCut, bd.writeblocks, 1, b"\x00", 8)  # refused until restore
        assert not isinstance(e, OSError)
        raises(blockdev.PowerCut, bd.ioctl, 6, 1)
        bd.power_restore()
        bd.writeblocks(1, b"\x00", 8)


def test_cut_during_erase_leaves_a_half_erased_block():
    bd = blockdev.RamBlockDev(64, 2)
    bd.writeblocks(0, b"\x00" * 64, 0)
    bd.cut_after(1, blockdev.TORN)
    raises(blockdev.PowerCut, bd.ioctl, 6, 0)
    buf = bytearray(64)
    bd.readblocks(0, buf, 0)
    assert buf[:32] == b"\xff" * 32 and buf[32:] == b"\x00" * 32


def test_session_from_before_a_power_cut_is_dead():
    bd = blockdev.RamBlockDev(64, 2)
    old = bd.session()
    bd.cut_after(1, blockdev.LOST)
    raises(blockdev.PowerCut, old.writeblocks, 0, b"\x00", 0)
    bd.power_restore()
    new = bd.session()
    assert old.writeblocks(0, b"\x00", 0) != 0  # an error code, nothing written
    assert new.writeblocks(0, b"\x11", 0) == 0
    buf = bytearray(1)
    new.readblocks(0, buf, 0)
    assert buf == b"\x11"


def test_file_blockdev_keeps_its_image():
    path = _tmpfile("keep")
    bd = blockdev.FileBlockDev(path, 256, 4)
    buf = bytearray(4)
    bd.readblocks(3, buf, 252)
    assert buf == b"\xff" * 4
    bd.writeblocks(2, b"abcd", 7)
    bd.close()
    bd = blockdev.FileBlockDev(path, 256, 4)
    bd.readblocks(2, buf, 7)
    assert buf == b"abcd"
    assert os.stat(path)[6] == 1024
    bd.close()
    os.remove(path)
