# Deploy speed against the virtual board (real pty, mpremote transport, MicroPython):
# deploy_full_s: everything onto an empty board (compile cache warm, as in a depot run);
# redeploy_unchanged_s: the same deploy again, nothing to copy.
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from host_tools.paths import REPO
from host_tools.usb import deploy


def _start_board(folder):
    pty = Path(folder) / "bench.pty"
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "virtual-board", "--pty",
                             str(pty), "--state", str(Path(folder) / "state")],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not pty.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("virtual board did not start")
        time.sleep(0.05)
    return proc, str(pty)


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure():
    full, again = [], []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as folder:
            proc, pty = _start_board(folder)
            try:
                t_full, first = _timed(lambda: deploy.deploy(pty, progress=False))
                t_again, second = _timed(lambda: deploy.deploy(pty, progress=False))
                assert first["copied"] and not second["copied"]
                full.append(t_full)
                again.append(t_again)
            finally:
                proc.terminate()
                proc.wait(timeout=15)
    return {"deploy_full_s": round(sorted(full)[1], 3),
            "redeploy_unchanged_s": round(sorted(again)[1], 3)}

