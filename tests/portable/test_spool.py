# Spool behaviour on both interpreters: on MicroPython each test gets a fresh littlefs2
# (vfs.VfsLfs2 on a RamBlockDev, as on the device), on CPython a fresh temporary directory.
import os
import sys

from check import raises
from laterne import reading as rec
from laterne.flags import IMPLAUSIBLE
from laterne.spool import Spool
from ramrtc import RamRtc

_MP = sys.implementation.name == "micropython"
_current = []


def fresh_root():
    """A new empty filesystem root (path prefix ending in '/'); drops the previous one."""
    if _MP:
        import blockdev
        import vfs
        if _current:
            vfs.umount(_current.pop())
        bd = blockdev.RamBlockDev(4096, 80)
        vfs.VfsLfs2.mkfs(bd)
        vfs.mount(vfs.VfsLfs2(bd), "/spt")
        _current.append("/spt")
        return "/spt/"
    import shutil
    import tempfile
    if _current:
        shutil.rmtree(_current.pop(), ignore_errors=True)
    d = tempfile.mkdtemp(prefix="spooltest")
    _current.append(d)
    return d + "/"


def reading(i):
    """(ts, t, p, h, flags, boot), the order laterne/reading.py defines."""
    return (1700000000 + 60 * i, -1250 + i, 95000 + i, 4000 + i % 6000, i & 0x1FF, 3)


def expect(seq, i):
    return (seq,) + reading(i)


def seg_files(root):
    return sorted(n for n in os.listdir(root + "spool") if n.startswith("s"))


def rewrite(path, fn):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    data = fn(data)
    with open(path, "wb") as f:
        f.write(data)


# -- codec ------------------------------------------------------------------------------
def test_crc16_is_ccitt_false():
    assert rec.crc16(b"123456789") == 0x29B1  # the published check value


def test_record_roundtrip_extremes():
    buf = bytearray(20)
    for r in ((0, -32768, 0, 0, 0, 0), (0xFFFFFFFF, 32767, 131071, 16383,
                                         0xFFFF & ~IMPLAUSIBLE, 65535)):
        rec.pack_into(buf, 0, 123456, r)
        assert rec.check(buf, 0) == 123456
        assert rec.unpack(buf, 0) == (123456,) + r


def test_every_single_bit_flip_is_detected():
    buf = bytearray(20)
    rec.pack_into(buf, 0, 77, reading(5))
    for bit in range(160):
        buf[bit // 8] ^= 1 << (bit % 8)
        assert rec.check(buf, 0) == -2, bit
        buf[bit // 8] ^= 1 << (bit % 8)
    assert rec.check(buf, 0) == 77


def test_erased_record_is_a_hole_not_corrupt():
    assert rec.check(b"\xff" * 20, 0) == -1
    assert rec.check(b"\x00" * 20, 0) == -2


# -- queue semantics --------------------------------------------------------------------
def test_append_peek_ack_roundtrip():
    sp = Spool(fresh_root())
    assert sp.depth() == 0 and sp.peek(10) == [] and sp.next_seq == 1
    seqs = [sp.append(reading(i)) for i in range(10)]
    assert seqs == list(range(1, 11))
    assert sp.peek(3) == [expect(1, 0), expect(2, 1), expect(3, 2)]
    assert sp.peek(3) == sp.peek(3)  # peek does not consume
    sp.ack(3)
    assert sp.depth() == 7
    assert sp.peek(100) == [expect(s, s - 1) for s in range(4, 11)]
    sp.ack(10)
    assert sp.depth() == 0 and sp.peek(5) == []


def test_peek_after_skips_a_batch_in_flight():
    sp = Spool(fresh_root())
    for i in range(10):
        sp.append(reading(i))
    assert [r[0] for r in sp.peek(3, after=2)] == [3, 4, 5]
    sp.ack(4)
    assert [r[0] for r in sp.peek(2, after=1)] == [5, 6]


def test_reopen_keeps_everything_across_chunk_and_segment_boundaries():
    root = fresh_root()
    sp = Spool(root)
    for i in range(450):  # two sealed segments, chunks and slots in use
        sp.append(reading(i))
    sp.ack(100)
    sp = Spool(root)
    got = sp.peek(1000)
    assert got == [expect(s, s - 1) for s in range(101, 451)]
    assert sp.depth() == 350 and sp.next_seq == 451 and sp.corrupt == 0
    assert len(seg_files(root)) == 2


def test_seq_never_goes_back_after_acking_everything():
    root = fresh_root()
    sp = Spool(root)
    for i in range(13):
        sp.append(reading(i))
    sp.ack(13)
    sp = Spool(root)
    assert sp.depth() == 0
    assert sp.append(reading(99)) == 14


def test_extend_matches_append():
    root = fresh_root()
    sp = Spool(root)
    sp.append(reading(0))
    assert sp.extend([reading(i) for i in range(1, 300)]) == 300
    assert sp.extend([]) == 300
    assert sp.extend([reading(300)]) == 301
    assert sp.append(reading(301)) == 302
    sp = Spool(root)
    assert sp.peek(1000) == [expect(s, s - 1) for s in range(1, 303)]
    assert sp.next_seq == 303


def test_ack_tolerates_bad_input():
    sp = Spool(fresh_root())
    for i in range(5):
        sp.append(reading(i))
    sp.ack(None)
    sp.ack("x")
    sp.ack(-7)
    assert sp.depth() == 5
    sp.ack(10 ** 6)  # beyond the newest: releases what exists, no more
    assert sp.depth() == 0
    assert sp.append(reading(5)) == 6


def test_out_of_range_values_are_clamped_and_flagged_not_refused():
    sp = Spool(fresh_root())
    sp.append((-5, 99999, 500000, -3, 0, 70000))
    sp.append((1.7e9, 20.0, 101325, 5000, 0, 1))
    a, b = sp.peek(2)
    assert a == (1, 0, 32767, 131071, 0, IMPLAUSIBLE, 70000 & 0xFFFF)
    assert b == (2, 1700000000, 20, 101325, 5000, 0, 1)


def test_malformed_reading_is_a_value_error():
    sp = Spool(fresh_root())
    raises(ValueError, sp.append, (1, 2, 3))
    raises(ValueError, sp.append, (1, 2, 3, "warm", 5, 6))
    assert sp.append(reading(0)) == 1


def test_capacity_overflow_drops_oldest_and_counts_persistently():
    root = fresh_root()
    sp = Spool(root, capacity_bytes=0)  # the minimum: two sealed segments
    assert sp.max_segments == 2
    n = 204 * 4 + 10
    for i in range(n):
        sp.append(reading(i))
    got = sp.peek(2000)
    first = got[0][0]
    assert got == [expect(s, s - 1) for s in range(first, n + 1)]
    assert sp.dropped == first - 1 > 0
    assert sp.depth() == n - sp.dropped
    sp = Spool(root, capacity_bytes=0)
    assert sp.dropped == first - 1 and sp.peek(1)[0][0] == first


def test_dropping_counts_only_unacked_readings():
    sp = Spool(fresh_root(), capacity_bytes=0)
    for i in range(300):
        sp.append(reading(i))
    sp.ack(150)
    for i in range(300, 204 * 3 + 5):
        sp.append(reading(i))
    assert sp.dropped == 203 - 150  # the first segment held seqs 1..203
    assert sp.peek(1)[0][0] == 204


def test_stats_has_the_status_fields():
    sp = Spool(fresh_root())
    sp.append(reading(0))
    st = sp.stats()
    assert st["depth"] == 1 and st["dropped"] == 0 and st["next_seq"] == 2
    assert st["corrupt"] == 0


# -- corruption -------------------------------------------------------------------------
def test_bit_flip_in_a_segment_skips_and_counts_that_record_only():
    root = fresh_root()
    sp = Spool(root)
    for i in range(300):
        sp.append(reading(i))
    seg = root + "spool/" + seg_files(root)[0]

    def flip(d):
        d[20 * 10 + 7] ^= 0x10  # record with seq 10 (the first segment starts at seq 0)
        return d
    rewrite(seg, flip)
    sp = Spool(root)
    got = sp.peek(1000)
    assert [r[0] for r in got] == [s for s in range(1, 301) if s != 10]
    assert got[9] == expect(11, 10)
    assert sp.corrupt == 1
    assert sp.depth() == 299
    sp.peek(1000)
    assert sp.corrupt == 1  # counted once, not at every peek


def test_damaged_newest_segment_is_repaired_from_the_chunk_ring_at_boot():
    """The newest group's records are still in the chunk ring right after its seal: a boot
    then rewrites the damaged segment under its own name (through a temporary file)."""
    root = fresh_root()
    sp = Spool(root)
    for i in range(407):  # seqs 1..407: the group 204..407 was just sealed
        sp.append(reading(i))
    seg = root + "spool/" + seg_files(root)[1]
    assert seg.endswith("s000000cc_204")

    def flip(d):
        d[20 * 10 + 7] ^= 0x10  # the record with seq 214
        return d
    rewrite(seg, flip)
    sp = Spool(root)
    assert sp.peek(1000) == [expect(s, s - 1) for s in range(1, 408)]
    assert sp.corrupt == 0 and sp.depth() == 407
    assert sorted(os.listdir(root + "spool")) == ["c", "r", "s00000000_203", "s000000cc_204"]


def test_truncated_segment_keeps_the_readable_part():
    root = fresh_root()
    sp = Spool(root)
    for i in range(450):
        sp.append(reading(i))
    seg = root + "spool/" + seg_files(root)[1]  # seqs 204..407
    rewrite(seg, lambda d: d[:20 * 50 + 7])
    sp = Spool(root)
    seqs = [r[0] for r in sp.peek(1000)]
    assert seqs == list(range(1, 254)) + list(range(408, 451))
    assert sp.corrupt >= 1
    assert sp.append(reading(450)) == 451


def test_garbage_in_the_folder_is_counted_and_left_alone():
    root = fresh_root()
    sp = Spool(root)
    for i in range(20):
        sp.append(reading(i))
    for name in ("junk", "s0000zz00_001", "s00000007_204"):
        with open(root + "spool/" + name, "wb") as f:
            f.write(b"\x00garbage" * 10)
    with open(root + "spool/c/1", "wb") as f:
        f.write(b"\xa5" * 120)  # the chunk of seqs 6..11
    sp = Spool(root)
    assert sp.corrupt == 3
    got = sp.peek(100)
    assert [r[0] for r in got] == [s for s in range(1, 21) if not 6 <= s <= 11]
    assert sp.corrupt == 3 + 6  # plus the chunk's six records, once peek met them
    assert "junk" in os.listdir(root + "spool")


def test_unreadable_newest_slot_never_lets_seq_be_reused():
    root = fresh_root()
    sp = Spool(root)
    for i in range(10):
        sp.append(reading(i))  # seq 10 is in slot 4 only
    rewrite(root + "spool/r/4", lambda d: d[:11])
    sp = Spool(root)
    assert sp.corrupt == 1
    assert sp.append(reading(10)) > 10
    assert [r[0] for r in sp.peek(20)][:9] == list(range(1, 10))


def test_both_state_files_corrupt_means_redelivery_not_loss():
    root = fresh_root()
    sp = Spool(root)
    for i in range(30):
        sp.append(reading(i))
    sp.ack(10)
    sp.ack(20)
    for name in ("a", "b"):
        rewrite(root + "spool/" + name, lambda d: bytearray(b"\x13" * len(d)))
    sp = Spool(root)
    got = [r[0] for r in sp.peek(100)]
    assert got[-10:] == list(range(21, 31))  # at-least-once: acked may come again
    assert sp.append(reading(30)) == 31


# -- RTC fast path ----------------------------------------------------------------------
def test_rtc_fast_path_holds_then_flushes_in_one_batch():
    root = fresh_root()
    rtc = RamRtc()
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=8)
    for i in range(5):
        assert sp.append(reading(i)) == i + 1
    assert sp.stats()["rtc_held"] == 5 and sp.depth() == 5
    assert len(rtc.read()) > 0
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=8)  # a deep-sleep wake
    assert sp.next_seq == 6 and sp.depth() == 5
    for i in range(5, 8):
        sp.append(reading(i))  # the 8th reaches the threshold: flushed to flash
    assert sp.stats()["rtc_held"] == 0
    rtc.lose()
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=8)
    assert sp.peek(20) == [expect(s, s - 1) for s in range(1, 9)]


def test_rtc_loss_loses_at_most_the_batch_and_never_reuses_seq():
    root = fresh_root()
    rtc = RamRtc()
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=8)
    for i in range(11):
        sp.append(reading(i))  # 1..8 flushed, 9..11 in RTC
    rtc.lose()  # power-on: RTC memory gone
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=8)
    assert [r[0] for r in sp.peek(20)] == list(range(1, 9))
    assert sp.append(reading(20)) > 11


def test_peek_flushes_rtc_and_rtc_without_permission_is_flushed_at_boot():
    root = fresh_root()
    rtc = RamRtc()
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=30)
    for i in range(4):
        sp.append(reading(i))
    sp = Spool(root, rtc=rtc)  # config now says: no RTC holding
    assert sp.stats()["rtc_held"] == 0
    rtc.lose()
    sp = Spool(root)  # nothing tells whether RTC readings were lost: seq may jump, not reuse
    assert sp.peek(10) == [expect(s, s - 1) for s in range(1, 5)]
    assert sp.append(reading(4)) >= 5


def test_corrupt_rtc_memory_is_counted_not_trusted():
    root = fresh_root()
    rtc = RamRtc()
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=10)
    for i in range(3):
        sp.append(reading(i))
    img = bytearray(rtc.read())
    img[4 + 20 + 5] ^= 0x01  # second record
    rtc.write(img)
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=10)
    assert sp.corrupt == 1
    assert [r[0] for r in sp.peek(10)] == [1, 3]
    rtc.write(b"\x52\x4c\x09\x00" + b"\x00" * 7)  # claims 9 records, holds none
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=10)
    assert sp.append(reading(9)) > 3
    assert [r[0] for r in sp.peek(10)][:2] == [1, 3]


def test_intact_empty_rtc_after_a_flush_leaves_no_seq_gap():
    root = fresh_root()
    rtc = RamRtc()
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=30)
    for i in range(4):
        sp.append(reading(i))
    sp.peek(10)  # an upload: flushes the RTC readings to flash
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=30)  # the next deep-sleep wake
    assert sp.append(reading(4)) == 5
    for i in range(5, 11):
        sp.append(reading(i))
    sp.flush()  # 5..11: ends on a chunk boundary, so 6..11 live in a chunk file only
    sp = Spool(root, rtc=rtc, rtc_loss_ok=True, rtc_batch=30)
    assert sp.append(reading(11)) == 12
    assert sp.peek(20) == [expect(s, s - 1) for s in range(1, 13)]
