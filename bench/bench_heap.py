# Heap figures of the node, on the 32-bit build with the ESP32's heap shape (m32_*) and on the
# 64-bit unix port (m64_*), each against a real mosquitto:
#   *_heap_after_boot          live heap of the running node: the least (after a collection)
#                              over its first virtual hour, from its third minute on; what the
#                              virtual board holds is not counted (sim.Interpreter)
#   *_min_heap_node            the smallest GC heap budget in which the node scenario
#                              (tests/kit/node_scenario.py) passes without a MemoryError,
#                              found by bisection to 2 KB
#   *_garbage_per_batch        heap allocated per 50-reading batch by the drain (encoding,
#                              publishing, PUBACKs), measured with the collector off
#   *_compensate_alloc_bytes   heap allocated per bme280.compensate() call
#   *_import_bytes             heap the deployed modules take once imported (.mpy)
#   m32_fits_budget            1 when m32_min_heap_node is within the ESP32_GENERIC board's
#                              GC heap budget (boards/esp32-devkitc.json: 96 KB)
#   *_qstrs                    names those modules intern (with the interpreter's own and
#                              main.py's, the 621st makes MicroPython allocate a 6th qstr
#                              pool of 4.5 KB; docs/heap.md)
# Rerun on other firmware: `make bench` (or `.venv/bin/python -m bench heap`) in its checkout.
import sys

BATCH = 50
BATCHES = 20
MODULES = ("laterne.config", "laterne.node", "laterne.hw.platform", "laterne.bme280")


def _mp_main(port, what, image):
    import gc
    import json
    import time

    if what == "imports":
        import machine  # noqa: F401 (on the chip C modules: not the firmware's heap)
        import micropython
        import network  # noqa: F401
        micropython.qstr_info()  # "n_qstr=..." before and after, read by the host side
        gc.collect()
        before = gc.mem_alloc()
        for name in MODULES:
            __import__(name)
        gc.collect()
        print(json.dumps({"import_bytes": gc.mem_alloc() - before}))
        micropython.qstr_info()
        return
    if what == "compensate":
        from laterne import bme280
        cal = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
               75, 362, 0, 313, 50, 30)  # the datasheet's example calibration
        bme280.compensate(cal, 519888, 415148, 30000)
        gc.collect()
        gc.disable()
        before = gc.mem_alloc()
        for _ in range(100):
            bme280.compensate(cal, 519888, 415148, 30000)
        per_call = (gc.mem_alloc() - before) / 100
        gc.enable()
        print(json.dumps({"compensate_alloc_bytes": per_call}))
        return
    # garbage per batch: a spool on littlefs in RAM, a real MQTT session, the node's drain
    import blockdev
    import vfs
    from laterne import mqttclient, net, timebase
    from laterne.spool import Spool
    from laterne.uplink import Uplink

    # a flash image in a file, as the virtual nodes have: its reads make no garbage (a RAM
    # stand-in's slicing would, where the chip's C block device makes none)
    bd = blockdev.FileBlockDev(image, 4096, 96)
    vfs.VfsLfs2.mkfs(bd)
    vfs.mount(vfs.VfsLfs2(bd), "/b")
    spool = Spool("/b/")
    spool.extend([(1700000000 + 60 * i, 2150 + i % 50, 101325, 4500, 0, 1)
                  for i in range(BATCH * BATCHES)])

    class Wifi:
        def isconnected(self):
            return True

    class Hw:
        clock = time
        wifi = Wifi()

        def load_backoff(self):
            return 0, 0

        def save_backoff(self, attempts, retry_after):
            pass

    cfg = {"topic_prefix": "laterne", "backoff_min_s": 2, "backoff_max_s": 60,
           "batch_size": BATCH, "wifi": [], "broker": {}}
    tb = timebase.ClockState(time, 1)
    tb.mark_synced(1700000000 + 60 * BATCH * BATCHES)
    up = Uplink(Hw(), cfg, "bench", tb, lambda t, m: None, print, lambda: 0.5)
    client = mqttclient.MQTTClient("bench", lambda: net.open_socket("127.0.0.1", port, 5000),
                                   time, max_inflight=8, buffer_size=up._packet_bytes())
    client.connect()
    up.mqtt = up.client = client
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    acked = up.drain(spool, BATCH, lambda: None, 60000)
    garbage = gc.mem_alloc() - before
    gc.enable()
    client.disconnect()
    print(json.dumps({"garbage_per_batch": garbage / (acked / BATCH), "acked": acked}))


def _micro(interp, port, what, heap="1M"):
    """One MicroPython run of this file; its figures as a dict."""
    import json
    import re
    import subprocess
    from pathlib import Path

    from host_tools import paths
    from host_tools.virtual import sim

    with __import__("tempfile").TemporaryDirectory() as tmp:
        fw = sim.install_firmware(Path(tmp) / "fw", interp.exe)
        env = paths.micropython32_env() if interp.mpy32 else paths.micropython_env()
        # the frozen stand-ins first on the 32-bit build, as the node runs them
        env["MICROPYPATH"] = ":".join([str(fw / "lib"), ".frozen", str(paths.VBOARD)])
        proc = subprocess.run([interp.exe, "-X", "heapsize=" + heap, __file__, str(port), what,
                               str(Path(tmp) / "flash.img")],
                              env=env, capture_output=True, text=True, timeout=300)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode or not lines:
        raise RuntimeError("bench_heap %s on MicroPython failed:\n%s%s" % (
            what, proc.stdout[-2000:], proc.stderr[-2000:]))
    figures = json.loads(lines[-1])
    qstrs = [int(n) for n in re.findall(r"n_qstr=(\d+)", proc.stdout)]
    if len(qstrs) == 2:
        figures["qstrs"] = qstrs[1] - qstrs[0]  # the firmware's own names
    return figures


def _after_boot(broker, mpy32, work):
    """The least live heap of a node over its first virtual hour (virtual board excluded),
    and the names interned by then."""
    import json

    sys.path.insert(0, str(_kit()))
    import node_scenario
    from virtual_fleet import Fleet

    work.mkdir(parents=True, exist_ok=True)
    (work / "field.json").write_text(json.dumps(node_scenario.field_config()))
    fleet = Fleet(work / "state", broker.url, 1,
                  ["--skip-idle", "--virtual-duration", "3600", "--heap", "256k", "--config",
                   str(work / "field.json")] + (["--mpy32"] if mpy32 else []))
    try:
        fleet.proc.wait(180)
    finally:
        fleet.stop()
    heap = json.loads((work / "state" / "lamp-001" / "heap.json").read_text())
    return heap["days"][0][0] - heap["board"]


def _min_heap(broker, mpy32, work, lo_kb, hi_kb):
    """Smallest budget (KB, even) in lo_kb..hi_kb where the scenario passes; None if none."""
    sys.path.insert(0, str(_kit()))
    import node_scenario

    def passes(kb):
        try:
            node_scenario.run(work / ("%dk" % kb), broker, mpy32=mpy32, heap="%dk" % kb)
            return True
        except node_scenario.ScenarioFailed:
            return False

    if not passes(hi_kb):
        return None
    while hi_kb - lo_kb > 2:
        mid = (lo_kb + hi_kb) // 2 // 2 * 2
        if passes(mid):
            hi_kb = mid
        else:
            lo_kb = mid
    return hi_kb * 1024


def _kit():
    from host_tools.paths import REPO
    return REPO / "tests" / "kit"


def measure():
    import tempfile
    from pathlib import Path

    from host_tools import boards
    from host_tools.broker import Broker
    from host_tools.virtual.sim import Interpreter

    out = {}
    with Broker(kind="mosquitto") as broker, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # (prefix, 32-bit?, bisection range in KB): the 64-bit port's objects are bigger
        for prefix, mpy32, lo_kb, hi_kb in (("m32", True, 48, 160), ("m64", False, 64, 256)):
            interp = Interpreter(mpy32)
            imports = _micro(interp, broker.port, "imports")
            out[prefix + "_import_bytes"] = imports["import_bytes"]
            out[prefix + "_qstrs"] = imports["qstrs"]
            out[prefix + "_compensate_alloc_bytes"] = _micro(
                interp, broker.port, "compensate")["compensate_alloc_bytes"]
            out[prefix + "_garbage_per_batch"] = round(_micro(
                interp, broker.port, "batch", "4M")["garbage_per_batch"])
            out[prefix + "_heap_after_boot"] = _after_boot(broker, mpy32, tmp / (prefix + "-boot"))
            out[prefix + "_min_heap_node"] = _min_heap(broker, mpy32, tmp / (prefix + "-min"),
                                                       lo_kb, hi_kb)
        budget = boards.load_board("esp32-devkitc")["gc_heap"]["budget_kb"] * 1024
        need = out["m32_min_heap_node"]
        out["m32_fits_budget"] = int(need is not None and need <= budget)
    return out


if __name__ == "__main__" and sys.implementation.name == "micropython":
    _mp_main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
