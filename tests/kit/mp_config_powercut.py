# Runs on the MicroPython unix port (tests/test_config_store.py): config.save on littlefs with
# the power cut at every flash operation in turn, in each cut mode; after power returns,
# config.load must give the old or the new config, never an error or the fallback.
import json

import blockdev
import vfs

from laterne import config

BASE = {"node_id": "lamp-007", "wifi": [{"ssid": "street", "password": "wpa-secret-1"}],
        "broker": {"host": "10.0.0.2"}}


def variant(interval):
    cfg = json.loads(json.dumps(BASE))
    cfg["sample_interval_s"] = interval
    cfg["site"] = {"notes": "x" * 150}  # enough bytes to span more than one program
    return config.validate(cfg)[0]


def mount(bd):
    fs = vfs.VfsLfs2(bd.session())
    vfs.mount(fs, "/f")


def unmount():
    try:
        vfs.umount("/f")
    except Exception:
        pass  # a mount that lost power may refuse to unmount cleanly


def trial(k, mode, old, new):
    bd = blockdev.RamBlockDev(4096, 32)
    vfs.VfsLfs2.mkfs(bd)
    mount(bd)
    config.save("/f/", old)
    config.load("/f/")
    bd.cut_after(k, mode)
    try:
        config.save("/f/", new)
        finished = True
    except (blockdev.PowerCut, OSError):
        if bd.powered:
            raise  # a real filesystem error, not the cut
        finished = False  # littlefs may report the dead flash as an OSError
    cut_happened = bd._cut_in == 0
    unmount()
    bd.power_restore()
    mount(bd)
    cfg, source, errors = config.load("/f/")
    with open("/f/config.bak") as f:
        bak = config.validate(json.loads(f.read()))[0]
    unmount()
    return cut_happened, finished, cfg, source, errors, bak


def main():
    old, new = variant(60), variant(120)
    outcomes = {"old": 0, "new": 0}
    trials = 0
    for mode in (blockdev.TORN, blockdev.LOST, blockdev.DONE):
        k = 1
        while True:
            cut, finished, cfg, source, errors, bak = trial(k, mode, old, new)
            if not cut:
                break
            trials += 1
            assert source == "config", (mode, k, source, errors)
            assert cfg == old or cfg == new, (mode, k)
            assert bak == old or bak == new, (mode, k)
            outcomes["new" if cfg == new else "old"] += 1
            k += 1
    print("RESULT " + json.dumps({"trials": trials, "outcomes": outcomes}))


main()
