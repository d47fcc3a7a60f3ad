# MQTT 3.1.1 codec: expected bytes are worked out by hand from the specification (OASIS
# mqtt-v3.1.1, sections 2 and 3), not taken from the encoder's output.
from check import raises

from laterne import mqtt
from laterne.mqtt import Decoder, MQTTProtocolError
from mqtt_peer import encode_publish, feed, pending


def decode_all(data, max_packet=4096):
    return list(feed(Decoder(max_packet), data))


def test_remaining_length_examples_from_spec_table():
    cases = ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
             (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
             (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f"))
    for n, want in cases:
        buf = bytearray(5)
        end = mqtt.put_remaining_length(buf, 0, n)
        assert bytes(buf[:end]) == want, (n, buf)
        assert mqtt.remaining_length_size(n) == len(want)
    raises(ValueError, mqtt.put_remaining_length, bytearray(5), 0, 268435456)


def test_connect_minimal():
    want = b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03abc"
    assert bytes(mqtt.encode_connect("abc", 60)) == want


def test_connect_with_will_user_password():
    got = bytes(mqtt.encode_connect("n1", 30, "u", b"pw", ("s/t", b"off", True, 1), True))
    body = (b"\x00\x04MQTT\x04" + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02]) +
            b"\x00\x1e" + b"\x00\x02n1" + b"\x00\x03s/t" + b"\x00\x03off" + b"\x00\x01u" +
            b"\x00\x02pw")
    assert got == bytes([0x10, len(body)]) + body


def test_connect_persistent_session_no_will():
    got = bytes(mqtt.encode_connect("x", 0, clean_session=False))
    assert got[9] == 0  # connect flags: nothing set


def test_connect_rejects_password_without_user_and_bad_will():
    raises(ValueError, mqtt.encode_connect, "x", 60, None, "pw")
    raises(ValueError, mqtt.encode_connect, "x", 60, None, None, ("a/#", b"", True, 1))
    raises(ValueError, mqtt.encode_connect, "x", 70000)


def test_publish_qos1_and_qos0_retain():
    assert bytes(encode_publish("a/b", b"hi", 1, False, 10)) == \
        b"\x32\x09\x00\x03a/b\x00\x0ahi"
    assert bytes(encode_publish("a/b", "hi", 0, True)) == b"\x31\x07\x00\x03a/bhi"


def test_publish_head_in_place_before_a_long_payload():
    payload = b"x" * 200
    at = mqtt.PUBLISH_HEAD + 1
    buf = bytearray(at + len(payload))
    buf[at:] = payload
    start = mqtt.put_publish_head(buf, at, b"t", len(payload), 1, False, 65535)
    # remaining length 2 + 1 + 2 + 200 = 205 = 0xCD 0x01: a two-byte length, so the packet
    # starts 2 bytes into the room kept for the longest (four-byte) one
    assert start == 2
    assert bytes(buf[start:start + 6]) == b"\x32\xcd\x01\x00\x01t"
    assert bytes(buf[start + 6:start + 8]) == b"\xff\xff"
    assert bytes(buf[start + 8:]) == payload and len(buf) - start == 3 + 205
    raises(ValueError, mqtt.put_publish_head, buf, 5, b"t", 200, 1, False, 1)  # no room


def test_publish_rejects_bad_ids_topics_qos():
    raises(ValueError, encode_publish, "t", b"", 1, False, 0)
    raises(ValueError, encode_publish, "t", b"", 1, False, 65536)
    raises(ValueError, encode_publish, "a/+", b"", 0)
    raises(ValueError, encode_publish, "", b"", 0)
    raises(ValueError, encode_publish, "t", b"", 3, False, 1)


def test_subscribe_puback_fixed_packets():
    assert bytes(mqtt.encode_subscribe(1, "c/#", 1)) == b"\x82\x08\x00\x01\x00\x03c/#\x01"
    assert mqtt.encode_puback(258) == b"\x40\x02\x01\x02"
    assert mqtt.PINGREQ_PACKET == b"\xc0\x00"
    assert mqtt.DISCONNECT_PACKET == b"\xe0\x00"


def test_decode_broker_packets():
    stream = (b"\x20\x02\x01\x00" + b"\x40\x02\x00\x07" + b"\xd0\x00" +
              b"\x90\x03\x00\x01\x01" + b"\xb0\x02\x00\x09" +
              b"\x32\x0a\x00\x03a/b\x00\x05hey" + b"\x30\x04\x00\x01zq")
    got = decode_all(stream)
    assert got == [
        (mqtt.CONNACK, True, 0), (mqtt.PUBACK, 7), (mqtt.PINGRESP,),
        (mqtt.SUBACK, 1, b"\x01"), (mqtt.UNSUBACK, 9),
        (mqtt.PUBLISH, "a/b", b"hey", 1, False, False, 5),
        (mqtt.PUBLISH, "z", b"q", 0, False, False, 0),
    ]


def test_decode_byte_by_byte_gives_same_packets():
    stream = b"\x20\x02\x00\x04" + b"\x33\x0a\x00\x03a/b\x12\x34hey"
    dec = Decoder(64)
    got = []
    for i in range(len(stream)):
        got.extend(feed(dec, stream[i:i + 1]))
    assert got == [(mqtt.CONNACK, False, 4), (mqtt.PUBLISH, "a/b", b"hey", 1, True, False, 0x1234)]
    assert pending(dec) == 0


def test_truncated_input_asks_for_more():
    dec = Decoder(64)
    assert list(feed(dec, b"\x32\x0a\x00\x03a/")) == []
    assert dec.take() is None
    assert list(feed(dec, b"b\x00\x05he")) == []
    assert list(feed(dec, b"y")) == [(mqtt.PUBLISH, "a/b", b"hey", 1, False, False, 5)]


def test_space_advance_interface():
    dec = Decoder(16)
    space = dec.space()
    space[0:4] = b"\x40\x02\x00\x01"
    dec.advance(4)
    assert dec.take() == (mqtt.PUBACK, 1)
    assert dec.take() is None


def test_buffer_reuse_over_many_packets():
    dec = Decoder(8)
    n = 0
    for i in range(1, 300):
        for p in feed(dec, mqtt.encode_puback(i) + b"\xd0"):
            n += 1
        for p in feed(dec, b"\x00"):
            assert p == (mqtt.PINGRESP,)
    assert n == 299


def test_malformed_inputs_raise_protocol_error():
    bad = (
        b"\xd0\xff\xff\xff\xff\x01",        # remaining length of five bytes
        b"\xd0\x80\x00",                    # non-minimal length encoding
        b"\x10\x00",                        # CONNECT sent to a client
        b"\x80\x00",                        # SUBSCRIBE sent to a client
        b"\x00\x00", b"\xf0\x00",           # reserved packet types
        b"\x50\x02\x00\x01",                # PUBREC: we never publish QoS 2
        b"\x41\x02\x00\x01",                # PUBACK with reserved flags
        b"\x22\x02\x00\x00",                # CONNACK with reserved flags
        b"\x20\x03\x00\x00\x00",            # CONNACK wrong length
        b"\x20\x02\x02\x00",                # CONNACK reserved ack bits
        b"\x20\x02\x00\x06",                # CONNACK unknown return code
        b"\x20\x02\x01\x05",                # refusal with session present
        b"\x40\x02\x00\x00",                # PUBACK packet id 0
        b"\x40\x03\x00\x01\x00",            # PUBACK wrong length
        b"\xd0\x01\x00",                    # PINGRESP with a body
        b"\x90\x02\x00\x01",                # SUBACK without codes
        b"\x90\x03\x00\x01\x03",            # SUBACK invalid code
        b"\x36\x05\x00\x01t\x00\x01",       # PUBLISH QoS 3
        b"\x38\x04\x00\x01tx",              # PUBLISH QoS 0 with DUP
        b"\x30\x04\x00\x09tx",              # topic longer than the packet
        b"\x30\x03\x00\x00x",               # empty topic
        b"\x30\x04\x00\x02\xff\xfe",        # topic not UTF-8
        b"\x30\x04\x00\x02a#",              # wildcard in a published topic
        b"\x32\x05\x00\x01t\x00\x00",       # QoS 1 with packet id 0
        b"\x32\x04\x00\x01t\x00",           # QoS 1 without room for the packet id
        b"\x30\x01\x00",                    # PUBLISH shorter than a topic length
    )
    for data in bad:
        e = raises(MQTTProtocolError, decode_all, data)
        assert str(e), data


def test_oversized_packet_refused_before_buffering():
    dec = Decoder(100)
    # a SUBACK whose header says 1000 bytes: refused as soon as the length is known
    e = raises(MQTTProtocolError, list, feed(dec, b"\x90\xe8\x07"))
    assert "1000" in str(e)
    assert decode_all(b"\x30" + bytes([100]) + b"\x00\x01t" + b"x" * 97, 100)[0][2] == b"x" * 97


def test_oversized_publish_is_skipped_keeping_topic_and_packet_id():
    # 1000-byte QoS 1 retained PUBLISH on a 100-byte decoder, then a PINGRESP: the PUBLISH
    # comes out without payload (so it can be answered), the stream stays in step
    body = b"\x00\x0alamp/c/set\x00\x07"
    body += b"y" * (1000 - len(body))
    stream = b"\x33\xe8\x07" + body + b"\xd0\x00"
    for chunk in (1, 7, 64, 4096):
        dec = Decoder(100)
        got = []
        for i in range(0, len(stream), chunk):
            got += list(feed(dec, stream[i:i + chunk]))
        assert got == [(mqtt.PUBLISH, "lamp/c/set", None, 1, True, False, 7),
                       (mqtt.PINGRESP,)], chunk
        assert pending(dec) == 0 and dec.skip == 0


def test_five_length_bytes_named_as_such():
    e = raises(MQTTProtocolError, decode_all, b"\x30\x80\x80\x80\x80\x00")
    assert "4 bytes" in str(e)
