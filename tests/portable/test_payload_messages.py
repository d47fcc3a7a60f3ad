# The JSON messages of the MQTT contract, parsed back and checked field by field.
import json

from check import raises

import vclock
from batch_json import readings_json
from laterne import flags, payload, timebase


def synced_state(boot, boot_unix, uptime_s):
    clock = vclock.VClock()
    cs = timebase.ClockState(clock, boot)
    clock.sleep(uptime_s)
    cs.mark_synced(boot_unix + uptime_s)
    return cs


def test_topic():
    assert payload.topic("laterne", "lamp-001", "readings") == "laterne/lamp-001/readings"
    assert payload.topic("city/x", "n", "config/set") == "city/x/n/config/set"


def test_readings_batch_fixes_time_and_nulls_skipped_channels():
    cs = synced_state(boot=5, boot_unix=1700000000, uptime_s=600)
    rows = [
        (10, 1699990000, 2150, 101325, 4512, 0, 4),                      # absolute
        (11, 120, 2151, 101320, 4500, flags.TIME_RELATIVE, 5),           # this boot: fixed
        (12, 300, 2152, 0, 0, flags.TIME_RELATIVE | flags.REINIT, 4),    # other boot: null
        (13, 1700000500, 2153, 0, 0, flags.P_SKIPPED | flags.H_SKIPPED, 5),
        (14, 1700000560, 0, 101300, 4400, flags.T_SKIPPED, 5),
    ]
    doc = json.loads(readings_json("lamp-001", rows, cs))
    assert doc["v"] == 1 and doc["node"] == "lamp-001"
    assert doc["cols"] == ["seq", "ts", "t", "p", "h", "flags"]
    assert doc["rows"] == [
        [10, 1699990000, 2150, 101325, 4512, 0],
        [11, 1700000120, 2151, 101320, 4500, flags.TIME_FIXED],
        [12, None, 2152, 0, 0, flags.TIME_UNKNOWN | flags.REINIT],
        [13, 1700000500, 2153, None, None, flags.P_SKIPPED | flags.H_SKIPPED],
        [14, 1700000560, None, 101300, 4400, flags.T_SKIPPED],
    ]


def test_readings_empty_batch_and_size_of_a_full_batch():
    cs = synced_state(1, 1700000000, 10)
    assert json.loads(readings_json("n", [], cs))["rows"] == []
    rows = [(100000 + i, 1700000000 + 60 * i, -1234, 101325, 10000, 0, 1) for i in range(50)]
    text = readings_json("lamp-001", rows, cs)
    assert len(json.loads(text)["rows"]) == 50
    assert len(text) < 3000  # one batch stays small on the node's heap


def test_status_and_will():
    doc = json.loads(payload.status_json("n1", {"fw": "0.1", "uptime_s": 5, "online": False}))
    assert doc == {"v": 1, "node": "n1", "online": True, "fw": "0.1", "uptime_s": 5}
    assert json.loads(payload.will_json("n1")) == {"v": 1, "node": "n1", "online": False}


def test_config_result():
    doc = json.loads(payload.config_result_json("n1", "r7", False, ["wifi: not remotely settable"], []))
    assert doc == {"v": 1, "node": "n1", "id": "r7", "ok": False,
                   "errors": ["wifi: not remotely settable"], "applied": []}
    doc = json.loads(payload.config_result_json("n1", None, True, [], ["batch_size"]))
    assert doc["ok"] is True and doc["id"] is None and doc["applied"] == ["batch_size"]


def test_parse_config_set():
    rid, patch = payload.parse_config_set(b'{"id":"r1","set":{"batch_size":20}}')
    assert rid == "r1" and patch == {"batch_size": 20}
    assert payload.parse_config_set(b'{"set":{"a":1}}') == (None, {"a": 1})


def test_parse_config_set_rejects_with_reason():
    cases = (
        (b"\xff\xfe", "UTF-8"), (b"{not json", "JSON"), (b"[1,2]", "object"),
        (b'{"set":[]}', "set"), (b'{"set":{}}', "set"), (b'{"id":5,"set":{"a":1}}', "id"),
        (b'{"set":{"a":1},"run":"x"}', "run"),
        (b'{"set":{"a":"' + b"x" * 3000 + b'"}}', "exceeds"),
    )
    for data, word in cases:
        e = raises(ValueError, payload.parse_config_set, data)
        assert word in str(e), (data[:20], str(e))
