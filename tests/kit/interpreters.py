# The two MicroPython interpreters the tests run firmware on: the 64-bit unix port from PyPI
# ("mpy64") and the 32-bit build with the ESP32's heap shape ("mpy32", `make mpy32`). A test
# asks for one by id; a missing 32-bit build skips the test, or fails it when CI is set (CI
# must build and use it).
import os

import pytest

from host_tools import paths

IDS = ("mpy64", "mpy32")


def exe(interp):
    """The executable for `interp`; skips (fails in CI) when the 32-bit build is not usable."""
    if interp == "mpy64":
        return paths.micropython_exe()
    try:
        return paths.micropython32_exe()
    except FileNotFoundError as e:
        if os.environ.get("CI"):
            pytest.fail("CI must run the 32-bit build: %s" % e)
        pytest.skip(str(e))
