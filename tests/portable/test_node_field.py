# Field failures the unix port used to hide (issue 10), on the real Node, Uplink and Platform
# with the virtual board's clock, radio and sensor: CONNACK refusals, messages the node cannot
# take, reconnects through the backoff, long uptimes on 31-bit ticks, Wi-Fi's stale status and
# the connect path under the watchdog. They run on CPython, MicroPython and the 32-bit build.
import machine
import network
import vclock
import vsocket
from laterne import mqtt, net, node, timebase

import nodekit

RC_NAMES = ("unacceptable protocol version", "identifier rejected", "server unavailable",
            "bad user name or password", "not authorized")


def boot(clock=None, cfg=None, **over):
    root = nodekit.fresh_root()
    clock = nodekit.power_on(root, clock=clock)
    hw = nodekit.Board(root, clock)
    logs = []
    n = node.Node(hw, cfg or nodekit.node_config(**over), "config", root, log=logs.append)
    return n, hw, logs


def broker_cfg(b, **over):
    return nodekit.node_config(broker={"host": "127.0.0.1", "port": b.port}, **over)


def test_every_connack_refusal_is_named_in_status_and_log():
    for rc in range(1, 6):
        b = nodekit.ScriptedBroker(connack=bytes((0x20, 2, 0, rc)))
        try:
            n, hw, logs = boot(vclock.VClock(scale=100), broker_cfg(b))
            assert not n.upload()
            err = n.health()["last_error"]
            assert err.startswith("MQTTRefused") and RC_NAMES[rc - 1] in err, err
            assert "(%d)" % rc in err
            assert any(RC_NAMES[rc - 1] in line for line in logs), logs
        finally:
            b.close()


def test_oversized_retained_config_set_is_answered_and_skipped():
    big = mqtt.encode_publish("laterne/lamp-t/config/set", b'{"set":{"x":"' + b"y" * 6000 + b'"}}',
                              1, True, 9)
    b = nodekit.ScriptedBroker(after_subscribe=big)
    try:
        n, hw, logs = boot(vclock.VClock(scale=100), broker_cfg(b))
        assert n.upload()
        for _ in range(5):
            n.service(200)
        assert n.uplink.is_up() and len(b.links) == 1, n.uplink.last_error
        assert b"\x40\x02\x00\x09" in b.links[0]  # PUBACK: the broker does not resend it
        results = b.wait_published("config/result")
        assert len(results) == 1 and b'"id": null' in results[0], results
        assert b'"ok": false' in results[0] and b"exceeds 2048 bytes" in results[0]
    finally:
        b.close()


def test_reconnects_after_protocol_failures_go_through_the_backoff():
    b = nodekit.ScriptedBroker()
    try:
        root = nodekit.fresh_root()
        clock = nodekit.power_on(root, clock=vclock.VClock(scale=100))
        hw = nodekit.Board(root, clock)
        hw.random = lambda: 0.99  # the top of each jitter window
        n = node.Node(hw, broker_cfg(b, backoff_min_s=2, backoff_max_s=600), "config", root,
                      log=lambda m: None)
        waits = []
        for k in range(4):
            assert n.upload(), n.uplink.last_error
            b.push(b"\xf0\x00")  # not MQTT: the link is dropped right after a good connect
            for _ in range(50):
                n.service(100)
                if not n.uplink.is_up():
                    break
            assert not n.uplink.is_up()
            links = len(b.links)
            assert not n.uplink.ensure() and len(b.links) == links  # no reconnect at once
            wait = n.uplink.retry_after - clock.time()
            waits.append(wait)
            clock.sleep(wait + 1)
        assert waits == [1, 3, 7, 15], waits  # int(0.99 * 2 * 2**k): the backoff grows
    finally:
        b.close()


class UntilDay(nodekit.Board):
    """Stops the node's endless loop (from the watchdog feed) once `days` have passed."""
    days = 8

    def feed(self):
        if self.clock.now_us() > self.days * 86400 * 1000000:
            raise StopIteration
        nodekit.Board.feed(self)


def run_days(n):
    try:
        n.run()
    except StopIteration:
        pass


def test_a_week_of_safe_mode_and_eight_days_of_uptime_on_31_bit_ticks():
    root = nodekit.fresh_root()
    clock = nodekit.power_on(root)
    cfg = node.safe_mode_config(nodekit.node_config(safe_mode={"safe_s": 604800}))
    n = node.Node(UntilDay(root, clock), cfg, "config", root, log=lambda m: None)
    n.safe_mode = "crash loop"
    e = None
    try:
        run_days(n)
    except machine.BoardReset as reset:
        e = reset
    assert e is not None and e.cause == machine.HARD_RESET, "safe mode must end by a reset"
    assert 604801 <= clock.now_us() // 1000000 <= 604801 + 31
    # the same node not in safe mode, past 8 days (2**29 ms is 6.2 days)
    root = nodekit.fresh_root()
    clock = nodekit.power_on(root)
    cfg = node.safe_mode_config(nodekit.node_config())
    n = node.Node(UntilDay(root, clock), cfg, "config", root, log=lambda m: None)
    run_days(n)
    h = n.health()
    assert 8 * 86400 <= h["uptime_s"] <= 8 * 86400 + 31, h["uptime_s"]
    sampled = h["spool_depth"] + h["dropped"]  # the spool holds 64 KB: old ones are dropped
    assert 8 * 86400 // 600 <= sampled <= 8 * 86400 // 600 + 1, sampled  # one per 10 minutes


def test_second_network_is_joined_despite_the_first_ones_stale_failure():
    root = nodekit.fresh_root()
    clock = nodekit.power_on(root, aps=(("second", "second-pass"),))
    hw = nodekit.Board(root, clock)
    hw.wifi.connect([{"ssid": "first", "password": "first-pass"},
                     {"ssid": "second", "password": "second-pass"}], None, 15000)
    assert hw.wifi.isconnected() and hw.wifi.wlan.config("ssid") == "second"


def test_slow_dns_never_starves_the_watchdog():
    """NTP servers and the broker behind a DNS that takes 25 s a lookup: the connect path
    stays inside its budget and feeds the 120 s watchdog between phases."""
    b = nodekit.ScriptedBroker()
    ntp = nodekit.NtpServer()  # answers "not synchronised": the next server is asked
    saved = net.socket, timebase.socket
    net.socket = timebase.socket = vsocket
    try:
        cfg = broker_cfg(b, ntp_servers=[ntp.server()] * 4)
        n, hw, logs = boot(vclock.VClock(scale=100), cfg)
        network.env.dns_ms = 25000
        hw.arm_watchdog(120000)
        start = hw.clock.ticks_ms()
        assert n.uplink.ensure(), n.uplink.last_error  # a watchdog reset would raise here
        took = hw.clock.ticks_diff(hw.clock.ticks_ms(), start)
        assert took <= 110000, took
        assert any("ntp: skipped" in line for line in logs), logs
        assert n.upload() and ntp.queries == 2
    finally:
        net.socket, timebase.socket = saved
        network.env.dns_ms = 0
        ntp.close()
        b.close()
