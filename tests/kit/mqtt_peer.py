# MQTT packets the node never encodes, for tests that play the broker (CPython and MicroPython):
# CONNACK, SUBACK, UNSUBACK, and a whole PUBLISH in a buffer of its own (the node builds its
# PUBLISH in place around the payload, laterne.mqtt.put_publish_head); and feeding bytes to
# the node's decoder as the client reads them.
from laterne import mqtt


def encode_publish(topic, payload, qos=0, retain=False, pid=0, dup=False):
    t = topic.encode("utf-8") if isinstance(topic, str) else bytes(topic)
    m = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    at = mqtt.PUBLISH_HEAD + len(t)
    buf = bytearray(at + len(m))
    buf[at:] = m
    start = mqtt.put_publish_head(buf, at, t, len(m), qos, retain, pid)
    if dup and qos:
        buf[start] |= 0x08
    return buf[start:]


def encode_connack(session_present, rc):
    return bytes((mqtt.CONNACK << 4, 2, 1 if session_present else 0, rc))


def encode_suback(pid, codes):
    return bytes((mqtt.SUBACK << 4, 2 + len(codes), pid >> 8, pid & 0xFF)) + bytes(codes)


def encode_unsuback(pid):
    return bytes((mqtt.UNSUBACK << 4, 2, pid >> 8, pid & 0xFF))


def feed(dec, data):
    """Give all of data to a laterne.mqtt.Decoder; yield every packet it completes."""
    i = 0
    while i < len(data):
        space = dec.space()
        k = min(len(space), len(data) - i)
        space[0:k] = data[i:i + k]
        dec.advance(k)
        i += k
        while True:
            p = dec.take()
            if p is None:
                break
            yield p


def pending(dec):
    """Bytes the decoder holds of a packet not complete yet."""
    return dec.end - dec.start
