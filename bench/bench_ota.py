# Updates over the air, measured in this run:
# - ota_seconds_per_node, ota_trial_virtual_s, ota_bytes_per_node: a virtual fleet of 3 nodes
#   (mosquitto, time x30, upload every 120 s) takes a bundle in which every file changed, in
#   one wave: wall seconds from the offer to the node's verified switch (the transfer, which
#   virtual time does not speed up), virtual seconds from the switch to "healthy" (the trial),
#   and MQTT bytes of offer, requests and pieces per node; ota_bytes_per_node_delta the same
#   for the next update, in which only the version changed (the rest is copied on the node);
# - on build/mpy32 (the ESP32's object sizes and heap shape): the node's resident modules
#   (precompiled as deploy does) with its MQTT client and spool, then a whole update through
#   laterne.ota on littlefs. ota_heap_peak: the peak live heap, sampled after every message
#   and step; ota_heap_extra: what that adds to the live heap before the offer;
#   ota_import_bytes: importing laterne.ota, otaoffer and otagate; ota_heap_min_extra: the
#   -X heapsize budget the update needs beyond the idle node (bisected to 512 bytes, so
#   transients and fragmentation count); ota_fits_96k: 1 when the update completes at
#   -X heapsize=96k, the board's budget (it needs the idle node to fit there first:
#   ota_idle_min_heap, which includes the virtual board's flash stand-in).
# CPython side: measure(); the MicroPython side is _mp_main() of this very file.
import sys

# what a running node has imported (node and uplink bring the rest)
RESIDENT = ("laterne.node", "laterne.uplink", "laterne.config", "laterne.bme280",
            "laterne.bootguard")


def _mp_main(lib, work, mode):
    import gc
    import json
    import os
    import struct

    import blockdev
    import vclock
    import vfs
    sys.path.insert(0, lib)
    bd = blockdev.FileBlockDev(work + "/flash.img", 4096, 160)
    vfs.VfsLfs2.mkfs(bd)
    vfs.mount(vfs.VfsLfs2(bd), "/f")
    with open(work + "/offer.json") as f:
        offer = f.read()
    for name in RESIDENT:
        __import__(name)
    from laterne import mqttclient, spool
    clock = vclock.VClock()

    class Uplink:
        connects = 1
        client = mqttclient.MQTTClient("lamp-b", None, clock)  # its 4 KB receive buffer
        sent = []

        def is_up(self):
            return True

        def topic(self, leaf):
            return "laterne/lamp-b/" + leaf

        def publish(self, leaf, message, retain=False, qos=0):
            self.sent.append(message)

        def close(self):
            pass

    Uplink.client.subscribe = lambda topic, qos: qos

    class Reset(BaseException):
        pass

    class Hw:
        def reset(self):
            raise Reset()

    class Node:
        root = "/f/"
        node_id = "lamp-b"
        ota_state = None
        updater = None
        cfg = {"upload_interval_s": 300, "sample_interval_s": 60, "power_mode": "always_on"}

        def __init__(self):
            self.clock = clock
            self.spool = spool.Spool("/f/", 65536)
            self.uplink = Uplink()
            self.hw = Hw()

        def publish_status(self):
            pass

        def log(self, line):
            pass

    with open("/f/ota.key", "w") as f:
        f.write(json.loads(offer)["key"])
    node = Node()
    gc.collect()
    before = gc.mem_alloc()
    peak = before
    if mode == "update":
        from laterne import ota, otagate, otaoffer  # noqa: F401 (what an offer imports)
        gc.collect()
        imported = gc.mem_alloc() - before
        del otaoffer  # (as laterne.ota drops it after each offer)
        otagate.drop("otaoffer")
        node.updater = ota.Updater(node)
        node.updater.on_message("laterne/lamp-b/ota/offer", json.loads(offer)["offer"])
        switched = False
        while not switched:
            gc.collect()
            peak = max(peak, gc.mem_alloc())
            try:
                node.updater.pump()
            except Reset:
                switched = True
            sent = node.uplink.sent
            while sent:
                req = json.loads(sent.pop(0))
                with open(work + "/files/%d" % req["file"], "rb") as f:
                    f.seek(req["offset"])
                    piece = f.read(req["size"])
                head = bytes.fromhex(req["offer"]) + struct.pack(">HI", req["file"], req["offset"])
                gc.collect()
                peak = max(peak, gc.mem_alloc())
                node.updater.on_message("laterne/lamp-b/ota/chunk", head + piece)
        print("RESULT " + json.dumps({"before": before, "peak": peak, "import": imported}))
    else:
        print("RESULT " + json.dumps({"before": before, "peak": peak}))


if sys.implementation.name == "micropython":
    _mp_main(*sys.argv[1:4])
else:
    import json
    import shutil
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    from host_tools import paths
    from host_tools.broker import Broker

    sys.path.insert(0, str(paths.REPO / "tests" / "kit"))
    from virtual_fleet import Fleet  # noqa: E402

    SCALE = 30

    def _bundle(tmp, version, source):
        from host_tools.ota import bundle
        return bundle.build(Path(tmp) / ("b-%s.zip" % version), source, version)

    def _changed_firmware(tmp):
        """A firmware copy in which every compiled file differs from the factory app's (as the
        OTA fleet tests make it: tests/kit/ota_fleet.py)."""
        sys.path.insert(0, str(paths.REPO / "tests" / "kit"))
        from ota_fleet import every_file_changed
        fw = Path(tmp) / "fw"
        shutil.copytree(paths.FIRMWARE, fw, ignore=shutil.ignore_patterns("__pycache__"))
        every_file_changed(fw / "lib")
        return fw

    def _push(broker, b, master, nodes):
        from host_tools.ota.rollout import PushConnection, Rollout
        conn = PushConnection(broker.url, "laterne")
        conn.open()
        try:
            r = Rollout(conn, b, master, timeout=300)
            r.discover()
            assert r.run(r.plan(nodes, "100%")), {n: t.outcome for n, t in r.targets.items()}
            return list(r.targets.values())
        finally:
            conn.close()

    def fleet_figures():
        from host_tools.ota import keys
        with tempfile.TemporaryDirectory() as tmp, Broker(kind="mosquitto") as broker:
            fw = _changed_firmware(tmp)
            full, delta = _bundle(tmp, "0.2.0", fw), _bundle(tmp, "0.2.1", fw)
            key_file = Path(tmp) / "keys.json"
            fleet = Fleet(Path(tmp) / "state", broker.url, 3,
                          ["--time-scale", str(SCALE), "--sample-interval", "60",
                           "--upload-interval", "120", "--keys", key_file])
            try:
                deadline = time.monotonic() + 60
                while not key_file.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                master = keys.load(key_file)
                nodes = ["lamp-%03d" % i for i in (1, 2, 3)]
                time.sleep(5)  # every node booted and published its status
                first = _push(broker, full, master, nodes)
                second = _push(broker, delta, master, nodes)
            finally:
                fleet.stop()
        n = len(first)
        return {
            "ota_seconds_per_node": round(sum(t.times["switching"] - t.offered_at
                                              for t in first) / n, 2),
            "ota_trial_virtual_s": round(sum(t.times["ok"] - t.times["switching"]
                                             for t in first) / n * SCALE),
            "ota_bytes_per_node": sum(t.bytes for t in first) // n,
            "ota_bytes_per_node_delta": sum(t.bytes for t in second) // n,
            "ota_bundle_bytes": full.size(),
        }

    def _heap_run(work, heap, mode):
        exe = paths.micropython32_exe()
        proc = subprocess.run([exe, "-X", "heapsize=%d" % heap, __file__, str(work / "lib"),
                               str(work), mode], env=paths.micropython_env(),
                              capture_output=True, text=True, timeout=300)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        if "MemoryError" not in proc.stdout + proc.stderr:
            raise RuntimeError("heap scenario failed:\n" + proc.stdout[-2000:] + proc.stderr[-2000:])
        return None  # did not fit

    def _min_heap(work, mode, lo=32 * 1024, hi=256 * 1024):
        while hi - lo > 512:
            mid = (lo + hi) // 2
            if _heap_run(work, mid, mode) is None:
                lo = mid
            else:
                hi = mid
        return hi

    def heap_figures():
        from host_tools.ota import bundle, keys
        from host_tools.usb import deploy
        exe = paths.micropython32_exe()
        mpy = int(subprocess.run([exe, "-c", "import sys; print(sys.implementation._mpy)"],
                                 capture_output=True, text=True, check=True).stdout)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            for name, data in deploy.build(paths.FIRMWARE, {"mpy": mpy}).items():
                if name.startswith("/lib/"):
                    (work / name[1:]).parent.mkdir(parents=True, exist_ok=True)
                    (work / name[1:]).write_bytes(data)
            b = _bundle(tmp, "0.2.0", _changed_firmware(tmp))
            (work / "files").mkdir()
            for i, (name, _size, _sha) in enumerate(b.files):
                (work / "files" / str(i)).write_bytes(b.data[name])
            master = b"\x07" * 32
            key = keys.node_key(master, "lamp-b")
            (work / "offer.json").write_text(json.dumps(
                {"offer": bundle.offer(b, "lamp-b", key, "0a0b0c0d"), "key": key.hex()}))
            run = _heap_run(work, 256 * 1024, "update")
            idle = _min_heap(work, "idle")
            extra = _min_heap(work, "update") - idle
            fits = _heap_run(work, 96 * 1024, "update") is not None
        return {"ota_heap_peak": run["peak"], "ota_heap_extra": run["peak"] - run["before"],
                "ota_import_bytes": run["import"], "ota_heap_min_extra": extra,
                "ota_idle_min_heap": idle, "ota_fits_96k": int(fits)}

    def measure():
        out = heap_figures()
        out.update(fleet_figures())
        return out
