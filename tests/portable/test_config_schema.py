# Config schema: validation with reasons, defaults, secrets, the remote allowlist, and the
# load/save protocol (config.json, config.new, config.bak) on a real directory.
import json
import os
import sys

from check import cleanup, raises, tmpdir

from laterne import config, configschema


def good():
    return {"node_id": "lamp-042", "wifi": [{"ssid": "street", "password": "wpa-secret-1"}],
            "broker": {"host": "mqtt.example.org", "port": 8883, "tls": True,
                       "ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                       "username": "lamp", "password": "broker-secret-2"}}


def test_valid_config_gets_defaults():
    cfg, errors = config.validate(good())
    assert errors == []
    assert cfg["sample_interval_s"] == 60 and cfg["upload_interval_s"] == 300
    assert cfg["status_interval_s"] == 900 and cfg["batch_size"] == 50
    assert cfg["topic_prefix"] == "laterne" and cfg["power_mode"] == "always_on"
    assert cfg["spool_bytes"] == 262144 and cfg["rtc_fast_path"] is False
    assert cfg["backoff_min_s"] == 2 and cfg["backoff_max_s"] == 600
    assert cfg["sensor"] == {"address": None, "model": "bme280", "osrs_t": 1, "osrs_p": 1,
                             "osrs_h": 1, "iir": 0, "temp_offset_centi": 0}
    assert cfg["broker"]["keepalive_s"] == 60 and cfg["static_ip"] is None
    assert configschema.defaults()["sample_interval_s"] == 60


def test_each_bad_value_is_named():
    cases = (
        ("node_id", "Lamp_1", "node_id"), ("node_id", "-lamp", "node_id"),
        ("node_id", "a" * 33, "node_id"),
        ("sample_interval_s", 5, "sample_interval_s"), ("sample_interval_s", True, "sample_interval_s"),
        ("sample_interval_s", 60.0, "sample_interval_s"), ("batch_size", 201, "batch_size"),
        ("power_mode", "turbo", "power_mode"), ("spool_bytes", 1024, "spool_bytes"),
        ("topic_prefix", "a/#", "topic_prefix"), ("topic_prefix", "/x", "topic_prefix"),
        ("wifi", [], "wifi"), ("wifi", [{"ssid": "x"}] * 5, "wifi"),
        ("wifi", [{"ssid": "", "password": ""}], "wifi[0].ssid"),
        ("wifi", [{"ssid": "x", "password": "short"}], "wifi[0].password"),
        ("static_ip", {"ip": "10.0.0.300", "netmask": "255.255.255.0", "gateway": "10.0.0.1",
                       "dns": "10.0.0.1"}, "static_ip.ip"),
        ("ntp_servers", ["pool.ntp.org:99999"], "ntp_servers[0]"),
        ("sensor", {"osrs_h": 3}, "sensor.osrs_h"), ("sensor", {"address": 0x75}, "sensor.address"),
        ("sensor", {"temp_offset_centi": 1001}, "sensor.temp_offset_centi"),
        ("site", {"lat": 91}, "site.lat"), ("rtc_fast_path", 1, "rtc_fast_path"),
        ("safe_mode", {"crashes": 1}, "safe_mode.crashes"), ("surprise", 1, "surprise"),
        ("backoff_max_s", 1, "backoff_max_s"),
    )
    for key, value, named in cases:
        cfg = good()
        cfg[key] = value
        _, errors = config.validate(cfg)
        assert errors, (key, value)
        assert any(e.startswith(named + ":") for e in errors), (key, value, errors)


def test_broker_rules():
    cfg = good()
    cfg["broker"]["ca"] = None
    assert any(e.startswith("broker.ca:") for e in config.validate(cfg)[1])
    cfg = good()
    cfg["broker"]["username"] = None
    assert any(e.startswith("broker.password:") for e in config.validate(cfg)[1])
    cfg = good()
    del cfg["broker"]["host"]
    assert "broker.host: required" in config.validate(cfg)[1]
    assert config.validate([])[1] == ["config: must be an object"]


def test_errors_and_redact_never_show_secrets():
    cfg = good()
    cfg["wifi"][0]["password"] = "x" * 70        # too long
    cfg["broker"]["password"] = "y" * 129        # too long
    cfg["broker"]["username"] = 12
    _, errors = config.validate(cfg)
    text = json.dumps(errors)
    assert "xxxxxxxx" not in text and "yyyyyyyy" not in text and len(errors) == 3
    red = config.redact(good())
    flat = json.dumps(red)
    assert "wpa-secret-1" not in flat and "broker-secret-2" not in flat and '"lamp"' not in flat
    assert red["wifi"][0]["password"] == "***" and red["broker"]["password"] == "***"
    assert red["wifi"][0]["ssid"] == "street"
    assert good()["wifi"][0]["password"] == "wpa-secret-1"  # the input is not changed


def test_apply_remote_allowlisted():
    cfg = config.validate(good())[0]
    new, errors = config.apply_remote(cfg, {"sample_interval_s": 120, "sensor": {"iir": 4},
                                           "sensor.temp_offset_centi": -150})
    assert errors == []
    assert new["sample_interval_s"] == 120 and new["sensor"]["iir"] == 4
    assert new["sensor"]["temp_offset_centi"] == -150
    assert cfg["sample_interval_s"] == 60 and cfg["sensor"]["iir"] == 0  # original untouched


def test_apply_remote_rejects_and_changes_nothing():
    cfg = config.validate(good())[0]
    before = json.dumps(cfg)
    for patch, named in (({"wifi": []}, "wifi"), ({"broker": {"host": "evil"}}, "broker"),
                         ({"node_id": "x"}, "node_id"), ({"sensor": {"model": "bmp280"}}, "sensor.model"),
                         ({"sample_interval_s": 5}, "sample_interval_s"),
                         ({"batch_size": 10, "topic_prefix": "x"}, "topic_prefix"),
                         ({"power_mode": "nap"}, "power_mode"), ({}, "set")):
        new, errors = config.apply_remote(cfg, patch)
        assert new is cfg and errors, patch
        assert any(e.startswith(named + ":") for e in errors), (patch, errors)
    assert json.dumps(cfg) == before
    assert "wifi" not in config.REMOTE_KEYS and "broker.host" not in config.REMOTE_KEYS


def test_config_set_never_loads_the_schema_and_the_node_lets_it_go():
    """The schema (about 15 KB on the node's heap) is loaded for a whole-config check only;
    a remote change is checked with config.REMOTE alone."""
    cfg = config.validate(good())[0]
    name = "laterne.configschema"
    if sys.implementation.name == "micropython":
        assert name not in sys.modules
    held = sys.modules.pop(name, None)
    try:
        new, errors = config.apply_remote(cfg, {"batch_size": 20, "sensor": {"iir": 4}})
        assert errors == [] and new["batch_size"] == 20
        assert name not in sys.modules
    finally:
        if held is not None:
            sys.modules[name] = held


def test_save_then_load_and_backup_fallback():
    root = tmpdir()
    try:
        assert config.load(root)[0] is None and config.load(root)[1] is None
        saved = config.save(root, good())
        cfg, source, errors = config.load(root)
        assert (cfg, source, errors) == (saved, "config", [])
        names = sorted(os.listdir(root))
        assert names == ["config.bak", "config.json", "config.ok"], names
        with open(root + "config.json", "w") as f:
            f.write('{"node_id": "broken"')
        cfg, source, errors = config.load(root)
        assert source == "backup" and cfg == saved
        assert errors[0].startswith("config.json:") and "JSON" in errors[0]
        with open(root + "config.json", "w") as f:
            f.write(" " * 9000)
        cfg, source, errors = config.load(root)
        assert source == "backup" and "larger than" in errors[0]
        with open(root + "config.bak", "w") as f:
            f.write(json.dumps({"node_id": "Bad!"}))
        cfg, source, errors = config.load(root)
        assert cfg is None and source is None and len(errors) == 2
        raises(ValueError, config.save, root, {"node_id": "x"})
    finally:
        cleanup(root)


def _counting_validate(calls):
    real = config.validate

    def counting(cfg):
        calls.append(1)
        return real(cfg)
    return real, counting


def test_a_boot_takes_the_config_it_checked_before_without_the_schema():
    """config.ok vouches for the config.json text that passed this firmware's schema: the
    next boot takes it as it is. A changed file, or another firmware, is checked again."""
    root = tmpdir()
    calls = []
    real, config.validate = _counting_validate(calls)
    try:
        saved = config.save(root, good())
        calls.clear()
        assert config.load(root) == (saved, "config", []) and calls == []
        text = json.dumps(saved)
        changed = dict(saved, sample_interval_s=120)
        with open(root + "config.json", "w") as f:  # written by hand (or by a host)
            f.write(json.dumps(changed))
        assert config.load(root)[0]["sample_interval_s"] == 120 and calls == [1]
        assert config.load(root)[0] == changed and calls == [1]  # vouched for now
        version = config.VERSION
        config.VERSION = version + "-next"
        try:
            assert config.load(root)[0] == changed and calls == [1, 1]
        finally:
            config.VERSION = version
        with open(root + "config.json", "w") as f:
            f.write(text[:-1])  # torn: the proof no longer matches, the backup is used
        cfg, source, errors = config.load(root)
        assert source == "backup" and cfg == changed and errors
    finally:
        config.validate = real
        cleanup(root)


def test_a_config_that_relies_on_defaults_is_checked_at_every_boot():
    root = tmpdir()
    calls = []
    real, config.validate = _counting_validate(calls)
    try:
        with open(root + "config.json", "w") as f:
            f.write(json.dumps(good()))  # what a person may write: defaults left out
        for _ in range(2):
            cfg, source, _ = config.load(root)
            assert source == "config" and cfg["batch_size"] == 50
        assert calls == [1, 1] and "config.ok" not in os.listdir(root)
    finally:
        config.validate = real
        cleanup(root)


def test_load_refreshes_missing_backup():
    root = tmpdir()
    try:
        with open(root + "config.json", "w") as f:
            f.write(json.dumps(good()))  # as written over USB, no backup yet
        assert config.load(root)[1] == "config"
        os.remove(root + "config.json")
        cfg, source, _ = config.load(root)
        assert source == "backup" and cfg["node_id"] == "lamp-042"
    finally:
        cleanup(root)


def test_defaults_shape_for_the_fallback_node():
    d = config.defaults()
    assert d["node_id"] is None and d["wifi"] == [] and d["broker"]["host"] is None
    assert d["broker"]["port"] == 1883 and d["safe_mode"] == {"crashes": 3, "window_s": 600,
                                                             "safe_s": 3600}
    d["sensor"]["iir"] = 16
    assert config.defaults()["sensor"]["iir"] == 0  # a fresh copy each time
