# Spool flash cost, capacity and recovery time, measured on the MicroPython unix port with
# littlefs2 (vfs.VfsLfs2, 4 KiB blocks) on the counting RamBlockDev, next to the naive
# "append 20 bytes to one file and sync" layout measured the same way in the same run.
# CPython side: measure() runs this very file under MicroPython, which prints the figures.
import sys

N_READINGS = 1224      # 6 sealed segments' worth, steady state
ACK_EVERY = 60         # the node uploads (and acks) a batch every hour at 1 reading/minute
READING = (1700000000, 2150, 101325, 5012, 0, 7)  # (ts, t, p, h, flags, boot)


def _mount(blockdev, vfs, os, blocks):
    bd = blockdev.RamBlockDev(4096, blocks)
    vfs.VfsLfs2.mkfs(bd)
    vfs.mount(vfs.VfsLfs2(bd), "/b")
    os.chdir("/b")
    return bd


def _unmount(vfs, os):
    os.chdir("/")
    vfs.umount("/b")


def _mp_main():
    import json
    import os
    import time
    import vfs

    import blockdev
    from laterne.spool import Spool

    out = {}
    # steady-state cost per durable reading
    bd = _mount(blockdev, vfs, os, 256)
    sp = Spool("")
    sp.extend([READING] * 300)  # not empty, not aligned
    sp.ack(sp.next_seq - 1)
    p0, e0 = bd.programs, bd.erases
    t0 = time.ticks_us()
    for i in range(N_READINGS):
        sp.append(READING)
        if i % ACK_EVERY == ACK_EVERY - 1:
            sp.ack(sp.peek(ACK_EVERY)[-1][0])
    dt = time.ticks_diff(time.ticks_us(), t0)
    out["spool_prog_bytes_per_reading"] = (bd.programs - p0) / N_READINGS
    out["spool_erases_per_reading"] = (bd.erases - e0) / N_READINGS
    out["spool_append_ms"] = dt / 1000 / N_READINGS
    _unmount(vfs, os)

    # naive: one file, append one record and sync each time
    bd = _mount(blockdev, vfs, os, 256)
    rec = bytes(20)
    with open("naive", "wb") as f:
        f.write(rec * 300)
    p0, e0 = bd.programs, bd.erases
    for i in range(N_READINGS):
        with open("naive", "ab") as f:
            f.write(rec)
    out["naive_prog_bytes_per_reading"] = (bd.programs - p0) / N_READINGS
    out["naive_erases_per_reading"] = (bd.erases - e0) / N_READINGS
    _unmount(vfs, os)

    # the field notes' "small inline segment files": append to a file of <= 6 records
    bd = _mount(blockdev, vfs, os, 256)
    p0, e0 = bd.programs, bd.erases
    for i in range(N_READINGS):
        with open("seg%d" % (i // 6), "ab") as f:
            f.write(rec)
        if i % 6 == 5 and i >= 60:
            os.remove("seg%d" % (i // 6 - 10))
    out["inline_prog_bytes_per_reading"] = (bd.programs - p0) / N_READINGS
    out["inline_erases_per_reading"] = (bd.erases - e0) / N_READINGS
    _unmount(vfs, os)

    # the RTC fast path of deep-sleep nodes (rtc_loss_ok=True, a flush every 30 readings)
    from ramrtc import RamRtc
    bd = _mount(blockdev, vfs, os, 256)
    sp = Spool("", rtc=RamRtc(), rtc_loss_ok=True, rtc_batch=30)
    sp.extend([READING] * 300)
    p0, e0 = bd.programs, bd.erases
    for i in range(N_READINGS):
        sp.append(READING)
    out["spool_rtc_prog_bytes_per_reading"] = (bd.programs - p0) / N_READINGS
    out["spool_rtc_erases_per_reading"] = (bd.erases - e0) / N_READINGS
    _unmount(vfs, os)

    # capacity: a 256 KiB spool alone on a filesystem of 64 blocks + 2 for the root
    # directory (so it provably fits its budget); fill until the first reading is dropped
    bd = _mount(blockdev, vfs, os, 66)
    sp = Spool("", capacity_bytes=262144)
    while sp.dropped == 0:
        sp.extend([READING] * 51)
    out["spool_capacity_readings_256k"] = sp.depth()
    # recovery of the full spool
    t0 = time.ticks_us()
    sp = Spool("", capacity_bytes=262144)
    out["spool_recovery_ms_full"] = time.ticks_diff(time.ticks_us(), t0) / 1000
    got = len(sp.peek(20000))
    out["spool_full_readable"] = got
    _unmount(vfs, os)
    print("FIGURES " + json.dumps(out))


def measure():
    import json
    import subprocess
    from pathlib import Path

    from host_tools.paths import REPO, micropython_env, micropython_exe

    proc = subprocess.run([micropython_exe(), "-X", "heapsize=8M", __file__],
                          env=micropython_env(REPO / "tests" / "kit"), capture_output=True,
                          text=True, timeout=900, cwd=str(Path(__file__).parent))
    line = [x for x in proc.stdout.splitlines() if x.startswith("FIGURES ")]
    if proc.returncode or not line:
        raise RuntimeError("spool bench failed on MicroPython:\n" + proc.stdout + proc.stderr)
    fig = json.loads(line[0][8:])
    fig["spool_vs_naive_prog_ratio"] = (fig["naive_prog_bytes_per_reading"]
                                        / fig["spool_prog_bytes_per_reading"])
    fig["spool_vs_naive_erase_ratio"] = (fig["naive_erases_per_reading"]
                                         / fig["spool_erases_per_reading"])
    return fig


if __name__ == "__main__" and sys.implementation.name == "micropython":
    _mp_main()
