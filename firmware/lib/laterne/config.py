# The node configuration on flash: config.json replaced atomically by rename, config.bak the
# last good copy, config.ok the proof that config.json passed the schema. What a valid config
# is lives in laterne/configschema.py and what config/set may change in configremote.py,
# modules too big to keep on the node's heap: validate(), defaults(), redact() and
# apply_remote() here load them for the call and let them go again on MicroPython (on
# CPython they stay, as imports do).
import hashlib
import json
import os
import sys

from laterne import VERSION

MAX_BYTES = 8192  # a config file larger than this is refused unread
_OK = "config.ok"  # sha256 of this firmware's version and the config.json text it accepted


def _call(module, name, *args):
    """laterne.<module>.name(*args), the modules loaded for this call only on MicroPython."""
    mod = __import__("laterne." + module, None, None, (name,))
    try:
        return getattr(mod, name)(*args)
    finally:
        if sys.implementation.name == "micropython":  # nothing else holds them
            import laterne
            for m in ("configschema", "configremote"):
                if "laterne." + m in sys.modules:
                    del sys.modules["laterne." + m]
                    delattr(laterne, m)


def validate(cfg):
    """(normalized config with defaults filled in, []) or (partial config, ["key: reason"])."""
    return _call("configschema", "validate", cfg)


def defaults():
    """A config with every default filled in; required keys are None (or [] for wifi)."""
    return _call("configschema", "defaults")


def redact(cfg):
    """A copy with every secret replaced by "***" (None stays None)."""
    return _call("configschema", "redact", cfg)


def apply_remote(cfg, patch):
    """(new config, []) for an allowlisted, valid patch to the valid cfg; else (cfg
    unchanged, reasons). See laterne/configremote.py."""
    return _call("configremote", "apply_remote", cfg, patch)


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
