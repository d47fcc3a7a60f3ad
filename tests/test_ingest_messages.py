# The ingest's reading of the MQTT contract: every message docs/mqtt.schema.json accepts is
# stored whole; everything else becomes rejects with a reason, row by row where the envelope
# is fine, and no input ever raises.
import json
import time
from pathlib import Path

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.ingest import messages

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "mqtt.schema.json")
                    .read_text())
TOPIC = "laterne/lamp-001/readings"
NOW = 1780000000
TS_MAX = NOW + 86400


def readings_validator():
    schema = dict(SCHEMA)
    schema.pop("oneOf")
    schema["$ref"] = "#/$defs/readings"
    return jsonschema.Draft202012Validator(schema)


def msg(rows, node="lamp-001", **extra):
    doc = {"v": 1, "node": node, "cols": ["seq", "ts", "t", "p", "h", "flags"], "rows": rows}
    doc.update(extra)
    return json.dumps(doc).encode()


def read(payload, topic=TOPIC, node="lamp-001"):
    return messages.readings(topic, node, payload, 12.5, TS_MAX)


def test_a_good_batch_is_stored_whole():
    good, bad = read(msg([[1, NOW, 2153, 101325, 4512, 0], [2, None, None, None, None, 71]]))
    assert bad == []
    assert good == [("lamp-001", 1, NOW, 2153, 101325, 4512, 0, 12.5),
                    ("lamp-001", 2, None, None, None, None, 71, 12.5)]


def test_message_level_problems_reject_the_message():
    cases = {
        b"\xff\xfe": "not UTF-8",
        b"{not json": "not valid JSON",
        b"[1, 2]": "not a JSON object",
        msg([], node="lamp-002"): "does not match the topic",
        msg([], node="Lamp 1"): "node must be a node id",
        json.dumps({"v": 2, "node": "lamp-001", "cols": [], "rows": []}).encode(): "v must be 1",
        json.dumps({"v": 1, "node": "lamp-001", "cols": ["seq"], "rows": []}).encode(): "cols",
        msg("many"): "rows must be a list",
        msg([[i, NOW, 1, 1, 1, 0] for i in range(201)]): "at most 200",
        msg([], extra=1): "unknown fields extra",
    }
    for payload, reason in cases.items():
        good, bad = read(payload)
        assert good == [], payload
        assert len(bad) == 1 and reason in bad[0][3], (payload, bad)
        assert bad[0][:3] == (12.5, TOPIC, "lamp-001")


def test_row_level_problems_reject_only_that_row():
    rows = [[1, NOW, 2000, 100000, 5000, 0],
            [3, NOW + 60, 2000, 100000, 5000, 0],
            [2, NOW + 120, 2000, 100000, 5000, 0],        # goes backwards
            [4, 1500000000, 2000, 100000, 5000, 0],        # 2017: the clock was never set
            [5, TS_MAX + 1, 2000, 100000, 5000, 0],        # a day ahead
            [6, NOW, "20", 100000, 5000, 0],
            [7, NOW, 2000, 100000, 10001, 0],
            [8, NOW, 2000, 100000, 5000, 512],
            [9, NOW, 2000, 100000, 5000, None],
            [True, NOW, 2000, 100000, 5000, 0],
            [10, NOW, 2000, 100000, 5000],
            [11, 1.5e9, 2000, 100000, 5000, 0],
            [12, NOW, 2000, 100000, 5000, 0]]
    good, bad = read(msg(rows))
    assert [g[1] for g in good] == [1, 3, 12]
    reasons = [b[3] for b in bad]
    for expected in ("seq 2 goes backwards", "seq 4: absurd timestamp", "seq 5: absurd",
                     "seq 6: t must be an integer", "seq 7: h 10001 is outside",
                     "seq 8: flags 512", "seq 9: flags must be an integer",
                     "seq must be a non-negative integer", "a row must be a list of 6",
                     "seq 11: ts must be an integer"):
        assert any(expected in r for r in reasons), expected
    assert len(bad) == 10 and json.loads(bad[0][4]) == rows[2]


def test_status_and_last_will_become_health_rows():
    status = {"v": 1, "node": "lamp-001", "online": True, "fw": "0.1.0", "boot": 4,
              "uptime_s": 60, "reset_cause": "power_on", "spool_depth": 3, "spool_first": 17,
              "dropped": 0, "errors": "many", "last_error": None, "sensor": "ok",
              "free_heap": 81234, "rssi": -61}
    row, reject = messages.status("laterne/lamp-001/status", "lamp-001",
                                  json.dumps(status).encode(), 3.0)
    assert reject is None
    assert row[:15] == ("lamp-001", 3.0, True, "0.1.0", 4, 60, "power_on", 3, 17, 0, None, None,
                        "ok", 81234, -61)
    will, reject = messages.status("laterne/lamp-001/status", "lamp-001",
                                   b'{"v":1,"node":"lamp-001","online":false}', 4.0)
    assert reject is None and will[2] is False and will[3:15] == (None,) * 12
    for payload in (b"{}", b'{"v":1,"node":"lamp-001"}', b'{"v":1,"node":"lamp-009","online":true}'):
        row, reject = messages.status("laterne/lamp-001/status", "lamp-001", payload, 5.0)
        assert row is None and reject[3]


def test_topic_kinds():
    assert messages.topic_kind("city/laterne/lamp-001/readings", "city/laterne") == (
        "lamp-001", "readings")
    assert messages.topic_kind("laterne/lamp-001/config/set", "laterne") == (None, None)
    assert messages.topic_kind("other/lamp-001/status", "laterne") == (None, None)


ROW = st.tuples(st.integers(0, 2 ** 40), st.one_of(st.none(), st.integers(messages.MIN_TS, NOW)),
                st.one_of(st.none(), st.integers(-4000, 8500)),
                st.one_of(st.none(), st.integers(0, 200000)),
                st.one_of(st.none(), st.integers(0, 10000)), st.integers(0, 511))


@settings(max_examples=200, deadline=None)
@given(st.lists(ROW, max_size=200, unique_by=lambda r: r[0]))
def test_every_batch_the_schema_accepts_is_stored_whole(rows):
    rows = [list(r) for r in sorted(rows)]
    payload = msg(rows)
    readings_validator().validate(json.loads(payload))
    good, bad = read(payload)
    assert bad == [] and [list(g[1:7]) for g in good] == rows


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=6),
                            st.dictionaries(st.sampled_from(["v", "node", "cols", "rows", "x"]),
                                            inner, max_size=5)), max_leaves=30).map(
    lambda doc: json.dumps(doc).encode())))
def test_any_input_is_stored_or_rejected_never_raises(payload):
    good, bad = read(payload)
    row, reject = messages.status("laterne/lamp-001/status", "lamp-001", payload, time.time())
    assert (row is None) != (reject is None)
    for r in bad:
        assert r[3]
