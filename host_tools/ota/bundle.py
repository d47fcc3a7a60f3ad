# `laterne ota build`: a bundle is a zip of the app precompiled to bytecode .mpy (firmware/lib,
# loadable by every MicroPython of the same .mpy version, whatever the chip) with its
# manifest: version, .mpy version, and path, size and SHA-256 of each file. load() reads one
# back and refuses it when a file does not match the manifest. offer() makes the manifest
# one node receives: the same, addressed to it and authenticated with its key.
import hashlib
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from host_tools import paths
from host_tools.errors import UserError
from host_tools.ota import keys

FORMAT = "laterne-ota-bundle 1"
MANIFEST = "manifest.json"
ENTRY = "laterne/hw/app.mpy"  # what the loader (firmware/main.py) imports
VERSION_LINE = re.compile(r'^VERSION = "[^"]*"$', re.M)
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so the same app gives the same bundle


class Bundle:
    def __init__(self, version, mpy, data):
        self.version = version
        self.mpy = mpy
        self.data = data  # {"laterne/x.mpy": bytes}
        self.files = [[p, len(b), hashlib.sha256(b).hexdigest()] for p, b in sorted(data.items())]

    def size(self):
        return sum(f[1] for f in self.files)

    def manifest(self):
        return {"format": FORMAT, "version": self.version, "mpy": self.mpy, "files": self.files}


def check_version(version):
    from laterne import otaoffer
    try:
        otaoffer.parse_version(version)
    except ValueError:
        raise UserError("version %r is not like 1.2.3 (one to four numbers)" % version)
    return version


def build(out, firmware_dir=None, version=None):
    """Compile `firmware_dir`/lib (default: the repository's firmware) into bundle `out`,
    with laterne.VERSION set to `version` when given. Returns the Bundle."""
    from host_tools.usb import deploy
    src = Path(firmware_dir or paths.FIRMWARE)
    init = src / "lib" / "laterne" / "__init__.py"
    if not (src / "lib" / "laterne" / "hw" / "app.py").exists() or not init.exists():
        raise UserError("%s is not a Laterne firmware folder (no lib/laterne/hw/app.py)" % src,
                        "pass the folder that holds boot.py, main.py and lib/ with --firmware")
    text = init.read_text()
    current = VERSION_LINE.search(text)
    if current is None:
        raise UserError("%s has no line VERSION = \"...\"" % init)
    version = check_version(version or current.group(0).split('"')[1])
    major, _sub = deploy.mpy_cross_version()
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "firmware" / "lib"
        shutil.copytree(src / "lib", lib, ignore=shutil.ignore_patterns("__pycache__"))
        (lib / "laterne" / "__init__.py").write_text(
            VERSION_LINE.sub('VERSION = "%s"' % version, text))
        files = deploy.build(lib.parent, {"mpy": major})  # no arch: bytecode for any chip
    data = {p[len("/lib/"):]: b for p, b in files.items() if p.startswith("/lib/")}
    bundle = Bundle(version, major, data)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            _put(z, MANIFEST, json.dumps(bundle.manifest(), indent=1).encode())
            for path in sorted(data):
                _put(z, "files/" + path, data[path])
    except OSError as e:
        raise UserError("cannot write the bundle %s: %s" % (out, e.strerror or e))
    return bundle


def _put(z, name, data):
    info = zipfile.ZipInfo(name, _ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, data)


def load(path):
    """The Bundle in file `path`, every file checked against the manifest."""
    try:
        with zipfile.ZipFile(path) as z:
            manifest = json.loads(z.read(MANIFEST))
            if manifest.get("format") != FORMAT:
                raise ValueError("not a %s" % FORMAT)
            data = {}
            for name, size, sha in manifest["files"]:
                body = z.read("files/" + name)
                if len(body) != size or hashlib.sha256(body).hexdigest() != sha:
                    raise UserError("bundle %s: %s does not match its manifest" % (path, name),
                                    "the bundle was altered or damaged: build it again")
                data[name] = body
            bundle = Bundle(check_version(manifest["version"]), manifest["mpy"], data)
    except FileNotFoundError:
        raise UserError("no bundle %s" % path, "make one with `laterne ota build --out %s`" % path)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise UserError("%s is not a usable update bundle: %s" % (path, e),
                        "make one with `laterne ota build --out FILE`")
    if ENTRY not in data:
        raise UserError("bundle %s lacks %s, which the loader starts" % (path, ENTRY))
    return bundle


def offer(bundle, node_id, node_key, offer_id):
    """The offer message for one node (docs/mqtt.md, topic <prefix>/<node>/ota/offer)."""
    from laterne import otaoffer
    text = "".join(otaoffer.signed_lines(node_id, bundle.version, offer_id, bundle.mpy,
                                         bundle.files))
    return json.dumps({"v": 1, "node": node_id, "version": bundle.version, "offer": offer_id,
                       "mpy": bundle.mpy, "files": bundle.files,
                       "hmac": keys.sign(node_key, text)}, separators=(",", ":"))
