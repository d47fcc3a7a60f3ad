# docs/mqtt.schema.json against the real encoders (laterne.payload) and against broken
# messages, which must fail.
import json
from pathlib import Path

import jsonschema
import pytest

import vclock
from host_tools.ingest import service
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
    "rssi": -61, "spool_depth": 12, "dropped": 0, "spool_first": 88, "corrupt": 0, "sensor": "ok",
    "sensor_errors": 0, "errors": 1, "last_error": "upload: MQTTTimeout: no PUBACK",
    "time_synced": True, "synced_at": 1700000300, "safe_mode": False, "config_source": "config",
    "wifi": True, "broker": "up", "power_mode": "always_on",
}


def ota_messages(root):
    """An offer as `laterne ota push` sends it, the node's request and its status report."""
    import otakit
    from host_tools.ota import bundle
    b = bundle.Bundle("9.0.0", 6, otakit.app_files())
    node = otakit.Node(root)
    node.ota().on_message("laterne/lamp-t/ota/offer",
                          bundle.offer(b, "lamp-t", otakit.KEY, "0a0b0c0d").encode())
    node.updater.pump()
    get = [m for leaf, m in node.uplink.sent if leaf == "ota/get"][0]
    return (json.loads(bundle.offer(b, "lamp-001", otakit.KEY, "0a0b0c0d")), json.loads(get),
            node.updater.report())


def real_messages(tmp_path):
    offer, get, downloading = ota_messages(str(tmp_path) + "/")
    rows = [(1, 1700000000, 2150, 101325, 4512, 0, 4),
            (2, 100, 2151, 0, 0, flags.TIME_RELATIVE, 4),
            (3, 50, -3999, 0, 0, flags.TIME_RELATIVE | flags.P_SKIPPED | flags.H_SKIPPED, 3)]
    return {
        "readings": json.loads(readings_json("lamp-001", rows, state())),
        "status": json.loads(payload.status_json("lamp-001", dict(STATUS_FIELDS))),
        "will": json.loads(payload.will_json("lamp-001")),
        "config_result": json.loads(payload.config_result_json("lamp-001", "r1", True, [], ["batch_size"])),
        "config_set": {"id": "r1", "set": {"batch_size": 20, "sensor": {"iir": 4},
                                           "delivery": "stored"}},
        "stored": json.loads(service.stored_json("lamp-001", 1041)),
        "ota_offer": offer,
        "ota_get": get,
        "status_updating": json.loads(payload.status_json("lamp-001", dict(
            STATUS_FIELDS, fw_previous="0.3.0", update=downloading))),
        "status_rolled_back": json.loads(payload.status_json("lamp-001", dict(
            STATUS_FIELDS, fw_previous="0.5.0", update={
                "version": "0.5.0", "offer": "0a0b0c0d", "result": "rolled_back",
                "reason": "watchdog reset (hang)"}))),
    }


@pytest.mark.parametrize("name", ["readings", "status", "will", "config_result", "config_set",
                                  "stored", "ota_offer", "ota_get", "status_updating",
                                  "status_rolled_back"])
def test_real_messages_validate(name, tmp_path):
    msg = real_messages(tmp_path)[name]
    validator(name.split("_")[0] if name.startswith("status") else name).validate(msg)
    jsonschema.Draft202012Validator(SCHEMA).validate(msg)  # the root accepts it too


def test_config_set_accepted_by_schema_is_accepted_by_node(tmp_path):
    msg = real_messages(tmp_path)["config_set"]
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
    ("config_set", ("set", "delivery"), "database"), ("status", ("spool_first",), -1),
    ("stored", ("seq",), 0), ("stored", ("seq",), "1041"), ("stored", ("node",), KeyError),
    ("stored", ("online",), True),
    ("ota_offer", ("hmac",), "not-hex"), ("ota_offer", ("files", 0, 0), "laterne/../main.py"),
    ("ota_offer", ("files", 0, 1), 0), ("ota_offer", ("version",), "v2"),
    ("ota_offer", ("run",), "x"), ("ota_get", ("file",), -1), ("ota_get", ("offer",), "xyz"),
    ("status_updating", ("update", "result"), "exploded"),
    ("status_updating", ("update", "progress"), 101),
]


@pytest.mark.parametrize("name,path,value", BAD)
def test_bad_messages_fail(name, path, value, tmp_path):
    msg = mutate(real_messages(tmp_path)[name], path, value)
    with pytest.raises(jsonschema.ValidationError):
        validator(name.split("_")[0] if name.startswith("status") else name).validate(msg)


def test_the_ingest_report_is_what_the_node_takes():
    from laterne.delivery import StoredDelivery
    policy = StoredDelivery("lamp-001", vclock.VClock(), "laterne/lamp-001/stored")
    assert policy._parse(service.stored_json("lamp-001", 1041).encode()) == 1041
    assert policy._parse(service.stored_json("lamp-002", 1041).encode()) is None
