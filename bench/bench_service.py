# What laterne.service costs a node's heap, on the 32-bit MicroPython with the ESP32's heap
# shape (-X heapsize=96k), the firmware precompiled with mpy-cross as deploy puts it on a board:
#   service_import_bytes        heap kept by importing it into a running node (laterne,
#                               config, the adapter, the driver and the spool already loaded),
#                               which is what `laterne check` does after interrupting the node
#   service_import_cold_bytes   the same after a soft reset (configure): laterne and config too
#   service_facts_alloc_bytes   everything one facts() call allocates (garbage included), with
#                               a simulated BME280 on the bus and no node running (so the spool
#                               is opened to count its readings)
#   service_facts_kept_bytes    what stays allocated after it and a collection
# The node itself never imports the module; the tools soft-reset the board when done. The
# virtual board's stand-ins (machine, network, the sensor simulator) are precompiled too; they
# take heap a chip does not spend on its built-in modules.
# CPython side: measure() compiles the firmware and runs this very file under that interpreter.
import sys


def _alloc():
    import gc
    gc.collect()
    return gc.mem_alloc()


def _mp_cold():
    before = _alloc()
    import laterne.service  # noqa: F401
    return {"service_import_cold_bytes": _alloc() - before}


def _mp_warm(root):
    import gc

    import machine
    from bme280_sim import BME280Sim
    from laterne import bme280, config, spool  # noqa: F401  (what a running node has loaded)
    from laterne.hw import platform
    machine.board.attach(0x76, BME280Sim(machine.board.clock))
    sys.modules["time"] = platform.time = machine.board.clock
    before = _alloc()
    from laterne import service
    figures = {"service_import_bytes": _alloc() - before}
    hw = platform.Platform(root)
    service.facts(hw, root)  # once first: the config's backup copy is written
    before = _alloc()
    gc.disable()
    service.facts(hw, root)
    figures["service_facts_alloc_bytes"] = gc.mem_alloc() - before
    gc.enable()
    figures["service_facts_kept_bytes"] = _alloc() - before
    return figures


def measure():
    import json
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    from host_tools import paths
    from host_tools.usb import deploy

    exe = paths.micropython32_exe()
    mpy = subprocess.run([exe, "-c", "import sys; print(sys.implementation._mpy)"],
                         capture_output=True, text=True, check=True).stdout
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stand_ins = tmp / "stand-ins"
        shutil.copytree(paths.VBOARD, stand_ins / "lib",
                        ignore=shutil.ignore_patterns("__pycache__", "__init__.py"))
        for folder in (paths.FIRMWARE, stand_ins):
            for name, data in deploy.build(folder, {"mpy": int(mpy)}).items():
                path = tmp / name.lstrip("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        node = tmp / "node"
        node.mkdir()
        board = json.loads((paths.BOARDS / "esp32-devkitc.json").read_text())
        (node / "board.json").write_text(json.dumps(board))
        (node / "config.json").write_text(json.dumps({
            "node_id": "lamp-001", "board": board["name"],
            "wifi": [{"ssid": "street", "password": "wpa-secret-1"}],
            "broker": {"host": "mqtt.example.org"}}))
        env = paths.micropython_env()
        env["MICROPYPATH"] = str(tmp / "lib")
        for mode in ("cold", "warm"):
            proc = subprocess.run([exe, "-X", "heapsize=96k", __file__, mode, str(node) + "/"],
                                  env=env, capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError("bench_service (%s) on MicroPython failed:\n%s%s"
                                   % (mode, proc.stdout, proc.stderr))
            figures.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    return figures


if __name__ == "__main__" and sys.implementation.name == "micropython":
    import json
    print(json.dumps(_mp_cold() if sys.argv[1] == "cold" else _mp_warm(sys.argv[2])))
