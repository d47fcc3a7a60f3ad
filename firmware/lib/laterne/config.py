# The node configuration on flash: config.json replaced atomically by rename, config.bak the
# last good copy, config.ok the proof that config.json passed the schema; and remote changes
# (config/set): the allowlisted keys with the rule each must meet, a patch checked against
# those rules alone. What a valid config is as a whole lives in laterne/configschema.py
# (which takes these very rules for these keys: tests/test_config_properties.py shows both
# judge every patch alike), a module too big to keep on the node's heap: validate(),
# defaults() and redact() here load it for the call and let it go again on MicroPython (on
# CPython it stays, as imports do). The node itself lets this module go after boot and
# takes it again for a config/set (release()): its names stay interned from the boot, so
# that costs no new qstrs late in a node's life.
import hashlib
import json
import os
import sys

from laterne import VERSION

MAX_BYTES = 8192  # a config file larger than this is refused unread
_OK = "config.ok"  # sha256 of this firmware's version and the config.json text it accepted


_OVERSAMPLING = (0, 1, 2, 4, 8, 16)
# (key, (kind, default, rule)) for every key config/set may change; see configschema.SCHEMA
REMOTE = (
    ("sample_interval_s", ("int", 60, (10, 3600))),
    ("upload_interval_s", ("int", 300, (10, 86400))),
    ("status_interval_s", ("int", 900, (60, 86400))),
    ("batch_size", ("int", 50, (1, 200))),
    ("power_mode", ("enum", "always_on", ("always_on", "deep_sleep"))),
    ("delivery", ("enum", "broker", ("broker", "stored"))),
    ("sensor.osrs_t", ("enum", 1, _OVERSAMPLING)),
    ("sensor.osrs_p", ("enum", 1, _OVERSAMPLING)),
    ("sensor.osrs_h", ("enum", 1, _OVERSAMPLING)),
    ("sensor.iir", ("enum", 0, (0, 2, 4, 8, 16))),
    ("sensor.temp_offset_centi", ("int", 0, (-1000, 1000))),
)
REMOTE_KEYS = tuple(k for k, _ in REMOTE)


def remote_rule(key):
    """(kind, default, rule) of a remotely settable key; None for any other key."""
    for k, r in REMOTE:
        if k == key:
            return r
    return None


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_value(kind, v, rule, path, errors):
    """An "int" (rule: lo, hi) or "enum" (rule: the allowed values) value: the value, or
    None after recording the reason in errors."""
    if kind == "int":
        if not is_int(v):
            errors.append("%s: must be an integer" % path)
        elif not rule[0] <= v <= rule[1]:
            errors.append("%s: %d is outside %d..%d" % (path, v, rule[0], rule[1]))
        else:
            return v
        return None
    for ok in rule:
        if v == ok and type(v) is type(ok):  # True is not 1
            return v
    errors.append("%s: must be one of %s" % (path, ", ".join(
        "null" if o is None else json.dumps(o) for o in rule)))
    return None


def copy(v):
    """A deep copy of a config (dicts and lists; the rest is immutable)."""
    if isinstance(v, dict):
        return {k: copy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [copy(x) for x in v]
    return v


def join(path, key):
    return "%s.%s" % (path, key) if path else key


def _flatten(patch, prefix, out, errors):
    for k, v in patch.items():
        if not isinstance(k, str):
            errors.append("%s: keys must be strings" % (prefix or "set"))
            continue
        key = join(prefix, k)
        if isinstance(v, dict) and any(r.startswith(key + ".") for r in REMOTE_KEYS):
            _flatten(v, key, out, errors)
        else:
            out.append((key, v))


def apply_remote(cfg, patch):
    """(new config, []) for an allowlisted, valid patch to the valid cfg; else (cfg
    unchanged, reasons). patch keys are nested ({"sensor": {"iir": 4}}) or dotted
    ({"sensor.iir": 4}). Only the patched keys are checked: the rest was valid already."""
    errors = []
    if not isinstance(patch, dict) or not patch:
        return cfg, ["set: must be a non-empty object"]
    items = []
    _flatten(patch, "", items, errors)
    for key, _ in items:
        if remote_rule(key) is None:
            errors.append("%s: not remotely settable" % key)
    if errors:
        return cfg, errors
    new = copy(cfg)
    for key, v in items:
        kind, _, rule = remote_rule(key)
        v = check_value(kind, v, rule, key, errors)
        i = key.find(".")
        if i < 0:
            new[key] = v
        else:
            new[key[:i]][key[i + 1:]] = v
    if errors:
        return cfg, errors
    return new, []


def _schema(name, *args):
    """configschema.name(*args), the module loaded for this call only on MicroPython."""
    from laterne import configschema
    try:
        return getattr(configschema, name)(*args)
    finally:
        if sys.implementation.name == "micropython":  # nothing else holds it
            import laterne
            del sys.modules["laterne.configschema"]
            del laterne.configschema


def release():
    """Let this module go on MicroPython: a running node needs it only for a config/set,
    which imports it again (with it loaded for good, the node would carry 3 KB more)."""
    if sys.implementation.name == "micropython":
        import laterne
        sys.modules.pop("laterne.config", None)
        try:
            del laterne.config
        except AttributeError:
            pass


def validate(cfg):
    """(normalized config with defaults filled in, []) or (partial config, ["key: reason"])."""
    return _schema("validate", cfg)


def defaults():
    """A config with every default filled in; required keys are None (or [] for wifi)."""
    return _schema("defaults")


def redact(cfg):
    """A copy with every secret replaced by "***" (None stays None)."""
    return _schema("redact", cfg)


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


def _digest(text):
    """What config.ok holds for a config.json text that passed the schema of this firmware."""
    return hashlib.sha256((VERSION + "\n" + text).encode()).digest()


def _vouched(root, text):
    """text is the config.json that passed this firmware's schema last (config.ok says)."""
    try:
        with open(root + _OK, "rb") as f:
            return f.read() == _digest(text)
    except OSError:
        return False


def _vouch(root, text):
    """Remember that text passed the schema: the next boot then takes it without loading
    the schema (about 15 KB of heap, and room for the rest of the boot in it)."""
    try:
        with open(root + _OK, "wb") as f:
            f.write(_digest(text))
    except OSError:
        pass  # the next boot checks the file with the schema again


def _read_valid(path, root=None):
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
    if root is not None and _vouched(root, text):
        return doc, text, None
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
    copy used) or None (nothing usable; cfg is None). A good config.json refreshes config.bak.
    config.json is checked with the schema unless it is the very text that passed this
    firmware's schema last (config.ok): a boot of a configured node loads no schema."""
    cfg, text, why = _read_valid(root + "config.json", root)
    if cfg is not None:
        if _vouched(root, text):
            return cfg, "config", []
        try:
            same = _read_text(root + "config.bak") == text
        except (OSError, ValueError, UnicodeError):
            same = False
        if not same:
            try:
                _write_atomic(root + "config.bak", text)
            except OSError:
                return cfg, "config", []  # the backup (and config.ok) on a later boot
        if json.loads(text) == cfg:  # complete as written (not relying on defaults)
            _vouch(root, text)
        return cfg, "config", []
    errors = ["config.json: " + why]
    cfg, _, why_bak = _read_valid(root + "config.bak")
    if cfg is not None:
        return cfg, "backup", errors
    errors.append("config.bak: " + why_bak)
    return None, None, errors


def save(root, cfg, checked=False):
    """Validate and store cfg atomically: config.new is written and renamed over config.json,
    then config.bak is refreshed the same way. A power cut at any point leaves the old or the
    new config in config.json and a complete copy in config.bak. checked: cfg is known valid
    (what apply_remote returned), stored as it is without loading the schema."""
    if not checked:
        cfg, errors = validate(cfg)
        if errors:
            raise ValueError("; ".join(errors))
    text = json.dumps(cfg)
    _write_atomic(root + "config.json", text)
    _write_atomic(root + "config.bak", text)
    _vouch(root, text)
    return cfg
