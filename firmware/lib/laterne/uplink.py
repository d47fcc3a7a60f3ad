# The node's way out: Wi-Fi, then the clock (NTP), then the MQTT session, each retried with
# exponential backoff and full jitter; never a reboot. `drain` sends the spool in batches with
# several QoS 1 messages in flight and releases readings only when their PUBACK arrived.
from laterne import backoff, mqtt, mqttclient, net, payload, timebase

_SHORT = "drain: MemoryError, smaller batches"


class Uplink:
    def __init__(self, hw, cfg, node_id, clock_state, on_message, log, rand):
        self.hw = hw
        self.clock = hw.clock
        self.cfg = cfg
        self.node_id = node_id
        self.timebase = clock_state
        self.on_message = on_message
        self.log = log
        self.backoff = backoff.Backoff(cfg["backoff_min_s"], cfg["backoff_max_s"], rand)
        self.mqtt = None          # the MQTT client, connected or not
        self.client = None        # the same client while the session is up, else None
        self.retry_at = None      # ticks_ms before which no new attempt is made
        self.state = "down"       # down | wifi | mqtt | up
        self.last_error = None
        self.connects = 0
        self.memory_errors = 0    # batches made smaller for want of heap
        self._tls = None
        self._batch = payload.Batch(node_id, clock_state)  # the readings encoder

    def topic(self, leaf):
        return payload.topic(self.cfg["topic_prefix"], self.node_id, leaf)

    # -- link management ---------------------------------------------------------------------
    def is_up(self):
        if self.client is not None and not self.hw.wifi.isconnected():
            self.drop("wifi lost")
        return self.client is not None

    def ensure(self):
        """Bring the link up if the backoff allows an attempt now. Returns True when up."""
        if self.is_up():
            return True
        if not self.cfg["wifi"]:
            self.state = "off"  # no network configured, or safe mode: the radio stays off
            return False
        clock = self.clock
        if self.retry_at is not None and clock.ticks_diff(self.retry_at, clock.ticks_ms()) > 0:
            return False
        try:
            self._connect()
        except Exception as e:  # every failure is a retry later, never a reboot
            self.drop(e)
            delay_ms = int(self.backoff.next_delay() * 1000)
            self.retry_at = clock.ticks_add(clock.ticks_ms(), delay_ms)
            self.log("uplink: %s; retry in %d s" % (self.last_error, delay_ms // 1000))
            return False
        self.backoff.reset()
        self.retry_at = None
        return True

    def _connect(self):
        cfg = self.cfg
        self.state = "wifi"
        if not self.hw.wifi.isconnected():
            self.hw.wifi.connect(cfg["wifi"], cfg["static_ip"], 15000)
        if not self.timebase.synced():
            self.sync_time()
        self.state = "mqtt"
        broker = cfg["broker"]
        ctx = None
        if broker["tls"]:
            if self._tls is None:
                self._tls = net.make_tls_context(broker["ca"])
            ctx = self._tls

        def open_link():
            return net.open_socket(broker["host"], broker["port"], 10000, ctx,
                                   broker["host"] if ctx else None)

        if self.mqtt is None:  # made once: its buffers are reused across reconnects
            will = (self.topic("status"), payload.will_json(self.node_id), True, 1)
            self.mqtt = mqttclient.MQTTClient(
                self.node_id, open_link, self.clock, keepalive_s=broker["keepalive_s"],
                user=broker["username"], password=broker["password"], will=will,
                clean_session=True, timeout_ms=10000, max_inflight=8,
                on_message=self.on_message, buffer_size=self._packet_bytes())
        client = self.mqtt
        client.connect()
        self.client = client
        client.subscribe(self.topic("config/set"), 1)
        self.state = "up"
        self.connects += 1
        self.last_error = None

    def sync_time(self):
        """Ask the configured NTP servers in turn; True when the clock is known afterwards."""
        for server in self.cfg["ntp_servers"]:
            host, port = server, 123
            if ":" in server:
                host, port = server.rsplit(":", 1)
                port = int(port)
            try:
                unix = timebase.ntp_query(host, self.clock, 3000, port)
            except Exception as e:
                self.log("ntp %s: %s" % (server, e))
                continue
            self.hw.set_time_unix(unix)
            self.timebase.mark_synced(unix)
            return True
        return False

    def drop(self, reason):
        if isinstance(reason, MemoryError):
            self.memory_errors += 1  # reported with the rest (status memory_errors)
        if self.client is not None:
            self.client.close()
            self.client = None
        self.state = "down"
        if reason is not None:
            self.last_error = reason if isinstance(reason, str) else "%s: %s" % (
                type(reason).__name__, reason)

    def close(self):
        """Leave cleanly (DISCONNECT, so the broker keeps the last will unsent)."""
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:
                pass
            self.client = None
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
        sent_upto = None      # last seq handed to the broker in this drain
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
                spool.ack(last)
            feed()
        return acked
