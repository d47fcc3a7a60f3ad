# The fleet's update keys. The operator holds one master key in a private file (`--keys
# FILE`, mode 600); each node holds HMAC-SHA256(master, node id), put there by `laterne
# configure --keys`. An offer is authenticated with the key of the node it is addressed to,
# so a key extracted from one node cannot update any other.
import hashlib
import hmac
import json
import os
import secrets
import stat

from host_tools.errors import UserError

FIELD = "laterne_ota_master_key"


def node_key(master, node_id):
    """The 32-byte key of one node."""
    return hmac.new(master, b"laterne-ota-node " + node_id.encode(), hashlib.sha256).digest()


def sign(key, text):
    """HMAC-SHA256 of an offer's signed text (laterne.ota.signed_text), in hex."""
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def create(path):
    """Write a new master key to `path` (mode 600); refuses to overwrite a file."""
    master = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError("%s exists already: it is not replaced" % path)
    except OSError as e:
        raise UserError("cannot create the key file %s: %s" % (path, e.strerror))
    with os.fdopen(fd, "w") as f:
        json.dump({FIELD: master.hex()}, f)
        f.write("\n")
    return master


def load(path):
    """The master key from `path`; UserError when it is missing, readable by others or not
    a key file."""
    try:
        mode = os.stat(path).st_mode
        with open(path) as f:
            text = f.read(4096)
    except FileNotFoundError:
        raise UserError("no key file %s" % path,
                        "give the fleet's key file; `laterne configure --keys FILE` or "
                        "`laterne sim --keys FILE` creates one when it is missing")
    except OSError as e:
        raise UserError("cannot read the key file %s: %s" % (path, e.strerror))
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError("the key file %s can be read by other users" % path, "chmod 600 %s" % path)
    try:
        master = bytes.fromhex(json.loads(text)[FIELD])
    except (ValueError, KeyError, TypeError):
        raise UserError("%s is not a Laterne update key file" % path)  # never echo its content
    if len(master) != 32:
        raise UserError("%s holds a key of the wrong length" % path)
    return master


def load_or_create(path, log=print):
    if os.path.exists(path):
        return load(path)
    master = create(path)
    log("created the fleet update key file %s: keep it private and backed up; every node "
        "configured with it needs it for updates" % path)
    return master


INSTALL = """\
from laterne import otaoffer
otaoffer.save_key('', %r)
print(otaoffer.key_id(otaoffer.load_key('')))
"""


def install(port, node_id, path, log=print, timeout=10):
    """Put the node's key on the board on `port` (laterne configure --keys) and read back its
    fingerprint; the key itself is never shown."""
    from laterne import otaoffer
    from host_tools.usb.device import Device, DeviceError, retry_once
    key = node_key(load_or_create(path, log), node_id)

    def write():
        with Device(port, soft_reset=True, timeout=timeout) as dev:
            try:
                out = dev.exec(INSTALL % key.hex()).decode().split()
            except DeviceError as e:
                raise UserError("writing the update key failed on the board: %s" % e.last_line(),
                                "is the firmware deployed (laterne deploy) and the flash not full?")
            dev.resume()
        return out[-1] if out else None

    if retry_once(write) != otaoffer.key_id(key):
        raise UserError("the update key read back from the board differs",
                        "run configure again; if it persists the board's flash may be failing")
    log("update key of %s installed (key id %s)" % (node_id, otaoffer.key_id(key)))
