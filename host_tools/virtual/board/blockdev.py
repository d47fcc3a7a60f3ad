# Simulated NOR flash for littlefs (vfs.VfsLfs2), on MicroPython and CPython.
# Implements MicroPython's extended block-device protocol (readblocks/writeblocks with a byte
# offset, ioctl 4/5/6 for count/size/erase), counts what littlefs costs the flash, and can cut
# the power at the k-th flash operation. Programming only clears bits, like real NOR flash.
#
#   bd = RamBlockDev(4096, 64)          # or FileBlockDev("node.img") for a persistent image
#   bd.cut_after(3, "torn")             # the 3rd program/erase from now is half applied
#   ... PowerCut is raised from inside littlefs; later writes are refused ...
#   bd.power_restore()                  # "power on": remount with a fresh session()
#
# A littlefs mount that saw a power cut is dead: its open-file finalisers may still try to
# write. Mount each power-on period through `bd.session()`; a session stops forwarding
# anything once the power it was born with is gone, so such late writes never reach the
# new boot.

TORN = "torn"   # the cut operation is partially applied (first half of its bytes)
LOST = "lost"   # the cut operation is not applied at all
DONE = "done"   # the cut operation is fully applied, but its caller never learns it

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_IOCTL_COUNT = const(4)
_IOCTL_SIZE = const(5)
_IOCTL_ERASE = const(6)
_EIO = const(-5)


class PowerCut(Exception):
    """Raised by a flash operation when the simulated power is cut (not an OSError on purpose:
    code under test must not mistake it for a recoverable filesystem error)."""


class _Flash:
    """Counters, NOR semantics and power-cut injection; storage comes from the subclass."""

    def __init__(self, block_size, block_count):
        self.block_size = block_size
        self.block_count = block_count
        self._ff = b"\xff" * block_size
        self.programs = 0      # bytes programmed
        self.erases = 0        # blocks erased
        self.writes = 0        # writeblocks calls
        self.ops = 0           # flash-modifying operations (writeblocks calls and erases)
        self.overprograms = 0  # bytes programmed over non-erased flash (a filesystem bug)
        self.powered = True
        self.power_id = 0      # changes at every power_restore()
        self._cut_in = 0
        self._cut_mode = None

    # -- fault injection --------------------------------------------------------------------
    def cut_after(self, k, mode=TORN):
        """Cut the power at the k-th flash operation from now (1 = the next one)."""
        if k < 1 or mode not in (TORN, LOST, DONE):
            raise ValueError("cut_after(k >= 1, 'torn'|'lost'|'done')")
        self._cut_in = k
        self._cut_mode = mode

    def cancel_cut(self):
        self._cut_in = 0
        self._cut_mode = None

    def power_restore(self):
        self.powered = True
        self.power_id += 1
        self.cancel_cut()

    def session(self):
        return Session(self)

    def _check(self):
        """Return the apply mode of the operation about to happen: None (normal) or a cut."""
        if not self.powered:
            raise PowerCut("flash write refused: power is off")
        self.ops += 1
        if self._cut_in:
            self._cut_in -= 1
            if self._cut_in == 0:
                return self._cut_mode
        return None

    def _cut(self):
        self.powered = False
        self._cut_mode = None
        raise PowerCut("power cut at flash operation %d" % self.ops)

    # -- block-device protocol --------------------------------------------------------------
    def readblocks(self, block, buf, offset=0):
        self._read(block * self.block_size + offset, buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:  # simple interface: whole blocks, erase implied
            for i in range(len(buf) // self.block_size):
                self._erase_block(block + i)
            offset = 0
        mode = self._check()
        self.writes += 1
        data = buf
        if mode == LOST:
            self._cut()
        if mode == TORN:
            data = memoryview(buf)[:len(buf) // 2]
        self.programs += len(data)
        self._program(block * self.block_size + offset, data)
        if mode is not None:
            self._cut()

    def ioctl(self, op, arg):
        if op == _IOCTL_COUNT:
            return self.block_count
        if op == _IOCTL_SIZE:
            return self.block_size
        if op == _IOCTL_ERASE:
            self._erase_block(arg)
            return 0
        return 0  # init, deinit, sync: nothing to do

    def _erase_block(self, block):
        mode = self._check()
        if mode == LOST:
            self._cut()
        self.erases += 1
        addr = block * self.block_size
        n = self.block_size // 2 if mode == TORN else self.block_size
        self._store(addr, memoryview(self._ff)[:n])
        if mode is not None:
            self._cut()

    def _program(self, addr, data):
        n = len(data)
        old = bytearray(n)
        self._read(addr, old)
        if old == self._ff[:n]:
            self._store(addr, data)
            return
        new = bytearray(n)
        for i in range(n):  # NOR: programming can only clear bits
            new[i] = old[i] & data[i]
            if old[i] != 0xFF:
                self.overprograms += 1
        self._store(addr, new)

    def counters(self):
        return {"programs": self.programs, "erases": self.erases, "writes": self.writes,
                "ops": self.ops}


class RamBlockDev(_Flash):
    """Flash in a bytearray (starts erased)."""

    def __init__(self, block_size=4096, block_count=64):
        _Flash.__init__(self, block_size, block_count)
        self.mem = bytearray(b"\xff" * (block_size * block_count))

    def _read(self, addr, buf):
        buf[:] = memoryview(self.mem)[addr:addr + len(buf)]  # no copy of the slice

    def _store(self, addr, data):
        self.mem[addr:addr + len(data)] = data

    def image(self):
        return bytes(self.mem)


class FileBlockDev(_Flash):
    """Flash in a host file, created erased when missing; every write is flushed so the image
    survives the process being killed."""

    def __init__(self, path, block_size=4096, block_count=64):
        _Flash.__init__(self, block_size, block_count)
        size = block_size * block_count
        try:
            f = open(path, "r+b")
        except OSError:
            f = open(path, "w+b")
        f.seek(0, 2)
        have = f.tell()
        while have < size:  # grow (or create) erased
            n = min(size - have, block_size)
            f.write(self._ff[:n])
            have += n
        f.flush()
        self._f = f

    def _read(self, addr, buf):
        self._f.seek(addr)
        got = self._f.readinto(buf)
        if got != len(buf):
            raise OSError(5, "short read from flash image")

    def _store(self, addr, data):
        self._f.seek(addr)
        self._f.write(data)
        self._f.flush()

    def close(self):
        self._f.close()


class Session:
    """The device as seen by one power-on period (one littlefs mount). Once the power it was
    born with is gone, every call fails with an I/O error code (never an exception: the calls
    come from garbage-collector finalisers of files the dead mount left open)."""

    def __init__(self, dev):
        self.dev = dev
        self._power_id = dev.power_id

    def _dead(self):
        return self.dev.power_id != self._power_id or not self.dev.powered

    def readblocks(self, block, buf, offset=0):
        if self._dead():
            return _EIO
        self.dev.readblocks(block, buf, offset)
        return 0

    def writeblocks(self, block, buf, offset=None):
        if self._dead():
            return _EIO
        self.dev.writeblocks(block, buf, offset)
        return 0

    def ioctl(self, op, arg):
        if op == _IOCTL_ERASE and self._dead():
            return _EIO
        return self.dev.ioctl(op, arg)
