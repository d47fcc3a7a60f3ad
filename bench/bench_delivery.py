# What `delivery: "stored"` costs a node, on the 32-bit MicroPython with the ESP32's heap
# (build/mpy32/micropython -X heapsize=96k), modules precompiled by mpy-cross as deploy does:
# - delivery_import_heap_bytes: heap held after importing laterne.delivery and making the
#   policy (only nodes configured for "stored" import it);
# - uplink_import_heap_bytes: heap held by importing laterne.uplink (every node);
# - delivery_report_garbage_bytes: heap allocated by handling one `stored` report.
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools import paths
from host_tools.usb import deploy

SCRIPT = r"""
import gc, time
gc.collect(); a = gc.mem_alloc()
from laterne import uplink
gc.collect(); b = gc.mem_alloc()
from laterne import delivery
d = delivery.StoredDelivery("lamp-001", time, "laterne/lamp-001/stored")
gc.collect(); c = gc.mem_alloc()
class Spool:
    def ack(self, seq):
        pass
d.spool = Spool()
d.acked = 1000000
msg = b'{"v":1,"node":"lamp-001","seq":123456}'
d.on_report(msg)
gc.collect(); gc.disable(); x = gc.mem_alloc()
for i in range(100):
    d.on_report(msg)
y = gc.mem_alloc(); gc.enable()
print("RESULT", b - a, c - b, (y - x) // 100)
"""


def measure():
    exe = paths.micropython32_exe()
    info = subprocess.run([exe, "-c", "import sys; print(sys.implementation._mpy)"],
                          capture_output=True, text=True, check=True).stdout
    files = deploy.build(paths.FIRMWARE, {"mpy": int(info)})
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            path = Path(tmp) / name.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        env = paths.micropython_env()
        env["MICROPYPATH"] = str(Path(tmp) / "lib")
        out = subprocess.run([exe, "-X", "heapsize=96k", "-c", SCRIPT], env=env,
                             capture_output=True, text=True, timeout=60)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT")]
    if out.returncode or not line:
        raise RuntimeError("mpy32 run failed: %s" % (out.stdout + out.stderr)[-2000:])
    uplink, policy, garbage = (int(v) for v in line[0].split()[1:])
    return {"uplink_import_heap_bytes": uplink, "delivery_import_heap_bytes": policy,
            "delivery_report_garbage_bytes": garbage}


if __name__ == "__main__":
    print(json.dumps(measure(), indent=1))
    sys.exit(0)
