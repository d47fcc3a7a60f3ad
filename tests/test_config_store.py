# config.save/load survive a power cut at any flash operation: littlefs on the MicroPython
# unix port with the virtual board's power-cut block device.
import json
import subprocess
from pathlib import Path

from host_tools.paths import micropython_env, micropython_exe

HERE = Path(__file__).parent


def test_power_cut_at_every_flash_operation_keeps_old_or_new_config():
    proc = subprocess.run([micropython_exe(), "-X", "heapsize=8M", str(HERE / "kit" / "mp_config_powercut.py")],
                          env=micropython_env(), capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    r = json.loads(line[7:])
    # both outcomes occur: early cuts keep the old config, late ones already have the new
    assert r["trials"] >= 6 and r["outcomes"]["old"] > 0 and r["outcomes"]["new"] > 0, r
