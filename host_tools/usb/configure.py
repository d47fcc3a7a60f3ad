# `laterne configure`: build a node's config from site defaults (JSON), one inventory row (CSV)
# and secrets (environment or a private KEY=value file), validate it with the firmware's own
# schema module (laterne.config), write it atomically on the board with laterne.config.save,
# copy the board file to /board.json, read both back and compare. Secrets are never printed.
import copy
import csv
import hashlib
import json
import os
import stat
from pathlib import Path

from host_tools.usb.device import Device, DeviceError, retry_once
from host_tools.errors import UserError

SECRET_NAMES = ("LATERNE_WIFI_SSID", "LATERNE_WIFI_PASSWORD", "LATERNE_MQTT_USERNAME",
                "LATERNE_MQTT_PASSWORD")
INVENTORY_COLUMNS = ("node_id", "lamp_post", "lat", "lon", "board", "notes")


def read_site(path):
    if path is None:
        return {}
    try:
        site = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError("cannot read the site file %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise UserError("the site file %s is not valid JSON: %s" % (path, e))
    if not isinstance(site, dict):
        raise UserError("the site file %s must hold one JSON object of shared keys" % path)
    return site


def read_inventory(path, row_id):
    """The inventory row whose node_id is `row_id` (a dict of the CSV columns)."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = [h.strip() for h in (reader.fieldnames or [])]
    except OSError as e:
        raise UserError("cannot read the inventory %s: %s" % (path, e.strerror))
    missing = [c for c in ("node_id", "lamp_post", "lat", "lon", "board") if c not in header]
    if missing:
        raise UserError("the inventory %s lacks the column(s) %s" % (path, ", ".join(missing)),
                        "the header must be: " + ",".join(INVENTORY_COLUMNS))
    rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in rows]
    found = [r for r in rows if r["node_id"] == row_id]
    if not found:
        known = ", ".join(r["node_id"] for r in rows[:10])
        raise UserError("no row %r in %s" % (row_id, path), "node ids there: %s" % known)
    if len(found) > 1:
        raise UserError("node id %r appears %d times in %s" % (row_id, len(found), path),
                        "node ids must be unique in the inventory")
    row = found[0]
    for key in ("lat", "lon"):
        try:
            row[key] = float(row[key])
        except ValueError:
            raise UserError("row %s: %s %r is not a number" % (row_id, key, row[key]))
    return row


def read_secrets(path=None, environ=None):
    """Secrets from the environment, overridden by a private KEY=value file."""
    environ = os.environ if environ is None else environ
    secrets = {k: environ[k] for k in SECRET_NAMES if environ.get(k)}
    if path is None:
        return secrets
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise UserError("cannot read the secrets file %s: %s" % (path, e.strerror))
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError("the secrets file %s can be read by other users" % path,
                        "chmod 600 %s" % path)
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            key = key.strip()
            if not sep or key not in SECRET_NAMES:
                # the line may hold a secret: name the line, never its content
                raise UserError("%s line %d is not KEY=value with a known key" % (path, n),
                                "known keys: " + ", ".join(SECRET_NAMES))
            secrets[key] = value.strip()
    return secrets


def build_config(site, node_id, board_name, row=None, secrets=None):
    """The node config before validation: site defaults + node identity + secrets."""
    cfg = copy.deepcopy(site)
    cfg["node_id"] = node_id
    cfg["board"] = board_name
    if row is not None:
        cfg["site"] = {"lamp_post": row["lamp_post"], "lat": row["lat"], "lon": row["lon"]}
        if row.get("notes"):
            cfg["site"]["notes"] = row["notes"]
    secrets = secrets or {}
    if secrets.get("LATERNE_WIFI_SSID"):
        cfg["wifi"] = [{"ssid": secrets["LATERNE_WIFI_SSID"],
                        "password": secrets.get("LATERNE_WIFI_PASSWORD", "")}]
    if secrets.get("LATERNE_MQTT_USERNAME") or secrets.get("LATERNE_MQTT_PASSWORD"):
        broker = cfg.setdefault("broker", {})
        if not isinstance(broker, dict):
            raise UserError("the site file's broker must be an object")
        broker["username"] = secrets.get("LATERNE_MQTT_USERNAME", "")
        broker["password"] = secrets.get("LATERNE_MQTT_PASSWORD", "")
    return cfg


def validate(cfg):
    """Normalized config, or UserError listing every bad key with its reason."""
    from laterne import config
    normalized, errors = config.validate(cfg)
    if errors:
        raise UserError("the config for %s is refused, nothing was written:\n  %s"
                        % (cfg.get("node_id"), "\n  ".join(str(e) for e in errors)),
                        "fix the site file, the inventory row or the secrets")
    return normalized


def summary(cfg):
    from laterne import config
    return json.dumps(config.redact(cfg), indent=1, sort_keys=True)


WRITE_CODE = """\
import json, os
from laterne import config
config.save('', json.loads(%r))
with open('board.new', 'w') as f:
    f.write(%r)
os.rename('board.new', 'board.json')
"""
READ_BACK = """\
import json
from laterne import config
_c, _s, _e = config.load('')
with open('board.json') as f:
    _b = json.load(f)
print(json.dumps({'config': _c, 'source': _s, 'errors': [str(x) for x in _e], 'board': _b}))
del _c, _s, _e, _b
"""


def write_to_board(port, cfg, board, timeout=10):
    """Write config and board file, read them back; returns the list of differing keys."""
    board_text = json.dumps(board, indent=1, sort_keys=True)
    with Device(port, soft_reset=True, timeout=timeout) as dev:
        try:
            dev.exec("import laterne.config")
        except DeviceError:
            raise UserError("the firmware is not on the board (no laterne.config)",
                            "run `laterne deploy --port %s` first" % port)
        try:
            dev.exec(WRITE_CODE % (json.dumps(cfg), board_text))
            back = json.loads(dev.exec(READ_BACK).decode().strip().splitlines()[-1])
        except DeviceError as e:
            raise UserError("writing the config failed on the board: %s" % e.last_line(),
                            "is the filesystem full? `mpremote connect %s df`" % port)
        except ValueError:
            raise UserError("the board answered the read-back with something unexpected")
        dev.resume()
    diff = sorted(k for k in set(cfg) | set(back["config"] or {})
                  if (back["config"] or {}).get(k) != cfg.get(k))
    if back["board"] != board:
        diff.append("board.json")
    if back["errors"]:
        diff.append("errors: " + "; ".join(back["errors"]))
    return diff


def configure(port, node_id=None, board_name=None, inventory=None, row_id=None, site=None,
              secrets_file=None, environ=None, log=print, timeout=10):
    """Build, validate, write and verify one node's config; returns dict(node_id, board,
    config_hash, summary). Nothing is written when validation fails."""
    from host_tools.boards import load_board
    row = None
    if inventory is not None:
        row = read_inventory(inventory, row_id)
        node_id = row["node_id"]
        board_name = board_name or row["board"]
    if not node_id:
        raise UserError("which node? give --node-id or --inventory with --row")
    if not board_name:
        raise UserError("which board? give --board or a board column in the inventory",
                        "see `laterne boards`")
    board = load_board(board_name)
    cfg = validate(build_config(read_site(site), node_id, board_name, row,
                                read_secrets(secrets_file, environ)))
    diff = retry_once(write_to_board, port, cfg, board, timeout=timeout)
    if diff:
        raise UserError("the config read back from the board differs: %s" % ", ".join(diff),
                        "run configure again; if it persists the board's flash may be failing")
    text = summary(cfg)
    log("configured %s on %s (board %s)\n%s" % (node_id, port, board_name, text))
    # hash of the masked config: records what was set without anything derived from secrets
    digest = hashlib.sha256(text.encode()).hexdigest()
    return {"node_id": node_id, "board": board_name, "config_hash": digest, "summary": text}
