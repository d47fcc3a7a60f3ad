# MQTT 3.1.1 client state machine over a stream from connect_fn(): CONNECT with last will,
# QoS 0/1 publish with several messages in flight, SUBSCRIBE, keepalive. Every wait is bounded
# by timeout_ms on the clock passed in; a silent (half-open) link raises MQTTTimeout.
# Acknowledged packet ids are collected for acked(); nothing is ever resent by this module:
# after any MQTTError the caller drops the client and reconnects, resending unacked data.
import errno
import select
import socket

from laterne import mqtt
from laterne.mqtt import MQTTError, MQTTProtocolError  # noqa: F401 (re-exported)


class MQTTRefused(MQTTError):
    """The broker answered CONNACK with a non-zero return code (`rc`)."""

    def __init__(self, rc):
        # super(): MicroPython's exception classes have no __init__ attribute to call directly
        super().__init__("broker refused connection: %s (%d)" % (mqtt.CONNACK_CODES[rc], rc))
        self.rc = rc


class MQTTTimeout(MQTTError):
    """The broker did not answer within the bounded time: the link is dead or half-open."""


class MQTTConnectionError(MQTTError):
    """The link failed: could not connect, closed by the broker, or a socket error."""


class MQTTClient:
    def __init__(self, client_id, connect_fn, clock, keepalive_s=60, user=None, password=None,
                 will=None, clean_session=True, timeout_ms=10000, max_inflight=8,
                 on_message=None, max_packet=3904, buffer_size=512):
        self.client_id = client_id
        self.connect_fn = connect_fn
        self.clock = clock
        self.keepalive_ms = keepalive_s * 1000
        self.keepalive_s = keepalive_s
        self.user = user
        self._password = password
        self.will = will
        self.clean_session = clean_session
        self.timeout_ms = timeout_ms
        self.max_inflight = max_inflight
        self.on_message = on_message
        self.sock = None
        self.pid = 0                # last packet id handed out
        self._inflight = {}         # pid -> ticks_ms when sent
        self._acked = []
        # 3904: an update offer (3800 bytes at most, laterne/otaoffer.py) and its topic, the
        # largest packet the node takes; the buffer is on the heap for good
        self._dec = mqtt.Decoder(max_packet)
        self._wbuf = bytearray(buffer_size)  # sized up front: grown later it leaves a hole
        self._poller = None
        self._wpoller = None
        self._blocking = True
        self._write = None
        self._readinto = None
        self._pending = None        # a SUBACK we are waiting for: [pid, codes or None]
        self._ping_at = None        # ticks_ms of an unanswered PINGREQ
        self._last_tx = 0
        self._last_rx = 0

    # -- connection ---------------------------------------------------------------------------
    def connect(self):
        """Open the link and log in; returns the broker's session_present flag."""
        self.close()
        try:
            sock = self.connect_fn()
        except MQTTError:
            raise
        except Exception as e:
            raise MQTTConnectionError("cannot reach broker: %s" % _reason(e))
        self.sock = sock
        # CPython: blocking with a timeout (sendall/recv_into return what they can).
        # MicroPython: readinto/write on a blocking stream insist on the full length, so the
        # stream is non-blocking and select.poll provides the bounded waits.
        self._blocking = hasattr(sock, "recv_into") and hasattr(sock, "settimeout")
        if self._blocking:
            self._write = sock.sendall
            self._readinto = sock.recv_into
            sock.settimeout(self.timeout_ms / 1000)
        else:
            self._write = sock.write
            self._readinto = sock.readinto
            sock.setblocking(False)
        self._poller = select.poll()
        self._poller.register(sock, select.POLLIN)
        self._wpoller = select.poll()
        self._wpoller.register(sock, select.POLLOUT)
        now = self.clock.ticks_ms()
        self._last_rx = now
        try:
            self._send(mqtt.encode_connect(self.client_id, self.keepalive_s, self.user,
                                           self._password, self.will, self.clean_session))
            p = self._wait(mqtt.CONNACK, "CONNACK")
        except BaseException:
            self.close()
            raise
        if p[2]:
            self.close()
            raise MQTTRefused(p[2])
        return p[1]

    def is_connected(self):
        return self.sock is not None

    def close(self):
        """Drop the link without DISCONNECT (the broker will publish the last will)."""
        sock = self.sock
        self.sock = None
        if sock is not None:
            for p in (self._poller, self._wpoller):
                try:
                    p.unregister(sock)
                except Exception:
                    pass
            try:
                sock.close()
            except Exception:
                pass
        self._inflight = {}
        self._pending = None
        self._ping_at = None
        self._dec.reset()

    def disconnect(self):
        """Leave cleanly: DISCONNECT (the broker discards the last will), then close."""
        try:
            if self.sock is not None:
                self._send(mqtt.DISCONNECT_PACKET)
        finally:
            self.close()

    # -- traffic ------------------------------------------------------------------------------
    def can_publish(self):
        return self.sock is not None and len(self._inflight) < self.max_inflight

    def inflight(self):
        return len(self._inflight)

    def acked(self):
        """Packet ids whose PUBACK arrived since the last call (in arrival order)."""
        done = self._acked
        self._acked = []
        return done

    def publish(self, topic, payload, qos=0, retain=False):
        """Send one PUBLISH in one socket write; returns the packet id for QoS 1, else None."""
        t = topic.encode() if isinstance(topic, str) else topic
        m = payload.encode() if isinstance(payload, str) else payload
        buf, at = self.message_buffer(t, len(m))
        buf[at:at + len(m)] = m
        return self.publish_buffered(t, len(m), qos, retain)

    def message_buffer(self, topic, n):
        """(buf, at): the packet buffer, grown to hold a PUBLISH of n payload bytes to topic
        (bytes), and where its payload goes. Write the payload there, then publish_buffered():
        a message is built in place, never copied (a readings batch is encoded right here)."""
        at = mqtt.PUBLISH_HEAD + len(topic)
        if self._wbuf is None or len(self._wbuf) < at + n:
            self._wbuf = None  # the old buffer may go before the new one is made
            self._wbuf = bytearray(at + n)
        return self._wbuf, at

    def publish_buffered(self, topic, n, qos=0, retain=False):
        """Send the n payload bytes written at message_buffer(topic, ...) as one PUBLISH;
        returns the packet id for QoS 1, else None."""
        if self.sock is None:
            raise MQTTConnectionError("not connected")
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        if qos and len(self._inflight) >= self.max_inflight:
            raise MQTTError("%d QoS 1 messages already in flight" % len(self._inflight))
        pid = self._next_pid() if qos else 0
        at = mqtt.PUBLISH_HEAD + len(topic)
        start = mqtt.put_publish_head(self._wbuf, at, topic, n, qos, retain, pid)
        if qos:
            self._inflight[pid] = self.clock.ticks_ms()
        self._send(memoryview(self._wbuf)[start:at + n])
        return pid if qos else None

    def subscribe(self, topic, qos=1):
        """SUBSCRIBE and wait (bounded) for the SUBACK; returns the granted QoS."""
        if self.sock is None:
            raise MQTTConnectionError("not connected")
        pid = self._next_pid()
        self._pending = [pid, None]
        self._send(mqtt.encode_subscribe(pid, topic, qos))
        start = self.clock.ticks_ms()
        while self._pending[1] is None:
            left = self.timeout_ms - self.clock.ticks_diff(self.clock.ticks_ms(), start)
            if left <= 0:
                self.close()
                raise MQTTTimeout("no SUBACK within %d ms" % self.timeout_ms)
            self._read(left)
        codes = self._pending[1]
        self._pending = None
        if codes[0] == 0x80:
            raise MQTTError("broker refused subscription to %s" % topic)
        return codes[0]

    def poll(self, timeout_ms=0):
        """Handle whatever arrives within timeout_ms (returns early once something was
        handled); send PINGREQ when due. Returns the number of packets handled. Raises
        MQTTError (and closes) when the link is dead."""
        if self.sock is None:
            raise MQTTConnectionError("not connected")
        clock = self.clock
        start = clock.ticks_ms()
        while True:
            self._keepalive()
            left = timeout_ms - clock.ticks_diff(clock.ticks_ms(), start)
            # wake up in time for the next keepalive decision
            handled = self._read(max(0, min(left, 1000)))
            if handled or left <= 0:
                return handled

    # -- internals ----------------------------------------------------------------------------
    def _next_pid(self):
        pid = self.pid
        while True:
            pid = pid % 65535 + 1
            if pid not in self._inflight:
                self.pid = pid
                return pid

    def _send(self, data):
        """Write one packet: one call unless the socket buffer is full; bounded by timeout."""
        clock = self.clock
        start = clock.ticks_ms()
        off = 0
        while True:
            try:
                n = self._write(data if off == 0 else memoryview(data)[off:])
            except OSError as e:
                if not (e.args and e.args[0] == errno.EAGAIN):
                    self.close()
                    if _is_timeout(e):
                        raise MQTTTimeout("write timed out after %d ms" % self.timeout_ms)
                    raise MQTTConnectionError("write failed: %s" % _reason(e))
                n = 0
            if self._blocking:  # sendall wrote everything or raised
                break
            off += n or 0
            if off >= len(data):
                break
            left = self.timeout_ms - clock.ticks_diff(clock.ticks_ms(), start)
            if left <= 0:
                self.close()
                raise MQTTTimeout("write stalled for %d ms" % self.timeout_ms)
            self._wpoller.poll(min(left, 1000))
        self._last_tx = clock.ticks_ms()

    def _keepalive(self):
        clock = self.clock
        now = clock.ticks_ms()
        waiting = self._ping_at
        for t in self._inflight.values():
            if waiting is None or clock.ticks_diff(waiting, t) > 0:
                waiting = t
        if waiting is not None:
            ref = self._last_rx if clock.ticks_diff(self._last_rx, waiting) > 0 else waiting
            if clock.ticks_diff(now, ref) > self.timeout_ms:
                what = "PINGRESP" if self._ping_at is not None else "PUBACK"
                self.close()
                raise MQTTTimeout("no %s from broker within %d ms" % (what, self.timeout_ms))
        if self.keepalive_ms and self._ping_at is None and (
                clock.ticks_diff(now, self._last_tx) >= self.keepalive_ms
                or clock.ticks_diff(now, self._last_rx) >= self.keepalive_ms):
            self._send(mqtt.PINGREQ_PACKET)
            self._ping_at = clock.ticks_ms()

    def _wait(self, kind, name):
        """Read until a packet of `kind` arrives; bounded by timeout_ms."""
        start = self.clock.ticks_ms()
        while True:
            left = self.timeout_ms - self.clock.ticks_diff(self.clock.ticks_ms(), start)
            if left <= 0:
                self.close()
                raise MQTTTimeout("no %s within %d ms" % (name, self.timeout_ms))
            p = self._read(left, kind)
            if p is not None and not isinstance(p, int):
                return p

    def _readable(self, timeout_ms):
        sock = self.sock
        pending = getattr(sock, "pending", None)  # CPython TLS: decrypted bytes already buffered
        if pending is not None and pending():
            return True
        return bool(self._poller.poll(timeout_ms))

    def _read(self, timeout_ms, want=None):
        """Read once (waiting up to timeout_ms) and handle every complete packet. Returns the
        count handled, or the first packet of kind `want` when given."""
        if not self._readable(timeout_ms):
            return 0
        dec = self._dec
        space = dec.space()
        try:
            n = self._readinto(space)
        except OSError as e:
            if e.args and e.args[0] == errno.EAGAIN and not self._blocking:
                return 0  # poll woke us but TLS has no complete record yet
            self.close()
            if _is_timeout(e):
                raise MQTTTimeout("read timed out")
            raise MQTTConnectionError("read failed: %s" % _reason(e))
        if n is None:  # non-blocking stream with nothing yet
            return 0
        if n == 0:
            self.close()
            raise MQTTConnectionError("connection closed by broker")
        dec.advance(n)
        self._last_rx = self.clock.ticks_ms()
        handled = 0
        found = None
        while self.sock is not None:
            try:
                p = dec.take()
            except MQTTProtocolError:
                self.close()
                raise
            if p is None:
                break
            handled += 1
            if want is not None and found is None:
                if p[0] != want:  # before CONNACK nothing else may arrive
                    self._fail("expected packet type %d, got %d" % (want, p[0]))
                found = p
                continue
            self._handle(p)
        return found if want is not None and found is not None else handled

    def _handle(self, p):
        kind = p[0]
        if kind == mqtt.PUBACK:
            if self._inflight.pop(p[1], None) is None:
                self._fail("PUBACK for packet id %d not in flight" % p[1])
            self._acked.append(p[1])
        elif kind == mqtt.PUBLISH:
            topic, message, qos, pid = p[1], p[2], p[3], p[6]
            if qos > 1:
                self._fail("QoS 2 PUBLISH but we never subscribe above QoS 1")
            if self.on_message is not None:
                self.on_message(topic, message)
            if qos == 1 and self.sock is not None:
                self._send(mqtt.encode_puback(pid))
        elif kind == mqtt.PINGRESP:
            self._ping_at = None
        elif kind == mqtt.SUBACK:
            if self._pending is None or self._pending[0] != p[1]:
                self._fail("unexpected SUBACK %d" % p[1])
            self._pending[1] = p[2]
        else:  # CONNACK after connect, UNSUBACK without UNSUBSCRIBE
            self._fail("unexpected packet type %d" % kind)

    def _fail(self, why):
        self.close()
        raise MQTTProtocolError(why)


_SOCKET_TIMEOUT = getattr(socket, "timeout", None)  # CPython only


def _is_timeout(e):
    # MicroPython reports a socket timeout as OSError(ETIMEDOUT) or OSError(EAGAIN)
    if _SOCKET_TIMEOUT is not None and isinstance(e, _SOCKET_TIMEOUT):
        return True
    return bool(e.args) and e.args[0] in (errno.ETIMEDOUT, errno.EAGAIN)


def _reason(e):
    return str(e) or type(e).__name__
