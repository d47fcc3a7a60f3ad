# The fleet monitor: a paho-mqtt client on <prefix>/+/readings and <prefix>/+/status feeding
# FleetState, with a live table, JSON lines or a CSV of readings as output. Connection problems
# (bad URL, unreachable broker, TLS, credentials) become UserErrors with a hint.
import queue
import socket
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

from host_tools.errors import UserError
from host_tools.fleet.csvrows import ReadingCsv
from host_tools.fleet.state import FleetState
from host_tools.fleet.view import CLEAR, json_line, render_table

CONNECT_TIMEOUT = 10.0
URL_HINT = "use mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS), e.g. mqtt://192.168.1.10:1883"


def parse_broker_url(url):
    """(host, port, tls, username) from mqtt://[user@]HOST[:PORT] or mqtts://..."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        raise UserError("broker URL is not valid", URL_HINT)
    if u.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not u.hostname:
        raise UserError("broker URL must start with mqtt:// or mqtts:// and name a host", URL_HINT)
    if u.password:
        raise UserError("the broker URL contains a password",
                        "put the password in the LATERNE_MQTT_PASSWORD environment variable, "
                        "never on the command line")
    if u.path not in ("", "/"):
        raise UserError("broker URL must not have a path", URL_HINT)
    tls = u.scheme in ("mqtts", "ssl")
    return u.hostname, port or (8883 if tls else 1883), tls, u.username


def check_prefix(prefix):
    if not prefix or any(c in prefix for c in "+#") or prefix[0] == "/" or prefix[-1] == "/":
        raise UserError("topic prefix %r is not usable" % prefix,
                        "use plain topic levels without wildcards, e.g. laterne or city/laterne")
    return prefix


class Connection:
    """paho client subscribed to the fleet topics; messages arrive in `self.inbox`.
    The ingest passes `filters` (topic filters), `persistent` (a session the broker keeps, with
    PUBACKs sent by the caller: client.ack) and `handler` (called with each paho message)."""

    def __init__(self, url, prefix, username=None, password=None, cafile=None,
                 client_id=None, filters=None, persistent=False, handler=None):
        import paho.mqtt.client as mqtt
        self.host, self.port, tls, url_user = parse_broker_url(url)
        self.where = "%s:%d" % (self.host, self.port)
        self.prefix = check_prefix(prefix)
        self.filters = filters or [self.prefix + "/+/readings", self.prefix + "/+/status"]
        self.inbox = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.refused = None
        self.up = False
        self.connects = 0  # successful connections so far (a reconnect counts)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=client_id or "laterne-monitor-%d" % id(self),
                                  clean_session=not persistent, manual_ack=persistent)
        user = username or url_user
        if user:
            self.client.username_pw_set(user, password)
        if tls or cafile:
            try:
                self.client.tls_set(ca_certs=cafile)
            except (OSError, ssl.SSLError) as e:
                raise UserError("cannot use the CA file %s: %s" % (cafile, e),
                                "pass the broker's CA certificate (PEM) with --cafile")
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subscribed.set()
        self.client.on_message = (lambda c, u, msg: handler(msg)) if handler else (
            lambda c, u, msg: self.inbox.put((msg.topic, msg.payload)))
        self.client.reconnect_delay_set(1, 30)

    def _on_connect(self, client, userdata, flags, reason, props):
        if reason.is_failure:
            self.refused = str(reason)
            self.connected.set()
            return
        self.up = True
        self.connects += 1
        # always: a broker that lost its state lost our subscriptions with it
        client.subscribe([(f, 1) for f in self.filters])
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason, props):
        self.up = False

    def open(self, timeout=CONNECT_TIMEOUT):
        try:
            self.client.connect(self.host, self.port, keepalive=30)
        except ssl.SSLCertVerificationError as e:
            raise UserError("TLS certificate of %s not trusted: %s"
                            % (self.where, e.verify_message),
                            "pass the CA that signed the broker's certificate with --cafile")
        except ssl.SSLError as e:
            raise UserError("TLS handshake with %s failed: %s" % (self.where, e.reason or e),
                            "check that the port speaks TLS (mqtts, usually 8883) and --cafile")
        except socket.gaierror:
            raise UserError("broker host %s not found" % self.host,
                            "check the host name in --broker and the network connection")
        except (OSError, socket.timeout) as e:
            raise UserError("cannot reach the broker at %s: %s" % (self.where, e.strerror or e),
                            "check that the broker runs, the port is right (1883 plain, 8883 "
                            "TLS) and no firewall blocks it")
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.close()
            raise UserError("no MQTT answer from %s within %ds" % (self.where, timeout),
                            "is this an MQTT port? for TLS use mqtts://")
        if self.refused:
            self.close()
            raise UserError("the broker at %s refused the connection: %s"
                            % (self.where, self.refused),
                            "check --username and the LATERNE_MQTT_PASSWORD environment variable")
        self.subscribed.wait(timeout)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


class Output:
    """Where updates go: JSON lines, an in-place table (TTY) or a table now and then."""

    def __init__(self, state, stream, as_json=False, color=None, every=10.0, live=True):
        self.state, self.stream, self.as_json, self.live = state, stream, as_json, live
        self.tty = stream.isatty() if color is None else color
        self.every = 1.0 if self.tty else every
        self.last_draw = None
        self.dirty = True
        self.states = {}

    def events(self, events):
        if events:
            self.dirty = True
        if self.as_json:
            for e in events:
                self.stream.write(json_line(e) + "\n")
            self.stream.flush()

    def tick(self, now, header, final=False):
        rows = self.state.table(now)
        if self.as_json:  # report state changes (stale, offline, back online) as events
            for r in rows:
                if self.states.get(r["node"]) != r["state"]:
                    self.states[r["node"]] = r["state"]
                    self.stream.write(json_line({"type": "state", "node": r["node"],
                                                 "state": r["state"]}) + "\n")
            self.stream.flush()
            return
        due = self.live and (self.last_draw is None or now - self.last_draw >= self.every)
        if not (final or (due and (self.dirty or self.tty))):
            return
        text = render_table(rows, color=self.tty, header=header)
        redraw = self.tty and self.last_draw is not None
        self.stream.write((CLEAR if redraw or (self.tty and not final) else "") + text + "\n")
        if not self.tty:
            self.stream.write("\n")
        self.stream.flush()
        self.last_draw, self.dirty = now, False


def run_monitor(broker, prefix="laterne", as_json=False, csv_path=None, stale_after=900,
                once=False, duration=None, username=None, password=None, cafile=None,
                stream=None, clock=time.time, settle=2.0):
    """Watch the fleet. Returns the exit code: with once/duration, 1 when a node is stale or
    offline or none was seen, else 0."""
    stream = stream or sys.stdout
    state = FleetState(check_prefix(prefix), stale_after)
    try:
        writer = ReadingCsv(csv_path) if csv_path else None
    except (OSError, ValueError) as e:
        raise UserError("cannot write the CSV file: %s" % e,
                        "pass a new file name or an earlier laterne monitor CSV with --csv")
    try:
        conn = Connection(broker, prefix, username, password, cafile)
        conn.open()
    except BaseException:
        if writer:
            writer.close()
        raise
    out = Output(state, stream, as_json, live=not once)
    start = clock()
    end = start + settle if once else (start + duration if duration else None)
    quiet_since = clock()
    try:
        while True:
            now = clock()
            if end is not None and now >= end:
                break
            try:
                topic, payload = conn.inbox.get(timeout=0.2)
            except queue.Empty:
                if once and now - quiet_since > 0.5 and state.nodes:
                    break  # retained statuses and queued messages have arrived
            else:
                quiet_since = clock()
                events = state.update(topic, payload, clock())
                if writer:
                    for e in events:
                        if e["type"] == "reading":
                            writer.add(e)
                    writer.flush()
                out.events(events)
            out.tick(clock(), _header(conn, state))
        now = clock()
        out.tick(now, _header(conn, state), final=True)
    finally:
        conn.close()
        if writer:
            writer.close()
    if once or duration:
        rows = state.table(now)
        return 0 if rows and all(r["state"] == "online" for r in rows) else 1
    return 0


def _header(conn, state):
    link = "connected" if conn.up else "reconnecting"
    extra = ""
    if state.garbage or state.bad_rows:
        extra = ", %d unreadable message(s) ignored" % (state.garbage + state.bad_rows)
    return "broker %s (%s), %d node(s)%s" % (conn.where, link, len(state.nodes), extra)
