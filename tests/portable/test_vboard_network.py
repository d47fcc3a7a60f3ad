# The WLAN stand-in: access points, wrong password, outages switched by a host file, RSSI,
# attempts that settle on the board clock with the previous failure still reported meanwhile
# (as the ESP32 port does), and slow name lookups.
import network
import vclock
import vsocket

LINK = "/tmp/laterne_vboard_link.tmp"


def setup():
    network.env.__init__()
    network.env.add_ap("lamp-net", "s3cret", rssi=-70)
    network.env.link_file = LINK
    network.env.clock = vclock.VClock()
    with open(LINK, "w") as f:
        f.write("up")


def wlan():
    w = network.WLAN(network.STA_IF)
    w.active(True)
    return w


def settle(w, ms=network.FAIL_MS):
    network.env.clock.sleep_ms(ms)
    return w.status()


def test_connect_takes_dhcp_time_and_reports_rssi():
    setup()
    w = wlan()
    w.connect("lamp-net", "s3cret")
    assert not w.isconnected() and w.status() == network.STAT_CONNECTING
    network.env.clock.sleep_ms(network.DHCP_MS - 1)
    assert not w.isconnected()
    network.env.clock.sleep_ms(1)
    assert w.isconnected()
    assert w.status() == network.STAT_GOT_IP
    assert w.status("rssi") == -70


def test_wrong_password_and_unknown_network():
    setup()
    w = wlan()
    w.connect("lamp-net", "nope")
    assert settle(w) == network.STAT_WRONG_PASSWORD and not w.isconnected()
    w.connect("other", "s3cret")
    assert settle(w) == network.STAT_NO_AP_FOUND


def test_previous_failure_is_reported_until_the_new_attempt_settles():
    setup()
    network.env.add_ap("second", "other-pass")
    w = wlan()
    w.connect("missing", "x")
    assert settle(w) == network.STAT_NO_AP_FOUND
    w.disconnect()
    w.connect("second", "other-pass")
    assert w.status() == network.STAT_NO_AP_FOUND     # stale: the first network's failure
    network.env.clock.sleep_ms(network.DHCP_MS)
    assert w.isconnected() and w.status() == network.STAT_GOT_IP


def test_outage_drops_the_link_and_blocks_reconnect_until_restored():
    setup()
    w = wlan()
    w.connect("lamp-net", "s3cret")
    settle(w)
    assert w.isconnected()
    with open(LINK, "w") as f:
        f.write("down")
    network.env.clock.sleep_ms(1000)  # the switch is looked at once a virtual second
    assert not w.isconnected()
    w.connect("lamp-net", "s3cret")
    settle(w)
    assert not w.isconnected()
    with open(LINK, "w") as f:
        f.write("up")
    network.env.clock.sleep_ms(1000)
    w.connect("lamp-net", "s3cret")
    settle(w)
    assert w.isconnected()


def test_inactive_interface_refuses_to_connect():
    setup()
    w = network.WLAN(network.STA_IF)
    try:
        w.connect("lamp-net", "s3cret")
    except OSError:
        return
    raise AssertionError("connect on an inactive interface must fail")


def test_name_lookups_take_the_configured_time():
    setup()
    clock = network.env.clock
    vsocket.getaddrinfo("127.0.0.1", 80)
    assert clock.ticks_ms() == 0
    network.env.dns_ms = 7000
    ai = vsocket.getaddrinfo("127.0.0.1", 80)
    assert clock.ticks_ms() == 7000 and ai[0][-1]
