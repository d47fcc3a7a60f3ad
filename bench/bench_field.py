# Field fixes (issue 10) on the 32-bit build with the ESP32's heap shape (-X heapsize=512k: the import cost is the figure),
# firmware precompiled as deploy does it (bench/field_mp.py runs on the board side):
# - field_import_bytes: heap taken by importing laterne.node and laterne.hw.platform (the
#   virtual board's stand-ins imported beforehand);
# - field_boot_guard_garbage_bytes: allocations of Platform.boot_guard at a power-on boot
#   (RTC records and the brownout record on flash);
# - field_idle_pass_garbage_bytes: median allocations of one pass of the always-on loop with
#   the radio off (safe mode), over a simulated day; field_day_loop_passes: passes that day.
import json
import subprocess
import tempfile
from pathlib import Path

from host_tools import paths
from host_tools.usb import deploy

HERE = Path(__file__).parent


def measure():
    exe = paths.micropython32_exe()
    mpy = int(subprocess.run([exe, "-c", "import sys; print(sys.implementation._mpy)"],
                             capture_output=True, text=True, check=True).stdout)
    with tempfile.TemporaryDirectory() as tmp:
        fw = Path(tmp) / "fw"
        for name, data in deploy.build(paths.FIRMWARE, {"mpy": mpy}).items():
            path = fw / name.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        env = paths.micropython_env()
        env["MICROPYPATH"] = str(paths.VBOARD)
        proc = subprocess.run([exe, "-X", "heapsize=512k", str(HERE / "field_mp.py"), str(fw),
                               tmp], env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise RuntimeError(proc.stdout + proc.stderr)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"field_import_bytes": r["import"], "field_boot_guard_garbage_bytes": r["guard"],
            "field_idle_pass_garbage_bytes": r["idle"], "field_day_loop_passes": r["passes"]}
