# The WLAN stand-in: access points, wrong password, outages switched by a host file, RSSI.
import network
import vclock

LINK = "/tmp/laterne_vboard_link.tmp"


def setup():
    network.env.__init__()
    network.env.add_ap("lamp-net", "s3cret", rssi=-70)
    network.env.link_file = LINK
    network.env.clock = vclock.VClock()
    with open(LINK, "w") as f:
        f.write("up")


def test_connect_takes_dhcp_time_and_reports_rssi():
    setup()
    w = network.WLAN(network.STA_IF)
    w.active(True)
    w.connect("lamp-net", "s3cret")
    assert w.isconnected()
    assert w.status() == network.STAT_GOT_IP
    assert w.status("rssi") == -70
    assert network.env.clock.ticks_ms() == network.DHCP_MS


def test_wrong_password_and_unknown_network():
    setup()
    w = network.WLAN(network.STA_IF)
    w.active(True)
    w.connect("lamp-net", "nope")
    assert not w.isconnected() and w.status() == network.STAT_WRONG_PASSWORD
    w.connect("other", "s3cret")
    assert w.status() == network.STAT_NO_AP_FOUND


def test_outage_drops_the_link_and_blocks_reconnect_until_restored():
    setup()
    w = network.WLAN(network.STA_IF)
    w.active(True)
    w.connect("lamp-net", "s3cret")
    with open(LINK, "w") as f:
        f.write("down")
    network.env.clock.sleep_ms(1000)  # the switch is looked at once a virtual second
    assert not w.isconnected()
    w.connect("lamp-net", "s3cret")
    assert not w.isconnected()
    with open(LINK, "w") as f:
        f.write("up")
    network.env.clock.sleep_ms(1000)
    w.connect("lamp-net", "s3cret")
    assert w.isconnected()


def test_inactive_interface_refuses_to_connect():
    setup()
    w = network.WLAN(network.STA_IF)
    try:
        w.connect("lamp-net", "s3cret")
    except OSError:
        return
    raise AssertionError("connect on an inactive interface must fail")
