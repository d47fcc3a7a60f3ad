# MQTT 3.1.1 packet codec, no I/O: encoders for what a client sends and an incremental
# decoder for what a broker sends. Bytes from the network are hostile until parsed: anything
# malformed, oversized or unexpected raises MQTTProtocolError, never another exception.
# A PUBLISH is built in place around a payload already in the packet buffer. What only a
# broker sends (CONNACK, SUBACK, ...) is encoded by the tests' peer, tests/kit/mqtt_peer.py.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

# Packet types: what a broker sends is public (the client and the tests match on it); what
# only the client sends stays private (inlined, no name on the heap). QoS 2 is never used.
_CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
_SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBACK = const(11)
PINGRESP = const(13)

_MAX_REMAINING = const(268435455)  # the largest value four length bytes can carry
PUBLISH_HEAD = const(9)  # fixed header (5 at most), topic length (2), packet id (2)

PINGREQ_PACKET = b"\xc0\x00"
PINGRESP_PACKET = b"\xd0\x00"
DISCONNECT_PACKET = b"\xe0\x00"

CONNACK_CODES = ("accepted", "unacceptable protocol version", "identifier rejected",
                 "server unavailable", "bad user name or password", "not authorized")


class MQTTError(Exception):
    """Base of every MQTT failure; the connection is unusable afterwards."""


class MQTTProtocolError(MQTTError):
    """The peer sent bytes that are not valid MQTT 3.1.1 for a client to receive."""


def _utf8(s):
    return s.encode("utf-8") if isinstance(s, str) else bytes(s)


def _bin(b):
    return b.encode("utf-8") if isinstance(b, str) else b


def remaining_length_size(n):
    if n < 128:
        return 1
    if n < 16384:
        return 2
    if n < 2097152:
        return 3
    return 4


def put_remaining_length(buf, i, n):
    """Write the variable-length remaining length at buf[i]; return the index after it."""
    if n < 0 or n > _MAX_REMAINING:
        raise ValueError("remaining length out of range")
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf[i] = b | 0x80
            i += 1
        else:
            buf[i] = b
            return i + 1


def _put_u16(buf, i, v):
    buf[i] = v >> 8
    buf[i + 1] = v & 0xFF
    return i + 2


def _put_str(buf, i, b):
    i = _put_u16(buf, i, len(b))
    buf[i:i + len(b)] = b
    return i + len(b)


def _check_str(b, what):
    if len(b) > 65535:
        raise ValueError(what + " longer than 65535 bytes")


def _check_topic(t):
    if not t or len(t) > 65535:
        raise ValueError("topic must be 1..65535 bytes")
    if b"+" in t or b"#" in t or b"\x00" in t:
        raise ValueError("publish topic must not contain wildcards or NUL")


def _frame(first, body_len):
    """A bytearray for one packet with its fixed header filled in, and the body offset."""
    buf = bytearray(1 + remaining_length_size(body_len) + body_len)
    buf[0] = first
    return buf, put_remaining_length(buf, 1, body_len)


def encode_connect(client_id, keepalive_s, user=None, password=None, will=None,
                   clean_session=True):
    """CONNECT. will = (topic, message, retain, qos). Returns bytearray."""
    cid = _utf8(client_id)
    _check_str(cid, "client id")
    if not 0 <= keepalive_s <= 65535:
        raise ValueError("keepalive out of range")
    flags = 0x02 if clean_session else 0
    body = 10 + 2 + len(cid)
    if will is not None:
        wt, wm, wr, wq = will
        wt, wm = _utf8(wt), _bin(wm)
        _check_topic(wt)
        _check_str(wm, "will message")
        if wq not in (0, 1, 2):
            raise ValueError("will qos must be 0, 1 or 2")
        flags |= 0x04 | (wq << 3) | (0x20 if wr else 0)
        body += 4 + len(wt) + len(wm)
    if user is not None:
        u = _utf8(user)
        _check_str(u, "user name")
        flags |= 0x80
        body += 2 + len(u)
    if password is not None:
        if user is None:
            raise ValueError("a password needs a user name in MQTT 3.1.1")
        pw = _bin(password)
        _check_str(pw, "password")
        flags |= 0x40
        body += 2 + len(pw)
    buf, i = _frame(_CONNECT << 4, body)
    i = _put_str(buf, i, b"MQTT")
    buf[i] = 4  # protocol level 3.1.1
    buf[i + 1] = flags
    i = _put_u16(buf, i + 2, keepalive_s)
    i = _put_str(buf, i, cid)
    if will is not None:
        i = _put_str(buf, i, wt)
        i = _put_str(buf, i, wm)
    if user is not None:
        i = _put_str(buf, i, u)
    if password is not None:
        i = _put_str(buf, i, pw)
    return buf


def put_publish_head(buf, end, topic, n, qos=0, retain=False, pid=0):
    """Write a PUBLISH's fixed header, topic (bytes) and packet id into buf so that they end
    at `end`, where its n payload bytes already are; return the index the packet starts at.
    PUBLISH_HEAD + len(topic) bytes before the payload always suffice."""
    _check_topic(topic)
    if qos not in (0, 1, 2):
        raise ValueError("qos must be 0, 1 or 2")
    if qos and not 0 < pid < 65536:
        raise ValueError("packet id must be 1..65535")
    var = 2 + len(topic) + (2 if qos else 0)
    start = end - var - 1 - remaining_length_size(var + n)
    if start < 0:
        raise ValueError("no room before the payload for the PUBLISH header")
    buf[start] = (PUBLISH << 4) | (qos << 1) | (1 if retain else 0)
    i = put_remaining_length(buf, start + 1, var + n)
    i = _put_str(buf, i, topic)
    if qos:
        _put_u16(buf, i, pid)
    return start


def encode_puback(pid):
    return bytes((PUBACK << 4, 2, pid >> 8, pid & 0xFF))


def encode_subscribe(pid, topic, qos=1):
    t = _utf8(topic)
    if not t or len(t) > 65535:
        raise ValueError("topic filter must be 1..65535 bytes")
    if qos not in (0, 1, 2) or not 0 < pid < 65536:
        raise ValueError("bad qos or packet id")
    buf, i = _frame((_SUBSCRIBE << 4) | 0x02, 2 + 2 + len(t) + 1)
    i = _put_u16(buf, i, pid)
    i = _put_str(buf, i, t)
    buf[i] = qos
    return buf


# -- decoder ---------------------------------------------------------------------------------
class Decoder:
    """Incremental decoder of broker-to-client packets.

    Read into `space()` (a memoryview of free buffer) and call `advance(n)`; then call
    `take()` until it returns None (more bytes needed). Packets are tuples:
      (CONNACK, session_present, rc)      (PUBLISH, topic_str, payload_bytes, qos, retain, dup, pid)
      (PUBACK, pid)  (SUBACK, pid, codes_bytes)  (UNSUBACK, pid)  (PINGRESP,)
    A PUBLISH larger than max_packet comes out with payload None: its topic and packet id are
    kept (so it can be answered), its payload is dropped unread as it streams in.
    """

    def __init__(self, max_packet=4096):
        self.max_packet = max_packet
        self.buf = bytearray(max_packet + 5)
        self.mv = memoryview(self.buf)
        self.start = 0
        self.end = 0
        self.skip = 0  # bytes still to drop of an oversized PUBLISH

    def reset(self):
        self.start = self.end = self.skip = 0

    def space(self):
        if self.start:
            n = self.end - self.start
            self.mv[0:n] = self.mv[self.start:self.end]
            self.start, self.end = 0, n
        return self.mv[self.end:]

    def advance(self, n):
        if n < 0 or self.end + n > len(self.buf):
            raise ValueError("advance beyond buffer")
        self.end += n

    def _header(self, oversize_ok=False):
        """(body_start, remaining_length) once the fixed header is complete, else None."""
        buf = self.buf
        i = self.start + 1
        n = 0
        shift = 0
        while True:
            if i >= self.end:
                return None
            b = buf[i]
            n |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80:
                break
            shift += 7
            if shift >= 28:
                raise MQTTProtocolError("remaining length longer than 4 bytes")
        if i - self.start - 1 > remaining_length_size(n):
            raise MQTTProtocolError("remaining length not minimally encoded")
        if n > self.max_packet and not oversize_ok:
            raise MQTTProtocolError("packet of %d bytes exceeds the %d byte limit" % (n, self.max_packet))
        return i, n

    def take(self):
        if self.skip:
            k = min(self.skip, self.end - self.start)
            self.skip -= k
            self.start += k
        if self.end == self.start:
            self.start = self.end = 0
            return None
        first = self.buf[self.start]
        kind = first >> 4
        flags = first & 0x0F
        if kind == PUBLISH:
            if (flags >> 1) & 3 == 3:
                raise MQTTProtocolError("PUBLISH with QoS 3")
        elif kind in (CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP):
            if flags:
                raise MQTTProtocolError("reserved flags set in packet type %d" % kind)
        else:
            raise MQTTProtocolError("unexpected packet type %d from broker" % kind)
        h = self._header(kind == PUBLISH)
        if h is None:
            return None
        i, n = h
        if n > self.max_packet:
            return self._oversized(flags, i, n)
        end = i + n
        if end > self.end:
            return None
        self.start = end
        if self.start == self.end:
            self.start = self.end = 0
        return self._parse(kind, flags, i, n)

    def _oversized(self, flags, i, n):
        """Topic and packet id of a PUBLISH too large to keep; its payload is skipped."""
        qos = (flags >> 1) & 3
        if self.end - i < 2:
            return None
        head = 2 + self._u16(i) + (2 if qos else 0)
        if i + head > len(self.buf):
            raise MQTTProtocolError("PUBLISH topic of %d bytes" % (head - 2))
        if self.end - i < head:
            return None
        p = self._parse(PUBLISH, flags, i, head)
        self.start = i + head
        self.skip = n - head
        return (PUBLISH, p[1], None, qos, p[4], p[5], p[6])

    def _u16(self, i):
        return (self.buf[i] << 8) | self.buf[i + 1]

    def _pid(self, i):
        pid = self._u16(i)
        if pid == 0:
            raise MQTTProtocolError("packet id 0")
        return pid

    def _parse(self, kind, flags, i, n):
        buf = self.buf
        if kind == PUBLISH:
            qos = (flags >> 1) & 3
            dup = bool(flags & 0x08)
            if dup and not qos:
                raise MQTTProtocolError("PUBLISH QoS 0 with DUP set")
            if n < 2:
                raise MQTTProtocolError("PUBLISH too short")
            tl = self._u16(i)
            head = 2 + tl + (2 if qos else 0)
            if tl == 0 or head > n:
                raise MQTTProtocolError("PUBLISH topic length %d does not fit" % tl)
            raw = bytes(self.mv[i + 2:i + 2 + tl])
            if b"+" in raw or b"#" in raw or b"\x00" in raw:
                raise MQTTProtocolError("PUBLISH topic with wildcard or NUL")
            try:
                topic = raw.decode("utf-8")
            except UnicodeError:
                raise MQTTProtocolError("PUBLISH topic is not UTF-8")
            pid = self._pid(i + 2 + tl) if qos else 0
            payload = bytes(self.mv[i + head:i + n])
            return (PUBLISH, topic, payload, qos, bool(flags & 1), dup, pid)
        if kind == CONNACK:
            if n != 2:
                raise MQTTProtocolError("CONNACK length %d" % n)
            ack, rc = buf[i], buf[i + 1]
            if ack & 0xFE:
                raise MQTTProtocolError("CONNACK reserved flags set")
            if rc >= len(CONNACK_CODES):
                raise MQTTProtocolError("CONNACK unknown return code %d" % rc)
            if rc and ack:
                raise MQTTProtocolError("CONNACK refusal with session present")
            return (CONNACK, bool(ack), rc)
        if kind == PINGRESP:
            if n:
                raise MQTTProtocolError("PINGRESP with a body")
            return (PINGRESP,)
        if kind == SUBACK:
            if n < 3:
                raise MQTTProtocolError("SUBACK too short")
            codes = bytes(self.mv[i + 2:i + n])
            for c in codes:
                if c not in (0, 1, 2, 0x80):
                    raise MQTTProtocolError("SUBACK bad return code %d" % c)
            return (SUBACK, self._pid(i), codes)
        # PUBACK, UNSUBACK
        if n != 2:
            raise MQTTProtocolError("packet type %d length %d" % (kind, n))
        return (kind, self._pid(i))
