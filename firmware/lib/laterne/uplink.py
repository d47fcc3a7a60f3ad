# The node's way out: Wi-Fi, then the clock (NTP), then the MQTT session, each retried with
# exponential backoff and full jitter; never a reboot. `drain` sends the spool in batches with
# several QoS 1 messages in flight and releases readings only when their PUBACK arrived (with
# `delivery: "stored"` only once the ingest also reported them stored: laterne/delivery.py).
# The whole connect path is bounded and feeds the watchdog between its phases; the backoff is
# kept in RTC memory (deep sleep) and is reset only by a link that stayed up a while, so a
# broker that drops the node right after CONNACK does not get a reconnect storm.
from laterne import backoff, mqtt, mqttclient, net, payload, timebase

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Worst cases of each phase. getaddrinfo blocks up to ~7 s per DNS server and no socket
# timeout bounds it; TCP connect, TLS handshake, CONNACK and SUBACK get 10 s each.
_DNS_MS = const(8000)
_NTP_MS = const(11000)               # DNS + 3 s for the answer, per server
_MQTT_MS = const(48000)              # DNS + TCP + TLS + CONNACK + SUBACK
_CONNECT_BUDGET_MS = const(110000)   # the whole path; the watchdog (120 s) is fed between phases
_STABLE_LINK_MS = const(60000)       # a link that lived this long resets the backoff
RESYNC_S = const(3600)              # NTP again after this (the RTC drifts minutes a day asleep)
_NTP_RETRY_S = const(600)            # while NTP never answered, ask again this often
_SHORT = "drain: MemoryError, smaller batches"


class Uplink:
    def __init__(self, hw, cfg, node_id, clock_state, on_message, log, rand):
        self.hw = hw
        self.clock = hw.clock
        self.cfg = cfg
        self.node_id = node_id
        self.timebase = clock_state
        self.on_message = self._route     # the MQTT client's callback
        self._app_message = on_message
        self.delivery = None              # laterne.delivery.StoredDelivery in "stored" mode
        self.log = log
        self.backoff = backoff.Backoff(cfg["backoff_min_s"], cfg["backoff_max_s"], rand)
        self.backoff.attempt, self.retry_after = hw.load_backoff()  # device seconds
        self.mqtt = None          # the MQTT client, connected or not (none without Wi-Fi)
        self.client = None        # the same client while the session is up, else None
        self.up_since = None      # ticks_ms when the session came up
        self.ntp_tried = None     # uptime_s of the last NTP attempt
        self.state = "down"       # down | wifi | mqtt | up | off
        self.last_error = None
        self.connects = 0
        self.memory_errors = 0    # short of heap: a batch made smaller, a client not made
        self._tls = None          # the TLS context, made at the first TLS connect
        self._batch = payload.Batch(node_id, clock_state)  # the readings encoder
        if cfg["wifi"]:
            try:  # at boot, while the heap is still whole; short of it: at the first connect
                self._make_client()
            except MemoryError:
                self.memory_errors += 1

    def _make_client(self):
        # its buffers (an update offer's 3.9 KB among them) serve every reconnect, never freed
        broker = self.cfg["broker"]
        self.mqtt = mqttclient.MQTTClient(
            self.node_id, self._open_link, self.clock, keepalive_s=broker["keepalive_s"],
            user=broker["username"], password=broker["password"],
            will=(self.topic("status"), payload.will_json(self.node_id), True, 1),
            clean_session=True, timeout_ms=10000, max_inflight=8,
            on_message=self.on_message, buffer_size=self._packet_bytes())

    def topic(self, leaf):
        return payload.topic(self.cfg["topic_prefix"], self.node_id, leaf)

    # -- link management ---------------------------------------------------------------------
    def is_up(self):
        if self.client is not None and not self.hw.wifi.isconnected():
            self.drop("wifi lost")
        return self.client is not None

    def retry_in_ms(self):
        """How long until ensure() may try again (at least a second)."""
        if not self.cfg["wifi"]:
            return self.cfg["upload_interval_s"] * 1000
        wait = self.retry_after - self.clock.time()
        return max(1, min(wait, self.cfg["backoff_max_s"])) * 1000

    def ensure(self):
        """Bring the link up if the backoff allows an attempt now. Returns True when up."""
        if self.is_up():
            return True
        if not self.cfg["wifi"]:
            self.state = "off"  # no network configured, or safe mode: the radio stays off
            return False
        now = self.clock.time()
        if now < self.retry_after and self.retry_after - now <= self.cfg["backoff_max_s"]:
            return False
        try:
            self._connect()
        except Exception as e:  # every failure is a retry later, never a reboot
            self.drop(e)
            return False
        return True

    def _connect(self):
        cfg = self.cfg
        hw = self.hw
        clock = self.clock
        start = clock.ticks_ms()

        def left():
            return _CONNECT_BUDGET_MS - clock.ticks_diff(clock.ticks_ms(), start)

        self.state = "wifi"
        if not hw.wifi.isconnected():
            hw.wifi.connect(cfg["wifi"], cfg["static_ip"], 15000, hw.feed,
                            _CONNECT_BUDGET_MS - _MQTT_MS)
        hw.feed()
        if self.sync_due():
            self.sync_time(left)
        self.state = "mqtt"
        broker = cfg["broker"]
        ctx = None
        if broker["tls"]:
            if not self.timebase.synced() and hw.time_unix() < timebase.CLOCK_VALID_AFTER:
                # mbedtls checks certificate dates against the RTC, which reads 2000 now
                raise OSError("TLS waits for the clock: no NTP answer, no time floor on flash")
            if self._tls is None:
                self._tls = net.make_tls_context(broker["ca"])
            ctx = self._tls
        if left() < _MQTT_MS:
            raise OSError("connect time used up before the broker")

        if self.mqtt is None:
            self._make_client()
        client = self.mqtt
        try:
            client.connect()
        except Exception as e:
            if ctx is not None and not self.timebase.synced():
                raise OSError("%s: %s (checked against the clock floor: no NTP yet)"
                              % (type(e).__name__, e))
            raise
        hw.feed()
        self.client = client
        client.subscribe(self.topic("config/set"), 1)
        client.subscribe(self.topic("ota/offer"), 1)  # retained: waits for a sleeping node
        hw.feed()
        self.state = "up"
        self.up_since = clock.ticks_ms()
        self.connects += 1
        self.last_error = None

    def _open_link(self):
        broker = self.cfg["broker"]
        ctx = self._tls if broker["tls"] else None
        sock = net.open_socket(broker["host"], broker["port"], 10000, ctx,
                               broker["host"] if ctx else None)
        self.hw.feed()
        return sock

    def sync_due(self):
        """NTP is due: never answered (asked again every _NTP_RETRY_S) or older than RESYNC_S."""
        tb = self.timebase
        if tb.synced():
            return tb.now_unix() - tb.synced_at >= RESYNC_S
        return self.ntp_tried is None or tb.uptime_s() - self.ntp_tried >= _NTP_RETRY_S

    def sync_time(self, left=None):
        """Ask the configured NTP servers in turn; True when one answered. With `left`, stop
        while the connect budget still has room for the broker."""
        self.ntp_tried = self.timebase.uptime_s()
        for server in self.cfg["ntp_servers"]:
            if left is not None and left() < _NTP_MS + _MQTT_MS:
                self.log("ntp: skipped, the connect budget is used up")
                break
            host, port = server, 123
            if ":" in server:
                host, port = server.rsplit(":", 1)
                port = int(port)
            try:
                unix = timebase.ntp_query(host, self.clock, 3000, port)
            except Exception as e:
                self.log("ntp %s: %s" % (server, e))
                self.hw.feed()
                continue
            self.hw.feed()
            self.hw.set_time_unix(unix)
            self.timebase.mark_synced(unix)
            return True
        return False

    def clock_source(self):
        """What the node's time rests on: "ntp", "floor" (the RTC raised to the last time known
        on flash: good enough for TLS, not for timestamps) or "unset"."""
        if self.timebase.synced():
            return "ntp"
        return "floor" if self.hw.time_unix() >= timebase.CLOCK_VALID_AFTER else "unset"

    def drop(self, reason):
        """The link failed (or never came up): close it and schedule the next attempt."""
        if isinstance(reason, MemoryError):
            self.memory_errors += 1  # reported with the rest (status memory_errors)
        if self.client is not None:
            self.client.close()
            self.client = None
        self.state = "down"
        if self.up_since is not None and self.clock.ticks_diff(
                self.clock.ticks_ms(), self.up_since) >= _STABLE_LINK_MS:
            self.backoff.reset()
        self.up_since = None
        delay = int(self.backoff.next_delay())
        self.retry_after = self.clock.time() + delay
        self.hw.save_backoff(self.backoff.attempt, self.retry_after)
        if reason is not None:
            self.last_error = reason if isinstance(reason, str) else "%s: %s" % (
                type(reason).__name__, reason)
        self.log("uplink: %s; retry in %d s" % (self.last_error, delay))

    def close(self):
        """Leave cleanly (DISCONNECT, so the broker keeps the last will unsent)."""
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:
                pass
            self.client = None
            self.backoff.reset()
            self.hw.save_backoff(0, 0)
        self.up_since = None
        self.state = "down"

    def _packet_bytes(self):
        """The MQTT packet buffer made with the client: a readings batch of batch_size, up to
        the default 50 (a bigger batch grows it in the drain, where running short of heap
        only makes the batch smaller)."""
        return mqtt.PUBLISH_HEAD + len(self.topic("readings")) + self._batch.size(
            min(self.cfg["batch_size"], 50))

    # -- traffic -----------------------------------------------------------------------------
    def publish(self, leaf, message, retain=False, qos=0):
        return self.client.publish(self.topic(leaf), message, qos, retain)

    def service(self, timeout_ms=0):
        """Keepalive, incoming config messages and PUBACKs. A dead link is dropped here."""
        if self.client is None:
            return
        try:
            self.client.poll(timeout_ms)
        except Exception as e:
            self.drop(e)

    def drain(self, spool, batch_size, feed, budget_ms):
        """Send the spool's backlog; returns the number of readings acknowledged. Each batch
        is encoded from the spool's records straight into the client's packet buffer. Short
        of memory for a batch, the drain halves it (counted in memory_errors) and goes on."""
        client = self.client
        clock = self.clock
        topic = self.topic("readings").encode()
        batch = self._batch
        window = []           # [pid, last_seq, acked, count] in send order
        policy, sent_upto = self._delivery_begin(spool)  # sent_upto: last seq handed over
        acked = 0
        rows = batch_size
        start = clock.ticks_ms()
        while self.client is client:
            while client.can_publish() and clock.ticks_diff(clock.ticks_ms(), start) < budget_ms:
                try:  # nothing is sent yet: running short here only costs a smaller batch
                    buf, at = client.message_buffer(topic, batch.size(rows))
                    batch.begin(buf, at, rows)
                    spool.read(batch, sent_upto)
                    n = batch.finish()
                except MemoryError:
                    if rows == 1:
                        raise
                    rows = (rows + 1) // 2
                    self.memory_errors += 1
                    self.last_error = _SHORT
                    self.log(_SHORT)
                    continue
                if not batch.count:
                    break
                pid = client.publish_buffered(topic, n, 1)
                sent_upto = batch.last
                window.append([pid, sent_upto, False, batch.count])
            if not window:
                break
            try:
                client.poll(200)
            except Exception as e:
                self.drop(e)
                break
            done = client.acked()
            for entry in window:
                if entry[0] in done:
                    entry[2] = True
            last = None
            while window and window[0][2]:
                entry = window.pop(0)
                last = entry[1]
                acked += entry[3]
            if last is not None:
                if policy is None:
                    spool.ack(last)
                else:
                    policy.acked_upto(last)
            feed()
        return acked

    # -- delivery "stored" (laterne/delivery.py) ---------------------------------------------
    def _delivery_begin(self, spool):
        """(policy or None, seq to send after): the policy while the config says "stored"
        (a remote change takes effect at the next drain); None releases at PUBACK."""
        if self.cfg.get("delivery") != "stored":
            self.delivery = None
            return None, None
        if self.delivery is None:
            from laterne.delivery import StoredDelivery
            self.delivery = StoredDelivery(self.node_id, self.clock, self.topic("stored"))
        try:
            return self.delivery, self.delivery.begin(self, spool)
        except Exception as e:  # the subscription failed: the link is dropped, drain ends
            self.drop(e)
            return self.delivery, None

    def _route(self, topic, message):
        d = self.delivery
        if d is not None and topic == d.topic:
            d.on_report(message)
        else:
            self._app_message(topic, message)
