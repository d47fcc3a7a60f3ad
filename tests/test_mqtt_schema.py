# docs/mqtt.schema.json against the real encoders (laterne.payload) and against broken
# messages, which must fail.
import json
from pathlib import Path

import jsonschema
import pytest

import vclock
from laterne import flags, payload, timebase
from batch_json import readings_json

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "docs" / "mqtt.schema.json").read_text())


def validator(name):
    schema = dict(SCHEMA)
    schema.pop("oneOf")
    schema["$ref"] = "#/$defs/" + name
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def state():
    clock = vclock.VClock()
    cs = timebase.ClockState(clock, 4)
    clock.sleep(300)
    cs.mark_synced(1700000300)
    return cs


STATUS_FIELDS = {
    "fw": "0.4.0", "boot": 4, "uptime_s": 300, "reset_cause": "power_on", "free_heap": 81234,
    "rssi": -61, "spool_depth": 12, "dropped": 0, "corrupt": 0, "sensor": "ok",
    "sensor_errors": 0, "errors": 1, "last_error": "upload: MQTTTimeout: no PUBACK",
    "time_synced": True, "synced_at": 1700000300, "safe_mode": False, "config_source": "config",
    "wifi": True, "broker": "up", "power_mode": "always_on",
}


def real_messages():
    rows = [(1, 1700000000, 2150, 101325, 4512, 0, 4),
            (2, 100, 2151, 0, 0, flags.TIME_RELATIVE, 4),
            (3, 50, -3999, 0, 0, flags.TIME_RELATIVE | flags.P_SKIPPED | flags.H_SKIPPED, 3)]
    return {
        "readings": json.loads(readings_json("lamp-001", rows, state())),
        "status": json.loads(payload.status_json("lamp-001", dict(STATUS_FIELDS))),
        "will": json.loads(payload.will_json("lamp-001")),
        "config_result": json.loads(payload.config_result_json("lamp-001", "r1", True, [], ["batch_size"])),
        "config_set": {"id": "r1", "set": {"batch_size": 20, "sensor": {"iir": 4}}},
    }


@pytest.mark.parametrize("name", ["readings", "status", "will", "config_result", "config_set"])
def test_real_messages_validate(name):
    msg = real_messages()[name]
    validator(name).validate(msg)
    jsonschema.Draft202012Validator(SCHEMA).validate(msg)  # the root accepts it too


def test_config_set_accepted_by_schema_is_accepted_by_node():
    msg = real_messages()["config_set"]
    rid, patch = payload.parse_config_set(json.dumps(msg).encode())
    assert rid == "r1" and patch == msg["set"]


def test_rejected_config_result_validates():
    msg = json.loads(payload.config_result_json("lamp-001", None, False,
                                                ["wifi: not remotely settable"], []))
    validator("config_result").validate(msg)


def mutate(msg, path, value):
    msg = json.loads(json.dumps(msg))
    target = msg
    for k in path[:-1]:
        target = target[k]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return msg


BAD = [
    ("readings", ("v",), 2), ("readings", ("node",), "Lamp 1"), ("readings", ("cols",), ["seq"]),
    ("readings", ("rows", 0, 1), "2023-11-14"), ("readings", ("rows", 0, 5), -1),
    ("readings", ("rows", 0, 0), 1.5), ("readings", ("rows", 0), [1, 2, 3]),
    ("readings", ("extra",), 1), ("readings", ("rows",), KeyError),
    ("status", ("online",), False), ("status", ("uptime_s",), KeyError),
    ("status", ("time_synced",), "yes"), ("status", ("reset_cause",), "cosmic ray"),
    ("will", ("online",), True), ("will", ("uptime_s",), 5),
    ("config_set", ("set",), {}), ("config_set", ("set", "wifi"), []),
    ("config_set", ("set", "batch_size"), 500), ("config_set", ("run",), "rm -rf"),
    ("config_result", ("ok",), "true"), ("config_result", ("errors",), ["x"]),
]


@pytest.mark.parametrize("name,path,value", BAD)
def test_bad_messages_fail(name, path, value):
    msg = mutate(real_messages()[name], path, value)
    with pytest.raises(jsonschema.ValidationError):
        validator(name).validate(msg)
