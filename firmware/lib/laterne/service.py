# The board side of `laterne check` and `laterne configure`, called over the REPL: the facts
# the check judges, and configure's atomic write and read-back. Only a host tool imports it,
# for one call, and soft-resets afterwards; the running node never does (no cost to its heap).
# The hardware comes in as `hw` (laterne.hw.platform.Platform), the sensor through its driver.
import json
import os
import sys

from laterne import VERSION, config

MARK = "@@laterne@@"  # starts the one line of output the host tool reads


def answer(obj):
    print(MARK + json.dumps(obj))


def _err(e):
    return "%s: %s" % (type(e).__name__, e)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def facts(hw, root=""):
    """What `laterne check` judges, secrets masked. A broken part is reported, not raised."""
    r = {"fw": VERSION, "mac": ":".join("%02x" % b for b in hw.uid),
         "configured": _exists(root + "board.json") or _exists(root + "config.json")
         or _exists(root + "config.bak")}
    board = hw.board
    if board:
        r["board"] = board.get("name")
    else:
        r["board_err"] = "missing or not valid JSON"
    cfg = None
    try:
        cfg, r["config_source"], r["config_errors"] = config.load(root)
        if cfg is not None:
            r["config"] = config.redact(cfg)
    except Exception as e:
        r["config_err"] = _err(e)
    if board:
        _sensor(hw, cfg["sensor"] if cfg else config.defaults()["sensor"], r)
    try:
        node = sys.modules.get("laterne.node")  # imported only by a running node
        r["snapshot"] = node.snapshot() if node else None
    except Exception as e:
        r["snapshot_err"] = _err(e)
    if not r.get("snapshot") and cfg is not None:
        try:
            from laterne.spool import Spool
            spool = Spool(root, cfg["spool_bytes"], rtc=hw.rtc_spool(),
                          rtc_loss_ok=cfg["rtc_fast_path"])
            r["spool"] = {"depth": spool.depth(), "dropped": spool.dropped}
        except Exception as e:
            r["spool_err"] = _err(e)
    return r


def _sensor(hw, scfg, r):
    """The bus scan, the chip id the driver's probe found, and one reading with the driver's
    flags (its plausible ranges included)."""
    try:
        sensor = hw.sensor(scfg)
        r["scan"] = hw.i2c.scan()
    except Exception as e:
        r["i2c_err"] = _err(e)
        return
    r["address"] = sensor.address
    r["chip_id"] = sensor.chip_id  # None: nothing answered
    if sensor.chip_id is not None:
        try:
            r["reading"] = list(sensor.read())
        except Exception as e:
            r["reading_err"] = _err(e)


def save_node(root, config_text, board_text):
    """configure's write: the config through config.save (validated, atomic, with its backup
    copy), then the board file, replaced by rename like the config."""
    config.save(root, json.loads(config_text))
    with open(root + "board.new", "w") as f:
        f.write(board_text)
    os.rename(root + "board.new", root + "board.json")


def read_node(root=""):
    """configure's read-back: the config as the node will load it, and the board file."""
    cfg, source, errors = config.load(root)
    with open(root + "board.json") as f:
        board = json.load(f)
    return {"config": cfg, "source": source, "errors": errors, "board": board}
