# Power-cut proof of the spool on the real thing: MicroPython's littlefs2 (vfs.VfsLfs2) on a
# RamBlockDev that cuts the power at the k-th flash operation (torn, lost or fully applied).
# This one file is both sides: pytest (CPython) starts MicroPython on it, and under
# MicroPython it runs the scenarios in one process and prints "OK <case> <runs>".
#
# Invariants checked after every cut, remount and boot recovery:
#   - every reading whose append/extend returned is delivered, unchanged, unless it was acked
#     (ack returned) or dropped for capacity, and only the oldest are ever dropped;
#   - nothing appears that was never appended (an in-flight reading may or may not appear);
#   - seq strictly increases in peek order, and new seqs are above every seq handed out;
#   - the dropped count covers every missing reading; a later clean reboot sees the same.
import sys

MP = sys.implementation.name == "micropython"

if not MP:
    import subprocess
    from pathlib import Path

    import pytest

    from host_tools.paths import micropython_env, micropython_exe

    def _run(case, *args):
        proc = subprocess.run(
            [micropython_exe(), "-X", "heapsize=16M", str(Path(__file__)), case]
            + [str(a) for a in args],
            env=micropython_env(Path(__file__).parent.parent / "kit"), capture_output=True,
            text=True, timeout=900)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and ("OK " + case) in out, out[-4000:]
        return out

    def test_cut_at_every_flash_operation_of_a_scripted_run():
        out = _run("exhaustive")
        words = out.split("OK exhaustive ")[1].split()
        runs, ops = int(words[0]), int(words[3])
        assert ops > 60 and runs == 3 * ops  # every position in all three modes really ran

    def test_cut_at_every_flash_operation_with_the_rtc_fast_path():
        """Readings held in RTC memory across a reset (not a power-on) are never lost either,
        whichever flash operation of a flush the reset interrupts."""
        out = _run("exhaustive-rtc")
        words = out.split("OK exhaustive-rtc ")[1].split()
        runs, ops = int(words[0]), int(words[3])
        assert ops > 30 and runs == 3 * ops

    def test_random_cuts_during_long_runs():
        _run("random", 3, 900)

    def test_random_cuts_during_long_runs_more_seeds():
        _run("random", 2, 2000)

    def test_bit_flips_in_raw_flash_are_skipped_and_counted():
        _run("bitflip")

    def test_littlefs_mounts_on_both_block_devices(tmp_path):
        _run("devices", tmp_path / "flash.img")
        assert (tmp_path / "flash.img").stat().st_size == 16 * 4096


# ------------------------------------------------------------------------------------------
# MicroPython side (imported here, once: after a cut the cwd is on a dead mount, and an
# import would search it)
if MP:
    import os
    import random
    import struct

    import blockdev
    import vfs
    from laterne.spool import Spool
    from ramrtc import RamRtc

def reading(i):
    """(ts, t, p, h, flags, boot), the order laterne/reading.py defines."""
    return (1700000000 + 60 * i, 1500 + i % 997, 90000 + i, i % 10001, i & 0xFF, 5)


class Node:
    """A node's flash plus what the test knows it was promised."""

    mounts = 0

    def __init__(self, blocks=40, capacity=0, rtc=False):
        self.vfs = vfs
        self.rtc = RamRtc() if rtc else None  # kept across cuts: a reset, not a power-on
        self.bd = blockdev.RamBlockDev(4096, blocks)
        vfs.VfsLfs2.mkfs(self.bd)
        self.capacity = capacity
        self.returned = {}      # seq -> reading, for every append/extend that returned
        self.acked = 0          # highest ack that returned
        self.pending = []       # readings of the operation in flight
        self.seen_max = 0       # highest seq ever handed out or seen
        self.n = 0              # readings made so far
        self.sp = None
        self.mounted = False
        self.dropped_base = 0   # the dropped count when `returned` was last reconciled
        self.ack_try = 0        # the ack in flight

    def cut_or_raise(self, e):
        """The power cut surfaces as PowerCut, or as the I/O error of whatever the dying
        code tried next (a close in a finally clause); anything else is a real failure."""
        if self.bd.powered or not isinstance(e, (blockdev.PowerCut, OSError)):
            raise e

    def boot(self):
        if self.mounted:
            os.chdir("/")
            try:
                self.vfs.umount(self.mounted)
            except OSError:
                pass  # a mount that died with the power stays in the table: use a new name
        Node.mounts += 1
        self.mounted = "/pc%d" % Node.mounts
        self.vfs.mount(self.vfs.VfsLfs2(self.bd.session()), self.mounted)
        os.chdir(self.mounted)
        self.sp = Spool("", capacity_bytes=self.capacity, rtc=self.rtc,
                        rtc_loss_ok=self.rtc is not None, rtc_batch=7)

    def snapshot(self):
        return (bytes(self.bd.mem), self.rtc and self.rtc.mem, dict(self.returned),
                self.acked, self.seen_max, self.n, self.sp.dropped)

    def restore(self, snap):
        self.bd.mem[:] = snap[0]
        if self.rtc:
            self.rtc.mem = snap[1]
        self.returned = dict(snap[2])
        self.acked, self.seen_max, self.n, self.dropped_base = snap[3:]
        self.bd.power_restore()
        self.pending = []
        self.boot()

    # -- operations (each may raise PowerCut) ----------------------------------------------
    def append(self):
        r = reading(self.n)
        self.n += 1
        self.pending = [r]
        seq = self.sp.append(r)
        assert seq > self.seen_max, (seq, self.seen_max)
        self.returned[seq] = r
        self.seen_max = seq
        self.done()

    def done(self):
        self.pending = []
        self.ack_try = 0

    def extend(self, k):
        rs = [reading(self.n + i) for i in range(k)]
        self.n += k
        self.pending = rs
        last = self.sp.extend(rs)
        assert last - k + 1 > self.seen_max
        for i in range(k):
            self.returned[last - k + 1 + i] = rs[i]
        self.seen_max = last
        self.done()

    def upload(self, k):
        got = self.sp.peek(k)
        self.check_rows(got)
        self.reconcile(got, exact=True)
        if got:
            self.ack_try = got[-1][0]
            self.sp.ack(got[-1][0])
            self.acked = max(self.acked, got[-1][0])
            self.returned = dict((q, r) for q, r in self.returned.items() if q > self.acked)
        self.done()

    # -- checks ----------------------------------------------------------------------------
    def check_rows(self, rows):
        last = -1
        for row in rows:
            seq = row[0]
            assert seq > last, "order"
            last = seq
            assert seq > self.acked, ("acked reading came back", seq, self.acked)
            if seq in self.returned:
                assert row[1:] == self.returned[seq], ("changed", seq)
            else:
                assert row[1:] in self.pending, ("phantom reading", seq, row)
                assert seq > self.seen_max, ("in-flight reading with an old seq", seq)

    def reconcile(self, rows, exact):
        """Readings older than the oldest row that are gone must have been dropped, and the
        dropped count must say so (exactly, unless an operation was cut midway)."""
        seqs = set(r[0] for r in rows)
        oldest = rows[0][0] if rows else self.seen_max + 1
        released = [s for s in self.returned if self.acked < s <= self.ack_try and s not in seqs]
        for s in released:  # the ack in flight became durable
            del self.returned[s]
        missing = [s for s in self.returned if s > self.acked and s < oldest and s not in seqs]
        grew = self.sp.dropped - self.dropped_base
        if exact:
            assert grew == len(missing), ("dropped count", grew, len(missing))
        else:
            assert len(missing) <= grew <= len(missing) + len(self.pending), (
                "dropped count", grew, len(missing), len(self.pending))
        for s in missing:
            del self.returned[s]
        self.dropped_base = self.sp.dropped

    def check_all(self):
        rows = self.sp.peek(100000)
        self.check_rows(rows)
        self.reconcile(rows, exact=False)
        seqs = set(r[0] for r in rows)
        for s in self.returned:
            assert s <= self.acked or s in seqs, ("lost a reading that was not the oldest", s)
        assert self.sp.depth() == len(rows), (self.sp.depth(), len(rows))
        for r in rows:  # adopt what survived of the operation in flight
            if r[0] not in self.returned:
                self.returned[r[0]] = r[1:]
        if rows:
            self.seen_max = max(self.seen_max, rows[-1][0])
        self.done()
        return rows

    def recover_and_check(self):
        self.bd.power_restore()
        self.boot()
        before = self.check_all()
        # recovery must leave a working spool: a new reading gets a fresh seq and a clean
        # reboot shows exactly the same queue plus it
        self.append()
        self.boot()
        after = self.sp.peek(100000)
        assert after == before + [(self.seen_max,) + self.returned[self.seen_max]], "reboot"


def scenario(node):
    """The scripted run: appends across chunk and segment boundaries (a seal that overflows
    the two-segment capacity), uploads with acks, a bulk extend, a clean reboot."""
    for _ in range(14):
        node.append()
    node.upload(5)
    node.extend(9)
    for _ in range(6):
        node.append()
    node.upload(30)
    node.boot()
    for _ in range(3):
        node.append()
    node.upload(1000)
    node.append()


def exhaustive(rtc=False):
    node = Node(rtc=rtc)
    node.boot()
    node.extend(2 * 204 + 180)  # two sealed segments, 180 readings short of the third
    node.upload(10)
    snap = node.snapshot()
    start = node.bd.ops
    scenario(node)
    total = node.bd.ops - start
    runs = 0
    for mode in (blockdev.TORN, blockdev.LOST, blockdev.DONE):
        for k in range(1, total + 1):
            node.restore(snap)
            node.bd.cut_after(k, mode)
            try:
                scenario(node)
                raise AssertionError("no cut at %d of %d" % (k, total))
            except Exception as e:
                node.cut_or_raise(e)
            try:
                node.recover_and_check()
            except AssertionError as e:
                raise AssertionError("cut %s at op %d/%d: %s" % (mode, k, total, e))
            runs += 1
    print("OK exhaustive%s" % ("-rtc" if rtc else ""), runs, "runs over", total,
          "flash operations")


def random_runs(seeds, steps):
    for seed in range(seeds):
        random.seed(seed)
        node = Node(blocks=48)
        node.boot()
        cuts = 0
        node.bd.cut_after(random.randint(1, 80), random.choice((blockdev.TORN, blockdev.LOST)))
        for step in range(steps):
            try:
                x = random.random()
                if x < 0.75:
                    node.append()
                elif x < 0.81:
                    node.extend(random.randint(2, 40))
                elif x < 0.83:
                    node.extend(random.randint(150, 300))  # past a whole ring of chunks
                elif x < 0.95:
                    node.upload(random.randint(1, 300))
                else:
                    node.boot()
            except Exception as e:
                node.cut_or_raise(e)
                cuts += 1
                try:
                    node.recover_and_check()
                except AssertionError as e:
                    raise AssertionError("seed %d step %d: %s" % (seed, step, e))
                node.bd.cut_after(random.randint(1, 120),
                                  random.choice((blockdev.TORN, blockdev.LOST, blockdev.DONE)))
        assert cuts > steps // 60, cuts
    print("OK random", seeds, "seeds")


def find_sealed(node, seq):
    """Address of seq's record inside its sealed segment's data block (stale copies of it
    linger in littlefs metadata logs; the segment copy sits at a known block offset)."""
    needle = struct.pack("<II", seq, reading(seq - 1)[0])
    img = bytes(node.bd.mem)
    at = img.find(needle)
    while at >= 0 and at % 4096 != (seq % 204) * 20:
        at = img.find(needle, at + 1)
    assert at >= 0, seq
    return at


def bitflip():
    """Flip one bit of a sealed record in the raw flash image (littlefs does not checksum
    file data): that reading is skipped and counted, every other one is still delivered."""
    node = Node(blocks=48, capacity=262144)
    node.boot()
    node.extend(700)
    target = 300
    at = find_sealed(node, target)
    node.bd.mem[at + 9] ^= 0x04
    node.boot()
    rows = node.sp.peek(1000)
    assert [r[0] for r in rows] == [s for s in range(1, 701) if s != target]
    assert node.sp.corrupt == 1
    assert node.sp.depth() == 699
    # a truncated-looking segment: wipe the second half of one sealed block to erased state
    at = find_sealed(node, 500)
    node.bd.mem[at:at + 20 * 10] = b"\xff" * 200  # seqs 500..509 now read as holes
    node.boot()
    seqs = [r[0] for r in node.sp.peek(1000)]
    assert seqs == [s for s in range(1, 701) if s != target and not 500 <= s < 510]
    node.append()
    assert node.seen_max == 701
    print("OK bitflip")


def devices(path):
    """littlefs2 formats, writes and remounts on both devices; the file image outlives the
    process (the next _run would see it) and the device object."""
    for bd in (blockdev.RamBlockDev(4096, 16), blockdev.FileBlockDev(path, 4096, 16)):
        vfs.VfsLfs2.mkfs(bd)
        vfs.mount(vfs.VfsLfs2(bd), "/bdt")
        with open("/bdt/x", "wb") as f:
            f.write(b"hello" * 1000)
        vfs.umount("/bdt")
        vfs.mount(vfs.VfsLfs2(bd), "/bdt")
        with open("/bdt/x", "rb") as f:
            assert f.read() == b"hello" * 1000
        vfs.umount("/bdt")
        assert bd.programs >= 5000 and bd.erases >= 2 and bd.overprograms == 0
    bd.close()
    bd = blockdev.FileBlockDev(path, 4096, 16)
    vfs.mount(vfs.VfsLfs2(bd), "/bdt")
    with open("/bdt/x", "rb") as f:
        assert f.read(10) == b"hellohello"
    vfs.umount("/bdt")
    print("OK devices")


if MP and __name__ == "__main__":
    case = sys.argv[1]
    if case == "exhaustive":
        exhaustive()
    elif case == "exhaustive-rtc":
        exhaustive(rtc=True)
    elif case == "random":
        random_runs(int(sys.argv[2]), int(sys.argv[3]))
    elif case == "bitflip":
        bitflip()
    elif case == "devices":
        devices(sys.argv[2])
