# `laterne deploy`: compile firmware/lib with mpy-cross for the board's architecture and .mpy
# version (read from the board), compare sha256 per file with the board, copy only what
# differs, remove stale files under /lib, soft-reset. boot.py and main.py stay source.
# What deploy installs is the factory app (/lib): it also resets the updates over the air
# (ota/state first, so the loader boots /lib, then the update slots), keeping the node key.
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from host_tools import paths
from host_tools.errors import UserError
from host_tools.usb.device import Device, DeviceError, retry_once

# sys.implementation._mpy >> 10 -> mpy-cross -march (py/persistentcode.h, MP_NATIVE_ARCH_*)
ARCHES = {1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
          7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc",
          12: "rv64imc"}
SOURCE_FILES = ("boot.py", "main.py")  # kept as source, like a device expects
# -O3: no line numbers in the .mpy (tracebacks name files and functions, every line reads 1):
# 2.4 KB less of the node's 96 KB heap (docs/heap.md)
MPY_CROSS_OPT = "-O3"

# Prints {path: sha256 hex} for /boot.py, /main.py and everything under /lib. It must run on a
# board that has no Laterne yet (the first deploy), so it stays a string here instead of a
# firmware module like laterne.service.
DEVICE_HASHES = """\
import os, hashlib, binascii
def _h(p):
    h = hashlib.sha256(); b = bytearray(512); m = memoryview(b)
    with open(p, 'rb') as f:
        while True:
            n = f.readinto(b)
            if not n: break
            h.update(m[:n])
    return binascii.hexlify(h.digest()).decode()
def _walk(d, out):
    try: entries = list(os.ilistdir(d))
    except OSError: return
    for e in entries:
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            out[p + '/'] = ''
            _walk(p, out)
        else: out[p] = _h(p)
_r = {}
for _p in %r:
    try: _r[_p] = _h(_p)
    except OSError: pass
_walk('/lib', _r)
print(repr(_r))
del _h, _walk, _r
"""

# Boot the factory app from now on: drop the loader's record, then the update slots.
RESET_OTA = """\
import os
def _rm(p):
    for e in list(os.ilistdir(p)):
        q = p + '/' + e[0]
        _rm(q) if e[1] & 0x4000 else os.remove(q)
    os.rmdir(p)
try:
    os.remove('/ota/state')
    print('reset')
except OSError:
    pass
try:
    _rm('/ota')
except OSError:
    pass
del _rm
"""


def mpy_cross_version():
    try:
        out = subprocess.run([_mpy_cross(), "--version"], capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise UserError("mpy-cross does not run: %s" % e, "run `make setup`")
    m = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not m:
        raise UserError("cannot tell the .mpy version of mpy-cross from %r" % out.strip())
    return int(m.group(1)), int(m.group(2))


def _mpy_cross():
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def target_of(info):
    """(mpy major, sub-version, -march or None) from the board's sys.implementation._mpy."""
    mpy = info.get("mpy") or 0
    if not mpy:
        raise UserError("the board's MicroPython does not say which .mpy files it loads "
                        "(sys.implementation._mpy is missing; MicroPython %s)"
                        % ".".join(str(v) for v in info.get("version", ())[:3]),
                        "flash a current MicroPython (1.19 or newer): laterne flash")
    return mpy & 0xFF, (mpy >> 8) & 3, ARCHES.get(mpy >> 10)


def build(firmware_dir, info, out_dir=None, log=None):
    """Compile for the board; returns {device path: bytes} (boot.py/main.py as source)."""
    firmware_dir = Path(firmware_dir)
    if not (firmware_dir / "lib").is_dir():
        raise UserError("%s has no lib/ folder: not a firmware directory" % firmware_dir,
                        "run from the repository or pass --firmware-dir firmware")
    major, _sub, arch = target_of(info)
    have_major, have_sub = mpy_cross_version()
    if major != have_major:
        raise UserError(
            "the board loads .mpy v%d but mpy-cross emits v%d.%d" % (major, have_major, have_sub),
            "flash the board with the MicroPython release this project targets (laterne flash), "
            "or install the mpy-cross that matches the board's MicroPython")
    out_dir = Path(out_dir or paths.BUILD / "deploy-cache")
    files = {}
    for name in SOURCE_FILES:
        src = firmware_dir / name
        if src.exists():
            files["/" + name] = src.read_bytes()
    for src in sorted((firmware_dir / "lib").rglob("*")):
        if src.is_dir() or "__pycache__" in src.parts:
            continue
        rel = src.relative_to(firmware_dir).as_posix()
        if src.suffix != ".py":
            files["/" + rel] = src.read_bytes()
            continue
        source = src.read_bytes()
        # cache by content: the same source for the same target is compiled once
        name = _source_name(rel)
        tag = "%s -s %s" % (rel, name)
        key = hashlib.sha256(b"%s\0%d.%d\0%s\0%s\0" % ((arch or "").encode(), have_major,
                                                          have_sub, MPY_CROSS_OPT.encode(),
                                                          tag.encode()) + source)
        out = out_dir / (key.hexdigest()[:32] + ".mpy")
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".%d.tmp" % os.getpid())
            cmd = [_mpy_cross(), MPY_CROSS_OPT, "-o", str(tmp), "-s", name]
            if arch:
                cmd.insert(1, "-march=" + arch)
            run = subprocess.run(cmd + [str(src)], capture_output=True, text=True)
            if run.returncode != 0:
                raise UserError("mpy-cross cannot compile %s:\n%s" % (rel, run.stderr.strip()),
                                "fix the file; every firmware file must compile for the ESP32")
            os.replace(tmp, out)
        files["/" + rel[:-3] + ".mpy"] = out.read_bytes()
    return files


def _source_name(rel):
    """The file name tracebacks give for lib/x/y.py: its module name "x.y", a name the
    node interns anyway (the path would be one more qstr per module, docs/heap.md)."""
    parts = rel[:-3].split("/")[1:]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_hash(files):
    """One hash for the whole deployed app (what the provisioning log records)."""
    h = hashlib.sha256()
    for path in sorted(files):
        h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return h.hexdigest()


def plan(files, device_hashes):
    """(to copy, to remove, unchanged count) from the build and the board's hashes."""
    copy = [p for p in sorted(files)
            if device_hashes.get(p) != hashlib.sha256(files[p]).hexdigest()]
    stale = [p for p in device_hashes if p.startswith("/lib/") and not p.endswith("/")
             and p not in files]
    stale_dirs = [p for p in device_hashes if p.endswith("/")
                  and not any(f.startswith(p) for f in files)]
    # files first, then folders deepest first, so each folder is empty when removed
    remove = sorted(stale, reverse=True) + sorted(stale_dirs, key=len, reverse=True)
    return copy, remove, len(files) - len(copy)


def _mkdirs(dev, files):
    dirs = sorted({p.rsplit("/", 1)[0] for p in files} - {""})
    code = "import os\nfor d in %r:\n try: os.mkdir(d)\n except OSError: pass\n" % (
        _with_parents(dirs),)
    dev.exec(code)


def _with_parents(dirs):
    out = set()
    for d in dirs:
        parts = d.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            out.add("/" + "/".join(parts[:i]))
    return sorted(out, key=lambda d: d.count("/"))


def deploy(port, firmware_dir=None, dry_run=False, progress=True, log=print, timeout=10):
    """Deploy to the board on `port`, telling `log` what changed; returns dict(copied,
    removed, unchanged, app_hash, ...)."""
    firmware_dir = Path(firmware_dir or paths.FIRMWARE)
    result = retry_once(_deploy, port, firmware_dir, dry_run, progress, timeout)
    _report(result, dry_run, log)
    return result


def _report(result, dry_run, log):
    verb = "would copy" if dry_run else "copied"
    for path in result["copied"]:
        log("%s %s" % (verb, path))
    for path in result["removed"]:
        log("%s %s" % ("would remove" if dry_run else "removed", path))
    if not result["copied"] and not result["removed"]:
        log("deploy: nothing to copy, all %d files unchanged (%s, mpy v%d)"
            % (result["unchanged"], result["arch"] or "bytecode", result["mpy"]))
    else:
        log("deploy: %s %d, removed %d, unchanged %d; app %s"
            % (verb, len(result["copied"]), len(result["removed"]), result["unchanged"],
               result["app_hash"][:12]))
    if not dry_run:
        if result.get("ota_reset"):
            log("deploy: the update installed over the air was reset: the node runs this app")
        log("board soft-reset: the node runs the new firmware")


def _deploy(port, firmware_dir, dry_run, progress, timeout):
    with Device(port, soft_reset=True, timeout=timeout) as dev:
        info = dev.info()
        files = build(firmware_dir, info)
        try:
            hashes_code = DEVICE_HASHES % (["/" + n for n in SOURCE_FILES],)
            device_hashes = dev.eval_repr(hashes_code)
            copy, remove, unchanged = plan(files, device_hashes)
            mpy, _sub, arch = target_of(info)
            result = {"copied": copy, "removed": remove, "unchanged": unchanged,
                      "app_hash": app_hash(files), "files": len(files),
                      "arch": arch, "mpy": mpy}
            if dry_run:
                return result
            if copy:
                _mkdirs(dev, copy)
                _copy(dev, files, copy, progress)
            for p in remove:
                fn = "rmdir" if p.endswith("/") else "remove"
                dev.exec("import os\ntry: os.%s(%r)\nexcept OSError: pass" % (fn, p.rstrip("/")))
            result["ota_reset"] = b"reset" in dev.exec(RESET_OTA)
            if copy:
                after = dev.eval_repr(hashes_code)
                bad = [p for p in copy if after.get(p) != hashlib.sha256(files[p]).hexdigest()]
                if bad:
                    raise UserError("files differ on the board after copying: %s" % ", ".join(bad),
                                    "is the board's filesystem full? try again, or "
                                    "`mpremote connect PORT df`")
            dev.resume()
        except DeviceError as e:
            raise UserError("deploy failed on the board: %s" % e.last_line(),
                            "is the filesystem full or read-only? `mpremote connect %s df`" % port)
    return result


def _copy(dev, files, copy, progress):
    total = sum(len(files[p]) for p in copy)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, unit="B", unit_scale=True, desc="deploy", file=sys.stderr,
                   leave=False)
    try:
        for p in copy:
            if bar is not None:
                bar.set_postfix_str(p, refresh=False)
            # write next to it, then rename: a cut cable never leaves half a module behind
            dev.write_file(p + ".new", files[p])
            dev.exec("import os\nos.rename(%r, %r)" % (p + ".new", p))
            if bar is not None:
                bar.update(len(files[p]))
    finally:
        if bar is not None:
            bar.close()
