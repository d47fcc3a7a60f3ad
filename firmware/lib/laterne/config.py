# The node configuration: one schema for the firmware and the host tools. validate() checks
# types, ranges and formats and fills defaults; errors are "key: reason" strings that never
# contain a secret. Remote changes go through an allowlist. Storage is atomic: config.json
# is replaced by rename, and config.bak keeps the last good copy.
import json
import os

# Each field: (kind, default, rule). Kinds: "int", "num", "bool", "str", "enum", "obj" (rule
# is a nested schema), "list" (rule = (item kind, item rule, min, max)). A default of
# REQUIRED means the key must be given.
REQUIRED = "<required>"

_NET = (("ssid", ("str", REQUIRED, (1, 32))), ("password", ("secret", "", (0, 63))))
_STATIC = (("ip", ("ipv4", REQUIRED, None)), ("netmask", ("ipv4", REQUIRED, None)),
           ("gateway", ("ipv4", REQUIRED, None)), ("dns", ("ipv4", REQUIRED, None)))
_SITE = (("lamp_post", ("str?", None, (1, 64))), ("lat", ("num?", None, (-90, 90))),
         ("lon", ("num?", None, (-180, 180))), ("notes", ("str?", None, (0, 200))))
_BROKER = (
    ("host", ("host", REQUIRED, None)),
    ("port", ("int", 1883, (1, 65535))),
    ("tls", ("bool", False, None)),
    ("ca", ("pem?", None, None)),
    ("username", ("secret?", None, (0, 128))),
    ("password", ("secret?", None, (0, 128))),
    ("keepalive_s", ("int", 60, (10, 3600))),
)
_OVERSAMPLING = (0, 1, 2, 4, 8, 16)
_SENSOR = (
    ("address", ("enum", None, (None, 0x76, 0x77))),
    ("model", ("enum", "bme280", ("bme280", "bmp280"))),
    ("osrs_t", ("enum", 1, _OVERSAMPLING)),
    ("osrs_p", ("enum", 1, _OVERSAMPLING)),
    ("osrs_h", ("enum", 1, _OVERSAMPLING)),
    ("iir", ("enum", 0, (0, 2, 4, 8, 16))),
    ("temp_offset_centi", ("int", 0, (-1000, 1000))),
)
_SAFE = (("crashes", ("int", 3, (2, 50))), ("window_s", ("int", 600, (60, 86400))),
         ("safe_s", ("int", 3600, (60, 604800))))

SCHEMA = (
    ("node_id", ("node_id", REQUIRED, None)),
    ("board", ("str?", None, (1, 64))),
    ("site", ("obj?", None, _SITE)),
    ("wifi", ("list", REQUIRED, ("obj", _NET, 1, 4))),
    ("static_ip", ("obj?", None, _STATIC)),
    ("broker", ("obj", REQUIRED, _BROKER)),
    ("topic_prefix", ("prefix", "laterne", None)),
    ("sample_interval_s", ("int", 60, (10, 3600))),
    ("upload_interval_s", ("int", 300, (10, 86400))),
    ("status_interval_s", ("int", 900, (60, 86400))),
    ("batch_size", ("int", 50, (1, 200))),
    ("ntp_servers", ("list", ["pool.ntp.org"], ("hostport", None, 0, 4))),
    ("sensor", ("obj", {}, _SENSOR)),
    ("power_mode", ("enum", "always_on", ("always_on", "deep_sleep"))),
    ("delivery", ("enum", "broker", ("broker", "stored"))),
    ("spool_bytes", ("int", 262144, (32768, 4194304))),
    ("rtc_fast_path", ("bool", False, None)),
    ("backoff_min_s", ("int", 2, (1, 3600))),
    ("backoff_max_s", ("int", 600, (1, 86400))),
    ("safe_mode", ("obj", {}, _SAFE)),
)

SECRET_KEYS = ("wifi[].password", "broker.username", "broker.password")
REMOTE_KEYS = ("sample_interval_s", "upload_interval_s", "status_interval_s", "batch_size",
               "sensor.temp_offset_centi", "sensor.osrs_t", "sensor.osrs_p", "sensor.osrs_h",
               "sensor.iir", "power_mode", "delivery")
MAX_BYTES = 8192  # a config file larger than this is refused unread


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _hostname_ok(s):
    if not 1 <= len(s) <= 253:
        return False
    for label in s.split("."):
        if not 1 <= len(label) <= 63 or label[0] == "-" or label[-1] == "-":
            return False
        for c in label:
            if not (c.isalpha() or c.isdigit() or c == "-") or ord(c) > 127:
                return False
    return True


def _ipv4_ok(s):
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p or len(p) > 3 or not p.isdigit() or int(p) > 255 or (len(p) > 1 and p[0] == "0"):
            return False
    return True


def _node_id_ok(s):
    if not 1 <= len(s) <= 32:
        return False
    for i, c in enumerate(s):
        if not (("a" <= c <= "z") or ("0" <= c <= "9") or (c == "-" and i > 0)):
            return False
    return True


def _prefix_ok(s):
    if not 1 <= len(s) <= 64 or s[0] == "/" or s[-1] == "/" or "//" in s:
        return False
    for c in s:
        if c in "+#\x00" or ord(c) < 32:
            return False
    return True


def _check(kind, v, rule, path, errors):
    """Validate one value; return the normalized value (or None after recording an error)."""
    if kind[-1] == "?":
        if v is None:
            return None
        kind = kind[:-1]
    if kind == "int":
        if not _is_int(v):
            errors.append("%s: must be an integer" % path)
        elif not rule[0] <= v <= rule[1]:
            errors.append("%s: %d is outside %d..%d" % (path, v, rule[0], rule[1]))
        else:
            return v
    elif kind == "num":
        if not (_is_int(v) or isinstance(v, float)) or v != v:
            errors.append("%s: must be a number" % path)
        elif not rule[0] <= v <= rule[1]:
            errors.append("%s: outside %s..%s" % (path, rule[0], rule[1]))
        else:
            return v
    elif kind == "bool":
        if isinstance(v, bool):
            return v
        errors.append("%s: must be true or false" % path)
    elif kind == "enum":
        for ok in rule:
            if v == ok and type(v) is type(ok):  # True is not 1
                return v
        errors.append("%s: must be one of %s" % (path, ", ".join(
            "null" if o is None else json.dumps(o) for o in rule)))
    elif kind in ("str", "secret"):
        if not isinstance(v, str):
            errors.append("%s: must be a string" % path)
        elif not rule[0] <= len(v) <= rule[1]:
            # never echo the value: it may be a secret
            errors.append("%s: length must be %d..%d characters" % (path, rule[0], rule[1]))
        elif kind == "secret" and path.startswith("wifi") and 0 < len(v) < 8:
            errors.append("%s: a WPA password has 8..63 characters (empty: open network)" % path)
        else:
            return v
    elif kind == "node_id":
        if isinstance(v, str) and _node_id_ok(v):
            return v
        errors.append("%s: must match [a-z0-9][a-z0-9-]{0,31}" % path)
    elif kind == "host":
        if isinstance(v, str) and (_ipv4_ok(v) or _hostname_ok(v)):
            return v
        errors.append("%s: must be a host name or IPv4 address" % path)
    elif kind == "ipv4":
        if isinstance(v, str) and _ipv4_ok(v):
            return v
        errors.append("%s: must be an IPv4 address like 192.168.1.20" % path)
    elif kind == "hostport":
        if isinstance(v, str):
            i = v.find(":")
            host, port = (v, None) if i < 0 else (v[:i], v[i + 1:])
            if (_ipv4_ok(host) or _hostname_ok(host)) and (port is None or (
                    port.isdigit() and port[0] != "0" and int(port) < 65536)):
                return v
        errors.append("%s: must be HOST or HOST:PORT" % path)
    elif kind == "prefix":
        if isinstance(v, str) and _prefix_ok(v):
            return v
        errors.append("%s: must be 1..64 characters without +, #, control characters, "
                      "leading, trailing or double /" % path)
    elif kind == "pem":
        if isinstance(v, str) and 0 < len(v) <= 4096 and "-----BEGIN CERTIFICATE-----" in v \
                and "-----END CERTIFICATE-----" in v:
            return v
        errors.append("%s: must be PEM text with a CERTIFICATE (at most 4096 characters)" % path)
    elif kind == "obj":
        return _check_obj(v, rule, path, errors)
    elif kind == "list":
        ikind, irule, lo, hi = rule
        if not isinstance(v, list):
            errors.append("%s: must be a list" % path)
        elif not lo <= len(v) <= hi:
            errors.append("%s: must have %d..%d entries" % (path, lo, hi))
        else:
            out = []
            n = len(errors)
            for i, item in enumerate(v):
                out.append(_check(ikind, item, irule, "%s[%d]" % (path, i), errors))
            if len(errors) == n:
                return out
    return None


def _copy(v):
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_copy(x) for x in v]
    return v


def _check_obj(v, schema, path, errors):
    if not isinstance(v, dict):
        errors.append("%s: must be an object" % (path or "config"))
        return None
    known = [k for k, _ in schema]
    for k in v:
        if k not in known:
            errors.append("%s: unknown key" % _join(path, k) if isinstance(k, str)
                          else "%s: keys must be strings" % (path or "config"))
    out = {}
    for key, (kind, default, rule) in schema:
        p = _join(path, key)
        if key in v:
            out[key] = _check(kind, v[key], rule, p, errors)
        elif default is REQUIRED:
            errors.append("%s: required" % p)
        elif kind == "obj":
            out[key] = _check_obj(_copy(default), rule, p, errors)
        else:
            out[key] = _copy(default)
    return out


def _join(path, key):
    return "%s.%s" % (path, key) if path else key


def _defaults_of(schema):
    out = {}
    for key, (kind, default, rule) in schema:
        if default is REQUIRED:
            out[key] = [] if kind == "list" else (_defaults_of(rule) if kind == "obj" else None)
        elif kind == "obj":
            out[key] = _defaults_of(rule)
        else:
            out[key] = _copy(default)
    return out


def defaults():
    """A config with every default filled in; required keys are None (or [] for wifi)."""
    return _defaults_of(SCHEMA)


DEFAULTS = defaults()


def validate(cfg):
    """(normalized config with defaults filled in, []) or (partial config, ["key: reason"])."""
    errors = []
    out = _check_obj(cfg, SCHEMA, "", errors)
    if out is None:
        return None, errors
    b = out.get("broker")
    if isinstance(b, dict):
        if b.get("tls") and b.get("ca") is None and "broker.ca" not in "".join(errors):
            errors.append("broker.ca: required when broker.tls is true")
        if b.get("password") is not None and b.get("username") is None and \
                "broker.username" not in "".join(errors):
            errors.append("broker.password: needs broker.username (MQTT 3.1.1)")
    lo, hi = out.get("backoff_min_s"), out.get("backoff_max_s")
    if _is_int(lo) and _is_int(hi) and hi < lo:
        errors.append("backoff_max_s: must be at least backoff_min_s")
    return out, errors


def redact(cfg):
    """A copy with every secret replaced by "***" (None stays None)."""
    out = _copy(cfg)
    if not isinstance(out, dict):
        return out
    for net in out.get("wifi") or ():
        if isinstance(net, dict) and net.get("password") not in (None, ""):
            net["password"] = "***"
    b = out.get("broker")
    if isinstance(b, dict):
        for k in ("username", "password"):
            if b.get(k) is not None:
                b[k] = "***"
    return out


def _flatten(patch, prefix, out, errors):
    for k, v in patch.items():
        if not isinstance(k, str):
            errors.append("%s: keys must be strings" % (prefix or "set"))
            continue
        key = _join(prefix, k)
        if isinstance(v, dict) and any(r.startswith(key + ".") for r in REMOTE_KEYS):
            _flatten(v, key, out, errors)
        else:
            out.append((key, v))


def apply_remote(cfg, patch):
    """(new config, []) for an allowlisted, valid patch; else (cfg unchanged, reasons).
    patch keys are nested ({"sensor": {"iir": 4}}) or dotted ({"sensor.iir": 4})."""
    errors = []
    if not isinstance(patch, dict) or not patch:
        return cfg, ["set: must be a non-empty object"]
    items = []
    _flatten(patch, "", items, errors)
    for key, _ in items:
        if key not in REMOTE_KEYS:
            errors.append("%s: not remotely settable" % key)
    if errors:
        return cfg, errors
    new = _copy(cfg)
    for key, v in items:
        i = key.find(".")
        if i < 0:
            new[key] = v
        else:
            new[key[:i]][key[i + 1:]] = v
    new, errors = validate(new)
    if errors:
        return cfg, errors
    return new, []


# -- storage -------------------------------------------------------------------------------
def _read_text(path):
    """The file's text, None when missing; ValueError when too large to be a config."""
    try:
        size = os.stat(path)[6]
    except OSError:
        return None
    if size > MAX_BYTES:
        raise ValueError("larger than %d bytes" % MAX_BYTES)
    with open(path) as f:
        return f.read()


def _read_valid(path):
    try:
        text = _read_text(path)
    except ValueError as e:
        return None, None, str(e)
    except (OSError, UnicodeError):
        return None, None, "unreadable"
    if text is None:
        return None, None, "missing"
    try:
        doc = json.loads(text)
    except ValueError:
        return None, text, "not valid JSON"
    cfg, errors = validate(doc)
    if errors:
        return None, text, "invalid: " + "; ".join(errors)
    return cfg, text, None


def _write_atomic(path, text):
    tmp = path[:-5] + ".new" if path.endswith(".json") else path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        if hasattr(os, "fsync"):  # CPython on a host disk; littlefs syncs on close
            os.fsync(f.fileno())
    os.rename(tmp, path)


def load(root):
    """(cfg, source, errors): source "config", "backup" (config.json unusable, the last good
    copy used) or None (nothing usable; cfg is None). A good config.json refreshes config.bak."""
    cfg, text, why = _read_valid(root + "config.json")
    if cfg is not None:
        try:
            same = _read_text(root + "config.bak") == text
        except (OSError, ValueError, UnicodeError):
            same = False
        if not same:
            try:
                _write_atomic(root + "config.bak", text)
            except OSError:
                pass  # the node runs on; the backup is refreshed on a later boot
        return cfg, "config", []
    errors = ["config.json: " + why]
    cfg, _, why_bak = _read_valid(root + "config.bak")
    if cfg is not None:
        return cfg, "backup", errors
    errors.append("config.bak: " + why_bak)
    return None, None, errors


def save(root, cfg):
    """Validate and store cfg atomically: config.new is written and renamed over config.json,
    then config.bak is refreshed the same way. A power cut at any point leaves the old or the
    new config in config.json and a complete copy in config.bak."""
    cfg, errors = validate(cfg)
    if errors:
        raise ValueError("; ".join(errors))
    text = json.dumps(cfg)
    _write_atomic(root + "config.json", text)
    _write_atomic(root + "config.bak", text)
    return cfg
