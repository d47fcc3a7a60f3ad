# Remote changes (config/set): the allowlisted keys with the rule each must meet, and a patch
# checked against those rules alone. configschema takes these very rules for these keys, so
# the two never disagree; a config/set never loads the whole schema (tests/test_config_
# properties.py shows both judge every patch alike). Loaded for the call, like the schema.
import json

_OVERSAMPLING = (0, 1, 2, 4, 8, 16)
# (key, (kind, default, rule)) for every key config/set may change; see configschema.SCHEMA
REMOTE = (
    ("sample_interval_s", ("int", 60, (10, 3600))),
    ("upload_interval_s", ("int", 300, (10, 86400))),
    ("status_interval_s", ("int", 900, (60, 86400))),
    ("batch_size", ("int", 50, (1, 200))),
    ("power_mode", ("enum", "always_on", ("always_on", "deep_sleep"))),
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
