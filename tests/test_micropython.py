# Runs every portable test module on real MicroPython, on both interpreters: the 64-bit unix
# port (mpy64) and the 32-bit build with the ESP32's object sizes, 31-bit small ints and
# single-precision floats (mpy32), so one pytest run reports all of them. A failure shows
# MicroPython's own output and traceback.
import subprocess
from pathlib import Path

import pytest

import interpreters
from host_tools.paths import micropython_env

HERE = Path(__file__).parent
PORTABLE = sorted(p.stem for p in (HERE / "portable").glob("test_*.py"))


@pytest.mark.parametrize("interp", interpreters.IDS)
@pytest.mark.parametrize("module", PORTABLE)
def test_portable_module_on_micropython(module, interp):
    # the stand-ins from source, not the 32-bit build's frozen copy: the tests test the files
    proc = subprocess.run(
        [interpreters.exe(interp), "-X", "heapsize=4M", str(HERE / "kit" / "mp_runner.py"),
         module],
        env=micropython_env(HERE / "portable", HERE / "kit"),
        capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, "MicroPython (%s) run of %s failed:\n%s" % (interp, module, out)
    assert " passed, 0 failed" in out
