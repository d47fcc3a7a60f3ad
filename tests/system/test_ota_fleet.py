# Updates over the air on the virtual fleet: the unmodified firmware on MicroPython against a
# real mosquitto, driven by the real `laterne ota build` and `laterne ota push`. A good update
# goes wave by wave without losing or delaying a reading, through power cuts during a
# download and a trial; broken bundles (failing at import, crashing, hanging, never
# uploading) roll the canary back by itself and halt the push; tampered, wrongly keyed and
# older offers are refused; deep-sleep nodes update over their wakes, through a broker outage
# mid-rollout.
import json
import time

import pytest

from ota_fleet import (Push, TimedCollector, Watch, build, edit, every_file_changed, laterne,
                       statuses, table, world_clock)
from virtual_fleet import Fleet, assert_no_gaps

SCALE = 30
FAST = ["--time-scale", str(SCALE), "--sample-interval", "60", "--upload-interval", "120"]
UPLOAD_S = 120


@pytest.fixture
def collector(broker):
    c = TimedCollector(broker.port)
    yield c
    c.stop()


def update(s):
    return s.get("update") or {}


def healthy(version):
    return lambda s: s.get("fw") == version and update(s).get("result") == "ok"


def wait_online(collector, nodes, timeout=90):
    collector.wait(lambda: all(statuses(collector, n) and collector.seqs(n) for n in nodes),
                   timeout, "every node online with readings")


def test_good_update_goes_wave_by_wave_and_loses_or_delays_no_reading(tmp_path, broker,
                                                                      collector):
    nodes = ["lamp-001", "lamp-002", "lamp-003"]
    keys = tmp_path / "keys.json"
    bundle = build(tmp_path, "0.2.0", every_file_changed)
    state = tmp_path / "state"
    fleet = Fleet(state, broker.url, 3, FAST + ["--keys", keys])
    cut = []

    def cut_mid_download(node, n):
        if node == "lamp-002" and n == 8 and not cut:
            cut.append(node)
            fleet.power_cut(node)

    watch = Watch(broker.port, on_get=cut_mid_download)
    try:
        wait_online(collector, nodes)
        push = Push(broker.url, bundle, keys, "--all", "--waves", "1,50%,100%", "--timeout", "150")
        collector.wait(lambda: any(update(s).get("result") == "trial"
                                   for s in statuses(collector, "lamp-003")), 150,
                       "lamp-003 on trial")
        fleet.power_cut("lamp-003")  # the trial goes on after the power comes back
        rc, out = push.wait(150)
        collector.wait(lambda: all(healthy("0.2.0")(statuses(collector, n)[-1]) for n in nodes),
                       30, "every node's last status healthy")
        monitor = laterne("monitor", "--broker", broker.url, "--once", timeout=60)
    finally:
        fleet.stop()
        watch.stop()
    assert rc == 0, out
    assert {n: r[0] for n, r in table(out).items()} == {n: "ok" for n in nodes}, out
    assert cut == ["lamp-002"], "the power was cut during lamp-002's download"
    assert fleet.console("lamp-002").count("update: fetching 0.2.0") == 2  # taken up again
    # wave by wave: a node is offered the update only after the one before is healthy
    for before, after in (("lamp-001", "lamp-002"), ("lamp-002", "lamp-003")):
        assert watch.offers(after)[0][0] > watch.first_status(before, healthy("0.2.0")), after
    for n in nodes:
        assert_no_gaps(collector.seqs(n))
        last = statuses(collector, n)[-1]
        assert last["fw_previous"] == "0.1.0"
        assert "0.2.0" in monitor.stdout.split(n)[1].splitlines()[0], monitor.stdout
    # no reading waited longer than one upload interval (plus the drain) on the canary
    world = world_clock(state, "lamp-001")
    delays = [world(host) - ts for (node, seq), (host, ts) in collector.first.items()
              if node == "lamp-001" and ts is not None]
    assert len(delays) > 10 and max(delays) <= UPLOAD_S + 10, max(delays)


def fails_at_import(lib):
    edit(lib / "node.py", "import os\n", "import os\nimport laterne_module_that_is_not_there\n")


def crashes_after_a_minute(lib):
    edit(lib / "node.py", "            self.hw.feed()\n            now = clock.ticks_ms()\n",
         "            self.hw.feed()\n            now = clock.ticks_ms()\n"
         "            if tb.uptime_s() > 60:\n"
         "                raise RuntimeError(\"this build crashes after a minute\")\n")


def hangs(lib):
    edit(lib / "node.py", "            self.hw.feed()\n            now = clock.ticks_ms()\n",
         "            self.hw.feed()\n            now = clock.ticks_ms()\n"
         "            while tb.uptime_s() > 30:\n"
         "                clock.sleep_ms(1000)  # stuck, and the watchdog is not fed\n")


def never_uploads(lib):
    edit(lib / "node.py", '        """Link up, drain the spool, report. Returns True when the spool was drained."""\n',
         '        """Link up, drain the spool, report. Returns True when the spool was drained."""\n'
         '        return False\n')


def test_broken_bundles_roll_the_canary_back_halt_the_push_and_reach_no_other_node(
        tmp_path, broker, collector):
    """With safe_mode.crashes at its minimum (2), the switch's reset plus a trial's crash
    would put a node into safe mode if the boot guard counted them: it must not."""
    nodes = ["lamp-001", "lamp-002", "lamp-003"]
    keys = tmp_path / "keys.json"
    patch = tmp_path / "patch.json"
    patch.write_text(json.dumps({"safe_mode": {"crashes": 2, "window_s": 3600, "safe_s": 600}}))
    bad = [("0.2.0", fails_at_import, "ImportError"),
           ("0.2.1", crashes_after_a_minute, "crashed"),
           ("0.2.2", hangs, "watchdog reset (hang)"),
           ("0.2.3", never_uploads, "no proof of health within 360 s")]
    bundles = [(v, build(tmp_path, v, patch_fn), why) for v, patch_fn, why in bad]
    good = build(tmp_path, "0.3.0", every_file_changed)  # nothing to copy: all is fetched
    older = build(tmp_path, "0.0.9")
    other_keys = tmp_path / "other-keys.json"
    from host_tools.ota import keys as ota_keys
    ota_keys.create(other_keys)  # the sim creates the fleet's; this one is foreign
    fleet = Fleet(tmp_path / "state", broker.url, 3, FAST + ["--keys", keys, "--config", patch])
    watch = Watch(broker.port)
    try:
        wait_online(collector, nodes)
        results = []
        for version, bundle, why in bundles:
            rc, out = Push(broker.url, bundle, keys, "--node", "lamp-001", "lamp-002",
                           "--waves", "1,100%", "--timeout", "120").wait(150)
            results.append((version, rc, out, why))
        # then refusals, all at once: a tampered file, a foreign key, an older version
        tampered = TamperedPush(broker.url, good, keys, "lamp-001")
        foreign = Push(broker.url, good, other_keys, "--node", "lamp-002", "--timeout", "60")
        old = Push(broker.url, older, keys, "--node", "lamp-003", "--timeout", "60")
        refusals = [tampered.wait(90), foreign.wait(90), old.wait(90)]
        top = {n: max(collector.seqs(n)) for n in nodes}
        collector.wait(lambda: all(max(collector.seqs(n)) >= top[n] + 2 for n in nodes), 60,
                       "readings after the refusals: every node kept running")
    finally:
        fleet.stop()
        watch.stop()
    for version, rc, out, why in results:
        rows = table(out)
        assert rc == 1, out
        assert rows["lamp-001"][0] == "rolled back" and why in rows["lamp-001"][1], out
        assert rows["lamp-002"][0] == "not offered", out
    assert "this build crashes after a minute" in results[1][2]  # from the crash report
    for n in ("lamp-002", "lamp-003"):  # no other node was offered or ran a broken build
        assert not any(o["version"].startswith("0.2.") for _, o in watch.offers(n))
        assert not any(s["fw"].startswith("0.2.") for s in statuses(collector, n))
    canary = statuses(collector, "lamp-001")
    assert {"0.2.0", "0.2.1", "0.2.2", "0.2.3"} <= {update(s).get("version") for s in canary}
    for n in nodes:  # a node in safe mode keeps its radio off: its console tells
        assert "safe mode" not in fleet.console(n), fleet.console(n)[-3000:]
    assert canary[-1]["fw"] == "0.1.0" and canary[-1]["fw_previous"] == "0.2.3"
    reasons = {}
    for rc, out in refusals:
        assert rc == 1, out
        reasons.update(table(out))
    assert reasons["lamp-001"][0] == "refused" and "does not match its SHA-256" in reasons["lamp-001"][1]
    assert reasons["lamp-002"][0] == "refused" and "wrong key" in reasons["lamp-002"][1]
    assert reasons["lamp-003"][0] == "refused" and "older than the running" in reasons["lamp-003"][1]
    for n in nodes:
        assert_no_gaps(collector.seqs(n))
        assert statuses(collector, n)[-1]["fw"] == "0.1.0"


class TamperedPush:
    """A push whose file data was altered after the manifest was signed (in transit, or on a
    compromised server): the offer is genuine, a file is not."""

    def __init__(self, broker_url, bundle_path, keys_path, node):
        import threading

        from host_tools.ota import bundle, keys
        from host_tools.ota.rollout import PushConnection, Rollout
        b = bundle.load(bundle_path)
        name = "laterne/node.mpy"
        b.data[name] = b.data[name][:-1] + bytes([b.data[name][-1] ^ 1])
        self.conn = PushConnection(broker_url, "laterne")
        self.conn.open()
        self.rollout = Rollout(self.conn, b, keys.load(keys_path), timeout=60)
        self.result = None

        def run():
            self.rollout.discover()
            self.result = self.rollout.run(self.rollout.plan([node], "100%"))
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait(self, timeout):
        from host_tools.ota import view
        self.thread.join(timeout)
        self.conn.close()
        assert not self.thread.is_alive(), "tampered push still running"
        return (0 if self.result else 1), view.render(self.rollout)


def test_deep_sleep_nodes_update_over_their_wakes_through_a_broker_outage(tmp_path, broker,
                                                                          collector):
    """The broker restarts (retained offers and statuses gone with it) while the second wave
    waits for its node's next wake: the push offers again, and the node takes it."""
    nodes = ["lamp-001", "lamp-002"]
    keys = tmp_path / "keys.json"
    bundle = build(tmp_path, "0.2.0", every_file_changed)
    fleet = Fleet(tmp_path / "state", broker.url, 2, [
        "--time-scale", str(SCALE), "--sample-interval", "60", "--upload-interval", "120",
        "--deep-sleep", "--keys", keys])
    watch = Watch(broker.port)
    fresh = None
    try:
        wait_online(collector, nodes)
        push = Push(broker.url, bundle, keys, "--all", "--waves", "1,100%", "--timeout", "240")
        deadline = time.monotonic() + 150
        while not watch.offers("lamp-002") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert watch.offers("lamp-002"), "the second wave was never offered"
        for n in nodes:  # the nodes find no broker either; their readings wait in the spool
            fleet.set_link(n, False)
        broker.stop()
        time.sleep(3)  # 90 virtual seconds
        broker.start()
        fresh = TimedCollector(broker.port)  # subscribed before any node is back
        fresh.wait(lambda: fresh.client.is_connected(), 10, "the new collector")
        for n in nodes:
            fleet.set_link(n, True)
        rc, out = push.wait(240)
        fresh.wait(lambda: all(healthy("0.2.0")(statuses(fresh, n)[-1]) for n in nodes if
                               statuses(fresh, n)), 30, "healthy statuses after the outage")
    finally:
        fleet.stop()
        watch.stop()
        if fresh is not None:
            fresh.stop()
    assert rc == 0, out
    assert {n: r[0] for n, r in table(out).items()} == {"lamp-001": "ok", "lamp-002": "ok"}, out
    assert len(watch.offers("lamp-002")) >= 2, "offered again after the broker restart"
    trial = [s for s in statuses(collector, "lamp-001") if update(s).get("result") == "trial"]
    assert "deep_sleep" in {s["reset_cause"] for s in trial}, "the trial went on over wakes"
    for n in nodes:
        assert_no_gaps(sorted(set(collector.seqs(n)) | set(fresh.seqs(n))))
        assert statuses(fresh, n)[-1]["fw"] == "0.2.0"
