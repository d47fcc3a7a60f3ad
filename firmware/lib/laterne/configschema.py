# The node configuration's schema, for the firmware and the host tools: validate() checks
# types, ranges and formats and fills defaults; errors are "key: reason" strings that never
# contain a secret. The keys config/set may change take their rules from config.REMOTE. On
# the node this module is loaded only to check a whole config (at boot, by laterne configure)
# and let go again: laterne/config.py's functions of the same names are the way in.
from laterne.config import check_value, copy, is_int, join, remote_rule

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
_SENSOR = (
    ("address", ("enum", None, (None, 0x76, 0x77))),
    ("model", ("enum", "bme280", ("bme280", "bmp280"))),
    ("osrs_t", remote_rule("sensor.osrs_t")),
    ("osrs_p", remote_rule("sensor.osrs_p")),
    ("osrs_h", remote_rule("sensor.osrs_h")),
    ("iir", remote_rule("sensor.iir")),
    ("temp_offset_centi", remote_rule("sensor.temp_offset_centi")),
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
    ("sample_interval_s", remote_rule("sample_interval_s")),
    ("upload_interval_s", remote_rule("upload_interval_s")),
    ("status_interval_s", remote_rule("status_interval_s")),
    ("batch_size", remote_rule("batch_size")),
    ("ntp_servers", ("list", ["pool.ntp.org"], ("hostport", None, 0, 4))),
    ("sensor", ("obj", {}, _SENSOR)),
    ("power_mode", remote_rule("power_mode")),
    ("delivery", remote_rule("delivery")),
    ("spool_bytes", ("int", 262144, (32768, 4194304))),
    ("rtc_fast_path", ("bool", False, None)),
    ("backoff_min_s", ("int", 2, (1, 3600))),
    ("backoff_max_s", ("int", 600, (1, 86400))),
    ("safe_mode", ("obj", {}, _SAFE)),
)

SECRET_KEYS = ("wifi[].password", "broker.username", "broker.password")


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
    if kind in ("int", "enum"):
        return check_value(kind, v, rule, path, errors)
    if kind == "num":
        if not (is_int(v) or isinstance(v, float)) or v != v:
            errors.append("%s: must be a number" % path)
        elif not rule[0] <= v <= rule[1]:
            errors.append("%s: outside %s..%s" % (path, rule[0], rule[1]))
        else:
            return v
    elif kind == "bool":
        if isinstance(v, bool):
            return v
        errors.append("%s: must be true or false" % path)
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


def _check_obj(v, schema, path, errors):
    if not isinstance(v, dict):
        errors.append("%s: must be an object" % (path or "config"))
        return None
    known = [k for k, _ in schema]
    for k in v:
        if k not in known:
            errors.append("%s: unknown key" % join(path, k) if isinstance(k, str)
                          else "%s: keys must be strings" % (path or "config"))
    out = {}
    for key, (kind, default, rule) in schema:
        p = join(path, key)
        if key in v:
            out[key] = _check(kind, v[key], rule, p, errors)
        elif default is REQUIRED:
            errors.append("%s: required" % p)
        elif kind == "obj":
            out[key] = _check_obj(copy(default), rule, p, errors)
        else:
            out[key] = copy(default)
    return out


def _defaults_of(schema):
    out = {}
    for key, (kind, default, rule) in schema:
        if default is REQUIRED:
            out[key] = [] if kind == "list" else (_defaults_of(rule) if kind == "obj" else None)
        elif kind == "obj":
            out[key] = _defaults_of(rule)
        else:
            out[key] = copy(default)
    return out


def defaults():
    """A config with every default filled in; required keys are None (or [] for wifi)."""
    return _defaults_of(SCHEMA)



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
    if is_int(lo) and is_int(hi) and hi < lo:
        errors.append("backoff_max_s: must be at least backoff_min_s")
    return out, errors


def redact(cfg):
    """A copy with every secret replaced by "***" (None stays None)."""
    out = copy(cfg)
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
