# Shared pytest set-up: the portable tests and the virtual board import the same way on
# CPython as on MicroPython (firmware/lib and host_tools/vboard on the path).
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / "firmware" / "lib", ROOT / "host_tools" / "vboard", ROOT / "tests" / "portable"):
    if str(p) not in sys.path:
        sys.path.append(str(p))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: needs a broker, a subprocess fleet or minutes")


import pytest  # noqa: E402

from host_tools.broker import Broker  # noqa: E402


@pytest.fixture
def broker():
    """A real mosquitto on a free loopback port, stopped after the test."""
    b = Broker(kind="mosquitto")
    b.start()
    yield b
    b.stop()
