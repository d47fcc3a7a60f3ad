# Stand-in for the ESP32 `network` module: a WLAN station over the host's sockets.
# Access points are configured by the runner (`env.add_ap`); the link is "down" while the
# host file `env.link_file` contains "down", which is how a simulated outage is switched.
# Connecting takes simulated time (DHCP ~1.6 s, static IP ~0.8 s) on the board clock.

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


class _Env:
    def __init__(self):
        self.aps = {}          # ssid -> (password, rssi)
        self.link_file = None  # host path; "down" inside means no radio link
        self.clock = None      # the board clock (set by the runner); None: connect is instant
        self.mac = b"\x24\x0a\xc4\x00\x00\x01"
        self.ip = "127.0.0.1"
        self._checked = None   # virtual second of the last look at link_file
        self._up = True

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


class WLAN:
    def __init__(self, interface=STA_IF):
        self._if = interface
        self._active = False
        self._status = STAT_IDLE
        self._ssid = None
        self._static = None

    def active(self, value=None):
        if value is None:
            return self._active
        self._active = bool(value)
        if not self._active:
            self._status = STAT_IDLE
            self._ssid = None

    def connect(self, ssid=None, key=None, bssid=None):
        if not self._active:
            raise OSError("Wifi Not Started")
        self._ssid = None
        ap = env.aps.get(ssid)
        if ap is None or not env.link_up():
            self._status = STAT_NO_AP_FOUND
            return
        if ap[0] != (key or ""):
            self._status = STAT_WRONG_PASSWORD
            return
        if env.clock is not None:
            env.clock.sleep_ms(STATIC_MS if self._static else DHCP_MS)
        self._ssid = ssid
        self._status = STAT_GOT_IP

    def disconnect(self):
        self._ssid = None
        self._status = STAT_IDLE

    def isconnected(self):
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
