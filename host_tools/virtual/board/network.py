# Stand-in for the ESP32 `network` module: a WLAN station over the host's sockets.
# Access points are configured by the runner (`env.add_ap`); the link is "down" while the
# host file `env.link_file` contains "down", which is how a simulated outage is switched.
# connect() returns at once and the attempt settles later on the board clock (DHCP ~1.6 s,
# static IP ~0.8 s, a failure after FAIL_MS); until then status() still reports the previous
# attempt's failure, as the ESP32 port does (network_wlan.c keeps wifi_sta_disconn_reason until
# the next Wi-Fi event). `env.dns_ms` makes every getaddrinfo take that long (see vsocket.py).

STA_IF = 0
AP_IF = 1
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
STAT_BEACON_TIMEOUT = 200
STAT_ASSOC_FAIL = 203
STAT_HANDSHAKE_TIMEOUT = 204
STAT_CONNECT_FAIL = 205

DHCP_MS = 1600
STATIC_MS = 800
FAIL_MS = 2500  # a scan that finds no AP, or a rejected handshake, ends the attempt


class _Env:
    def __init__(self):
        self.aps = {}          # ssid -> (password, rssi)
        self.link_file = None  # host path; "down" inside means no radio link
        self.clock = None      # the board clock (set by the runner); None: connect is instant
        self.mac = b"\x24\x0a\xc4\x00\x00\x01"
        self.ip = "127.0.0.1"
        self._checked = None   # virtual second of the last look at link_file
        self._up = True
        self.dns_ms = 0        # virtual ms each name lookup takes (a slow or dead DNS server)

    def add_ap(self, ssid, password, rssi=-62):
        self.aps[ssid] = (password, rssi)

    def link_up(self):
        if not self.link_file:
            return True
        # the firmware asks on every loop pass: read the switch file once a virtual second
        second = self.clock.ticks_ms() // 1000 if self.clock is not None else None
        if second is None or second != self._checked:
            self._checked = second
            try:
                with open(self.link_file) as f:
                    self._up = f.read().strip() != "down"
            except OSError:
                self._up = True
        return self._up


env = _Env()


def _now_ms():
    return env.clock.now_us() // 1000 if env.clock is not None else 0


class WLAN:
    def __init__(self, interface=STA_IF):
        self._if = interface
        self._active = False
        self._status = STAT_IDLE
        self._ssid = None
        self._static = None
        self._attempt = None   # (ssid, outcome status, virtual ms when it settles)

    def active(self, value=None):
        if value is None:
            return self._active
        self._active = bool(value)
        if not self._active:
            self._status = STAT_IDLE
            self._ssid = None
            self._attempt = None

    def connect(self, ssid=None, key=None, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = None
        ap = env.aps.get(ssid)
        if ap is None or not env.link_up():
            outcome, after = STAT_NO_AP_FOUND, FAIL_MS
        elif ap[0] != (key or ""):
            outcome, after = STAT_WRONG_PASSWORD, FAIL_MS
        else:
            outcome, after = STAT_GOT_IP, STATIC_MS if self._static else DHCP_MS
        self._attempt = (ssid, outcome, _now_ms() + after)
        if self._status in (STAT_IDLE, STAT_GOT_IP):
            self._status = STAT_CONNECTING  # no earlier failure to report meanwhile

    def _settle(self):
        a = self._attempt
        if a is not None and _now_ms() >= a[2]:
            self._attempt = None
            self._status = a[1]
            if a[1] == STAT_GOT_IP:
                self._ssid = a[0]

    def disconnect(self):
        # the failure of the last attempt stays visible (no new event yet)
        self._ssid = None
        self._attempt = None
        if self._status in (STAT_GOT_IP, STAT_CONNECTING):
            self._status = STAT_IDLE

    def isconnected(self):
        self._settle()
        if self._ssid is not None and not env.link_up():
            self._ssid = None
            self._status = STAT_BEACON_TIMEOUT
        return self._ssid is not None

    def status(self, param=None):
        if param == "rssi":
            if not self.isconnected():
                raise OSError("not connected")
            return env.aps[self._ssid][1]
        if param is not None:
            raise ValueError("unknown status param")
        self.isconnected()
        return self._status

    def scan(self):
        if not self._active or not env.link_up():
            return []
        return [(s.encode(), env.mac, 6, a[1], 3, False) for s, a in env.aps.items()]

    def config(self, *args, **kwargs):
        if args == ("mac",):
            return env.mac
        if args == ("ssid",):
            return self._ssid or ""
        if args:
            raise ValueError("unknown config param")

    def ifconfig(self, config=None):
        if config is not None:
            self._static = None if config == "dhcp" else tuple(config)
            return
        if self._static:
            return self._static
        return (env.ip if self.isconnected() else "0.0.0.0", "255.0.0.0", "127.0.0.1", "127.0.0.1")
