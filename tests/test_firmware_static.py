# Static checks on everything under firmware/: each .py compiles with mpy-cross for the ESP32
# (xtensawin), the core (firmware/lib/laterne/*.py, not hw/) imports nothing from machine,
# network, esp32 or ntptime, and no node code imports laterne.service (the tools' module),
# all found from the AST (imports anywhere, __import__ too).
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.paths import FIRMWARE

CORE = FIRMWARE / "lib" / "laterne"
FORBIDDEN = ("machine", "network", "esp32", "ntptime")
FILES = sorted(FIRMWARE.rglob("*.py"))
CORE_FILES = sorted(CORE.glob("*.py"))


def mpy_cross():
    exe = Path(sys.executable).parent / "mpy-cross"
    return str(exe) if exe.exists() else "mpy-cross"


def compile_for_esp32(path, out_dir):
    """(ok, message) of mpy-cross -march=xtensawin on one file."""
    out = Path(out_dir) / (Path(path).stem + ".mpy")
    proc = subprocess.run([mpy_cross(), "-march=xtensawin", "-o", str(out), str(path)],
                          capture_output=True, text=True, timeout=60)
    return proc.returncode == 0 and out.exists(), proc.stdout + proc.stderr


def imports_of(source):
    """Every module name imported anywhere in `source` (from-imports also as module.name,
    __import__ with a constant name too)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(node.module + "." + a.name for a in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def forbidden_imports(source):
    """Hardware modules imported anywhere in `source` (laterne.hw counts: it imports them)."""
    return sorted(n for n in imports_of(source)
                  if n.split(".")[0] in FORBIDDEN or n.startswith("laterne.hw"))


def test_there_is_firmware_to_check():
    assert FIRMWARE / "main.py" in FILES and CORE / "bme280.py" in CORE_FILES


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_compiles_for_esp32(path, tmp_path):
    ok, message = compile_for_esp32(path, tmp_path)
    assert ok, "mpy-cross -march=xtensawin %s:\n%s" % (path, message)


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_module_is_hardware_free(path):
    bad = forbidden_imports(path.read_text())
    assert not bad, "%s imports %s: only laterne/hw/ may touch the hardware" % (path, bad)


BAD_SAMPLES = (
    ("import machine\n", ["machine"]),
    ("def f():\n    from network import WLAN\n", ["network", "network.WLAN"]),
    ("import os, esp32 as chip\n", ["esp32"]),
    ("try:\n    import ntptime\nexcept ImportError:\n    pass\n", ["ntptime"]),
    ("m = __import__('machine')\n", ["machine"]),
    ("from machine import Pin\n", ["machine", "machine.Pin"]),
    ("from laterne import hw\n", ["laterne.hw"]),
    ("from laterne.hw.platform import Platform\n",
     ["laterne.hw.platform", "laterne.hw.platform.Platform"]),
)


@pytest.mark.parametrize("source,expected", BAD_SAMPLES)
def test_checker_catches_hardware_imports(source, expected):
    assert forbidden_imports(source) == expected


def test_checker_passes_clean_code():
    assert forbidden_imports("import time\nfrom laterne import flags\nmachine = 1\n") == []


def test_compile_check_catches_broken_code(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    ok, message = compile_for_esp32(bad, tmp_path)
    assert not ok and "SyntaxError" in message


@pytest.mark.parametrize("path", [p for p in FILES if p.name != "service.py"],
                         ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_the_node_never_imports_the_service_module(path):
    """laterne.service is for the host tools over the REPL; the running node's heap never
    carries it (its cost: bench/bench_service.py)."""
    assert "laterne.service" not in imports_of(path.read_text())
