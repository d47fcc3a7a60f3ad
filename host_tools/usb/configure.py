# `laterne configure`: write a node's config (built and validated by host_tools/inventory.py)
# and its board file onto the board through the firmware's own laterne.service (config.save:
# atomic, with the backup copy), read both back and compare. Secrets are never printed.
import hashlib
import json

from host_tools.errors import UserError
from host_tools.usb.device import Device, DeviceError, retry_once

WRITE = """\
from laterne import service
service.save_node('', %r, %r)
service.answer(service.read_node(''))
"""


def summary(cfg):
    from laterne import config
    return json.dumps(config.redact(cfg), indent=1, sort_keys=True)


def write_to_board(port, cfg, board, timeout=10):
    """Write config and board file, read them back; returns the list of differing keys."""
    board_text = json.dumps(board, indent=1, sort_keys=True)
    with Device(port, soft_reset=True, timeout=timeout) as dev:
        try:
            dev.exec("import laterne.service")
        except DeviceError:
            raise UserError("the firmware is not on the board (no laterne.service)",
                            "run `laterne deploy --port %s` first" % port)
        try:
            back = dev.call(WRITE % (json.dumps(cfg), board_text))
        except DeviceError as e:
            raise UserError("writing the config failed on the board: %s" % e.last_line(),
                            "is the filesystem full? `mpremote connect %s df`" % port)
        except ValueError:
            back = None
        if not isinstance(back, dict):
            raise UserError("the board answered the read-back with something unexpected")
        dev.resume()
    diff = sorted(k for k in set(cfg) | set(back["config"] or {})
                  if (back["config"] or {}).get(k) != cfg.get(k))
    if back["board"] != board:
        diff.append("board.json")
    if back["errors"]:
        diff.append("errors: " + "; ".join(back["errors"]))
    return diff


def configure(port, config, board, log=print, timeout=10):
    """Write and verify a built, validated config and the board dict on the board on `port`;
    returns dict(node_id, board, config_hash, summary)."""
    diff = retry_once(write_to_board, port, config, board, timeout=timeout)
    if diff:
        raise UserError("the config read back from the board differs: %s" % ", ".join(diff),
                        "run configure again; if it persists the board's flash may be failing")
    text = summary(config)
    log("configured %s on %s (board %s)\n%s" % (config["node_id"], port, board["name"], text))
    return {"node_id": config["node_id"], "board": board["name"], "config_hash": config_hash(text),
            "summary": text}


def config_hash(summary_text):
    """Hash of the masked config: records what was set without anything derived from secrets."""
    return hashlib.sha256(summary_text.encode()).hexdigest()
