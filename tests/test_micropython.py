# Runs every portable test module on the real MicroPython unix port, so one pytest run
# reports both interpreters. A failure shows MicroPython's own output and traceback.
import subprocess
from pathlib import Path

import pytest

from host_tools.paths import micropython_env, micropython_exe

HERE = Path(__file__).parent
PORTABLE = sorted(p.stem for p in (HERE / "portable").glob("test_*.py"))


@pytest.mark.parametrize("module", PORTABLE)
def test_portable_module_on_micropython(module):
    proc = subprocess.run(
        [micropython_exe(), "-X", "heapsize=4M", str(HERE / "kit" / "mp_runner.py"), module],
        env=micropython_env(HERE / "portable"),
        capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, "MicroPython run of %s failed:\n%s" % (module, out)
    assert " passed, 0 failed" in out
