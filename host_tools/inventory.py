# One node spec, read once: the site defaults (JSON), the node's inventory row (CSV) and the
# secrets (environment or a private KEY=value file) become the node's config, validated with
# the firmware's own schema (laterne.config). provision, configure and sim all build it here.
import collections
import copy
import csv
import json
import os
import stat
from pathlib import Path

from host_tools.boards import load_board
from host_tools.errors import UserError

SECRET_NAMES = ("LATERNE_WIFI_SSID", "LATERNE_WIFI_PASSWORD", "LATERNE_MQTT_USERNAME",
                "LATERNE_MQTT_PASSWORD")
INVENTORY_COLUMNS = ("node_id", "lamp_post", "lat", "lon", "board", "notes")

# What the USB steps need to know about one node: its inventory row (None for a node given by
# --node-id alone), its board file as a dict and its validated config.
NodeSpec = collections.namedtuple("NodeSpec", "row board config")


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


def node_spec(inventory=None, row_id=None, node_id=None, board_name=None, site=None,
              secrets_file=None, environ=None):
    """Read everything about one node once: NodeSpec(row, board, config). The node is an
    inventory row (`inventory`, `row_id`) or just `node_id`; `board_name` overrides the row's
    board."""
    row = None
    if inventory is not None:
        if not row_id:
            raise UserError("--inventory needs --row NODE_ID")
        row = read_inventory(inventory, row_id)
        board_name = board_name or row["board"]
    if not board_name:
        raise UserError("which board? give --board or a board column in the inventory",
                        "see `laterne boards`")
    return spec_for(row, load_board(board_name), site, secrets_file, environ, node_id)


def spec_for(row, board, site=None, secrets_file=None, environ=None, node_id=None):
    """NodeSpec of an inventory row (or a bare `node_id` when row is None) on the board dict
    `board`: reads the site and the secrets, builds the config and validates it. Nothing
    touches a board here, so a refused config is refused before any step ran."""
    node_id = row["node_id"] if row is not None else node_id
    if not node_id:
        raise UserError("which node? give --node-id or --inventory with --row")
    config = validate(build_config(read_site(site), node_id, board["name"], row,
                                   read_secrets(secrets_file, environ)))
    return NodeSpec(row, board, config)
