# Property tests: config validation (generated valid configs pass, generated broken ones name
# the key), secrets never leak, the remote allowlist, backoff bounds and spread, time fix-up.
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

import vclock
from laterne import backoff, config, configschema, flags, timebase

FAST = settings(max_examples=120, deadline=None)

label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
hostname = st.lists(label, min_size=1, max_size=3).map(".".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: "%d.%d.%d.%d" % t)
secret = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ!%&", min_size=8, max_size=40)
osrs = st.sampled_from([0, 1, 2, 4, 8, 16])


@st.composite
def valid_configs(draw):
    tls = draw(st.booleans())
    cfg = {
        "node_id": draw(st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,31}\Z")),
        "wifi": draw(st.lists(st.fixed_dictionaries(
            {"ssid": st.text("abcdefgh-_ ", min_size=1, max_size=32), "password": secret}),
            min_size=1, max_size=4)),
        "broker": {"host": draw(hostname | ipv4), "port": draw(st.integers(1, 65535)), "tls": tls,
                   "ca": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----" if tls else None,
                   "username": draw(st.none() | secret), "keepalive_s": draw(st.integers(10, 3600))},
    }
    if cfg["broker"]["username"] is not None:
        cfg["broker"]["password"] = draw(st.none() | secret)
    optional = {
        "sample_interval_s": st.integers(10, 3600), "upload_interval_s": st.integers(10, 86400),
        "status_interval_s": st.integers(60, 86400), "batch_size": st.integers(1, 200),
        "power_mode": st.sampled_from(["always_on", "deep_sleep"]),
        "spool_bytes": st.integers(32768, 4194304), "rtc_fast_path": st.booleans(),
        "topic_prefix": st.lists(label, min_size=1, max_size=3).map("/".join),
        "ntp_servers": st.lists(hostname | st.tuples(ipv4, st.integers(1, 65535)).map(
            lambda t: "%s:%d" % t), max_size=4),
        "sensor": st.fixed_dictionaries({}, optional={
            "address": st.sampled_from([None, 0x76, 0x77]), "model": st.sampled_from(["bme280", "bmp280"]),
            "osrs_t": osrs, "osrs_p": osrs, "osrs_h": osrs, "iir": st.sampled_from([0, 2, 4, 8, 16]),
            "temp_offset_centi": st.integers(-1000, 1000)}),
        "static_ip": st.none() | st.fixed_dictionaries(
            {"ip": ipv4, "netmask": ipv4, "gateway": ipv4, "dns": ipv4}),
        "site": st.none() | st.fixed_dictionaries({}, optional={
            "lamp_post": label, "lat": st.floats(-90, 90), "lon": st.floats(-180, 180)}),
        "safe_mode": st.fixed_dictionaries({}, optional={
            "crashes": st.integers(2, 50), "window_s": st.integers(60, 86400)}),
    }
    for key in draw(st.sets(st.sampled_from(sorted(optional)))):
        cfg[key] = draw(optional[key])
    lo = draw(st.integers(1, 3600))
    cfg["backoff_min_s"], cfg["backoff_max_s"] = lo, draw(st.integers(lo, 86400))
    return cfg


def subset_equal(given_, normalized):
    if isinstance(given_, dict):
        return all(subset_equal(v, normalized[k]) for k, v in given_.items())
    return given_ == normalized


@FAST
@given(valid_configs())
def test_generated_valid_configs_pass_and_normalize_idempotently(cfg):
    norm, errors = config.validate(cfg)
    assert errors == []
    assert subset_equal(cfg, norm)
    assert config.validate(json.loads(json.dumps(norm))) == (norm, [])


# (key path, bad values): each breaks exactly that key
BAD = [
    (("node_id",), ["", "UPPER", "-x", "a" * 33, 5, None, "a_b"]),
    (("sample_interval_s",), [9, 3601, "60", 60.5, True, None]),
    (("upload_interval_s",), [0, 86401, []]),
    (("batch_size",), [0, 201, False]),
    (("spool_bytes",), [32767, 2 ** 40]),
    (("power_mode",), ["sleep", 0, None]),
    (("topic_prefix",), ["", "a/+", "#", "/a", "a/", "a//b", "x" * 65]),
    (("rtc_fast_path",), [0, "false"]),
    (("broker", "host"), ["", "a..b", "-a", "h st", 7]),
    (("broker", "port"), [0, 65536, "1883"]),
    (("broker", "keepalive_s"), [0, 9, 3601]),
    (("broker", "tls"), ["yes", 1]),
    (("sensor", "osrs_t"), [3, -1, "1", 32]),
    (("sensor", "iir"), [1, 32]),
    (("sensor", "address"), [0x75, "0x76", 118.0]),
    (("sensor", "model"), ["bme680"]),
    (("sensor", "temp_offset_centi"), [1001, -1001]),
    (("safe_mode", "crashes"), [1, 51]),
    (("wifi",), [[], {}, "x", [{"ssid": "a"}] * 5]),
    (("static_ip",), [{"ip": "1.2.3.4"}, "1.2.3.4"]),
    (("ntp_servers",), ["pool.ntp.org", ["a:0"], ["a:x"], [""], ["a"] * 5]),
]


@FAST
@given(valid_configs(), st.sampled_from(BAD), st.data())
def test_generated_invalid_configs_name_the_key(cfg, bad, data):
    path, values = bad
    value = data.draw(st.sampled_from(values))
    target = cfg
    for k in path[:-1]:
        target = target.setdefault(k, {})
    target[path[-1]] = value
    _, errors = config.validate(cfg)
    name = ".".join(path)
    assert any(e.startswith(name) for e in errors), (name, value, errors)
    assert all(": " in e for e in errors)


@FAST
@given(valid_configs(), st.text(min_size=1, max_size=12).filter(lambda k: "." not in k))
def test_unknown_keys_rejected(cfg, key):
    if key in dict(configschema.SCHEMA):
        return
    cfg[key] = 1
    assert "%s: unknown key" % key in config.validate(cfg)[1]


@FAST
@given(valid_configs(), st.booleans())
def test_secrets_never_in_redacted_output_or_errors(cfg, break_secret):
    secrets = [n["password"] for n in cfg["wifi"]]
    secrets += [v for k, v in cfg["broker"].items() if k in ("username", "password") and v]
    if break_secret:  # make the secrets themselves invalid: errors must still not echo them
        for n in cfg["wifi"]:
            n["password"] = n["password"] * 9
        secrets = [n["password"] for n in cfg["wifi"]]
    text = json.dumps(config.redact(cfg)) + json.dumps(config.validate(cfg)[1])
    for s in secrets:
        assert s not in text


REMOTE_VALUES = {
    "sample_interval_s": st.integers(10, 3600), "upload_interval_s": st.integers(10, 86400),
    "status_interval_s": st.integers(60, 86400), "batch_size": st.integers(1, 200),
    "sensor.temp_offset_centi": st.integers(-1000, 1000), "sensor.osrs_t": osrs,
    "sensor.osrs_p": osrs, "sensor.osrs_h": osrs, "sensor.iir": st.sampled_from([0, 2, 4, 8, 16]),
    "power_mode": st.sampled_from(["always_on", "deep_sleep"]),
}


@FAST
@given(valid_configs(), st.dictionaries(st.sampled_from(sorted(REMOTE_VALUES)), st.just(0),
                                        min_size=1), st.data())
def test_remote_patch_of_allowlisted_keys_applies(cfg, keys, data):
    norm = config.validate(cfg)[0]
    patch = {k: data.draw(REMOTE_VALUES[k]) for k in keys}
    new, errors = config.apply_remote(norm, patch)
    assert errors == []
    for k, v in patch.items():
        parent, _, leaf = k.rpartition(".")
        assert (new[parent] if parent else new)[leaf] == v
    assert new["wifi"] == norm["wifi"] and new["broker"] == norm["broker"]


ANY_VALUE = st.one_of(st.integers(-5000, 100000), st.booleans(), st.none(), st.floats(0, 100),
                     st.text(max_size=12), st.sampled_from(["always_on", "deep_sleep", "nap"]))


@FAST
@given(valid_configs(), st.dictionaries(st.sampled_from(sorted(REMOTE_VALUES)), ANY_VALUE,
                                        min_size=1))
def test_remote_patch_is_judged_as_the_whole_schema_would(cfg, patch):
    """config/set checks only the patched keys (without loading the schema): it must accept
    exactly what validating the whole patched config accepts, with the same result."""
    norm = config.validate(cfg)[0]
    new, errors = config.apply_remote(norm, patch)
    whole = config.copy(norm)
    for k, v in patch.items():
        parent, _, leaf = k.rpartition(".")
        (whole[parent] if parent else whole)[leaf] = v
    full, full_errors = config.validate(whole)
    assert bool(errors) == bool(full_errors), (patch, errors, full_errors)
    assert sorted(errors) == sorted(full_errors)
    if not errors:
        assert new == full


@FAST
@given(valid_configs(), st.sampled_from(["wifi", "broker", "node_id", "topic_prefix",
                                         "spool_bytes", "broker.host", "sensor.model",
                                         "sensor.address", "ntp_servers", "safe_mode",
                                         "rtc_fast_path", "static_ip", "zzz"]))
def test_remote_patch_outside_allowlist_rejected(cfg, key):
    norm = config.validate(cfg)[0]
    before = json.dumps(norm, sort_keys=True)
    new, errors = config.apply_remote(norm, {key: 1, "batch_size": 10})
    assert new is norm and json.dumps(norm, sort_keys=True) == before
    assert any(e.startswith(key + ": not remotely settable") for e in errors)


# -- backoff --------------------------------------------------------------------------------
@FAST
@given(st.integers(1, 30), st.integers(30, 3600), st.integers(0, 2 ** 32), st.integers(1, 40))
def test_backoff_bounds_and_growth(base, top, seed, n):
    r = random.Random(seed)
    b = backoff.Backoff(base, top, r.random)
    prev_cap = 0
    for i in range(n):
        cap = b.ceiling()
        assert cap == min(top, base * 2 ** i)
        assert cap >= prev_cap
        d = b.next_delay()
        assert 0 <= d <= cap
        prev_cap = cap


@FAST
@given(st.integers(0, 2 ** 32))
def test_fleet_does_not_retry_in_lock_step(seed0):
    # 50 nodes lose the broker together; their retries must spread over the window
    fleet = [backoff.Backoff(2, 600, random.Random(seed0 + i).random) for i in range(50)]
    for attempt in range(6):
        delays = sorted(b.next_delay() for b in fleet)
        cap = min(600, 2 * 2 ** attempt)
        assert len({round(d, 3) for d in delays}) >= 45
        assert delays[-1] - delays[0] > cap / 2      # spread over most of the window
        assert delays[25] < cap * 0.8 and delays[25] > cap * 0.2


# -- time fix-up ----------------------------------------------------------------------------
@FAST
@given(st.integers(0, 10 ** 9), st.lists(st.integers(0, 10 ** 8), min_size=1, max_size=10),
       st.integers(1500000000, 2100000000), st.integers(0, 65535))
def test_fix_places_relative_readings_within_a_second(start_us, gaps_ms, sync_unix, boot):
    clock = vclock.VClock(uptime_us=start_us)
    cs = timebase.ClockState(clock, boot)
    taken = []  # (ts, flags, true offset before sync in ms)
    for g in gaps_ms:
        clock.sleep_ms(g)
        taken.append(cs.stamp() + (cs.elapsed_ms(),))
    clock.sleep_ms(777)
    sync_at = cs.elapsed_ms()
    cs.mark_synced(sync_unix)
    for ts, f, at_ms in taken:
        assert f == flags.TIME_RELATIVE
        fixed, ff = cs.fix(ts, boot, f)
        true = sync_unix - (sync_at - at_ms) / 1000
        assert abs(fixed - true) <= 1
        assert ff == flags.TIME_FIXED
        assert cs.fix(ts, (boot + 1) & 0xFFFF, f) == (None, f)
