# The node scenario of a field node's life, on one virtual node against a real broker: boot
# from a config like a field node's with a 7-day backlog in the spool (10,080 readings), drain
# it, take a remote config/set, publish status, live through a broker outage and a power cut.
# The outage is the broker going away behind a proxy (links closed, connections refused): a
# restarted mosquitto would itself lose messages it had acknowledged, which is not the node's
# loss to count.
# Used by tests/system/test_node_heap.py (the 32-bit build at the board's budget) and by
# bench/bench_heap.py (which bisects the heap it passes in). `run()` raises ScenarioFailed with
# what went wrong; it returns the facts a test or the bench looks at.
#
# Rerun it on other firmware by hand, e.g. with 80 KB on the 32-bit build:
#   .venv/bin/python -c "import sys; sys.path.insert(0, 'tests/kit'); import node_scenario as s;
#                        print(s.run_with_broker('build/scenario', mpy32=True, heap='80k'))"
import json
import random
import shutil
import time
from pathlib import Path

from mqtt_helpers import Proxy
from virtual_fleet import Collector, Fleet

NODE = "lamp-001"
BACKLOG = 7 * 24 * 60  # a week of readings at one a minute
# What a field node's config.json holds on top of the simulator's (sim.node_config): a site,
# two networks, broker credentials, the default intervals and a keepalive of a minute.
FIELD_CONFIG = {
    "site": {"lamp_post": "LP-0417", "lat": 52.5201, "lon": 13.4049,
             "notes": "corner of Kastanienallee, north side"},
    "wifi": [{"ssid": "city-iot-backup", "password": "another-long-secret"},
             {"ssid": "laterne-sim", "password": "street-lamp-sim"}],
    "broker_extra": {"username": "lamp-017", "password": "a-broker-secret-of-32-characters",
                     "keepalive_s": 60},
    "sample_interval_s": 60, "upload_interval_s": 300, "status_interval_s": 900,
    "batch_size": 50, "backoff_min_s": 2, "backoff_max_s": 600,
}


class ScenarioFailed(AssertionError):
    pass


def field_config():
    cfg = {k: v for k, v in FIELD_CONFIG.items() if k != "broker_extra"}
    cfg["broker"] = dict(FIELD_CONFIG["broker_extra"])
    return cfg


def _wait(what, predicate, timeout, fleet, strict=True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if fleet.proc.poll() is not None:
            raise ScenarioFailed("laterne sim ended while waiting for %s" % what)
        console = fleet.console(NODE)
        for sign in ("Traceback", "MemoryError") if strict else ("Traceback",):
            if sign in console:  # crashed (or short of heap): no use waiting
                raise ScenarioFailed("%s while we waited for %s:\n%s" % (
                    sign, what, console[console.index(sign) - 200:][:1500]))
        time.sleep(0.1)
    raise ScenarioFailed("timed out after %d s waiting for %s" % (timeout, what))


def run(workdir, broker, mpy32=True, heap=None, backlog=BACKLOG, timeout=240, extra=(),
        strict=True, config=None):
    """The scenario against `broker` (a host_tools.broker.Broker), the node configured with
    `config` (default field_config()). Returns {"seqs", "statuses", "results", "heap",
    "console", "memory_errors"}; raises ScenarioFailed. Not strict: running short of heap is
    allowed (it must cost no reading and no crash)."""
    workdir = Path(workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "field.json").write_text(json.dumps(config or field_config()))
    # a topic prefix of its own: a broker kept across runs (the bench's bisection) still
    # holds the retained status of the run before
    prefix = "scenario-%08x" % random.getrandbits(32)
    args = ["--skip-idle", "--preload", str(backlog), "--config", str(workdir / "field.json"),
            "--sample-interval", "60", "--upload-interval", "300", "--prefix", prefix]
    args += list(extra)
    if mpy32:
        args.append("--mpy32")
    if heap is not None:
        args += ["--heap", str(heap)]
    collector = Collector(broker.port, prefix)
    proxy = Proxy(broker.port)
    fleet = Fleet(workdir / "state", "mqtt://127.0.0.1:%d" % proxy.port, 1, args)

    def seqs():
        return collector.seqs(NODE)

    def statuses():
        with collector.lock:
            return list(collector.status.get(NODE, []))

    def online_after(boots):
        return [s for s in statuses() if s.get("online") and s.get("boot", 0) > boots]

    try:
        _wait("the backlog of %d readings" % backlog, lambda: len(seqs()) >= backlog, timeout,
              fleet, strict)
        _wait("a status saying the spool is drained",
              lambda: any(s.get("spool_depth") == 0 for s in statuses()), 60, fleet, strict)
        collector.publish("%s/%s/config/set" % (prefix, NODE), json.dumps(
            {"id": "scenario", "set": {"sample_interval_s": 120, "sensor": {"iir": 4}}}))
        _wait("the config/result", lambda: collector.results, 60, fleet, strict)
        top = max(seqs())
        proxy.cut()  # outage: the node samples on, its backlog grows
        time.sleep(2)
        proxy.restore()
        _wait("readings sampled during the outage", lambda: max(seqs()) >= top + 5, 120, fleet,
              strict)
        boots = max(s.get("boot", 0) for s in statuses())
        top = max(seqs())
        fleet.power_cut(NODE)
        _wait("the node online after the power cut", lambda: online_after(boots), 60, fleet,
              strict)
        _wait("readings after the power cut", lambda: max(seqs()) >= top + 3, 60, fleet, strict)
        _wait("the spool drained after the power cut",
              lambda: any(x.get("spool_depth") == 0 for x in online_after(boots)), 60, fleet,
              strict)
    finally:
        fleet.stop()
        collector.stop()
        proxy.close()
    out = {"seqs": seqs(), "statuses": statuses(), "results": list(collector.results),
           "console": fleet.console(NODE)}
    heap_file = workdir / "state" / NODE / "heap.json"
    out["heap"] = json.loads(heap_file.read_text()) if heap_file.exists() else None
    out["memory_errors"] = max([x.get("memory_errors") or 0 for x in out["statuses"]] or [0])
    _check(out, strict)
    return out


def _check(out, strict=True):
    s = out["seqs"]
    if s != list(range(1, s[-1] + 1)):
        missing = sorted(set(range(1, s[-1] + 1)) - set(s))
        raise ScenarioFailed("readings lost: %d seqs missing, first %s" % (len(missing),
                                                                           missing[:10]))
    result = out["results"][0]
    short = not strict and "memory" in str(result.get("errors"))  # refused, with the reason
    if not (result.get("id") == "scenario" and (result.get("ok") is True or short)):
        raise ScenarioFailed("config/set not applied: %s" % result)
    if "Traceback" in out["console"]:
        raise ScenarioFailed("the node crashed: %s" % out["console"][-1500:])
    if strict and (out["memory_errors"] or "MemoryError" in out["console"]):
        raise ScenarioFailed("the node ran short of memory: %d times" % out["memory_errors"])


def run_with_broker(workdir, **kwargs):
    """run() with a mosquitto of its own (for benches and reruns by hand)."""
    from host_tools.broker import Broker
    with Broker(kind="mosquitto") as broker:
        return run(workdir, broker, **kwargs)
