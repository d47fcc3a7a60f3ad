# The host side of updates over the air: the fleet key file, bundles (built by mpy-cross, read
# back verified, offers the node's own code accepts), the rollout's waves, halts, timeouts,
# resumption and chunk serving against a scripted broker, and the CLI's answers to bad input.
import json
import os
import queue
import struct
import subprocess
import zipfile

import pytest

import otakit
from host_tools import paths
from host_tools.errors import UserError
from host_tools.ota import bundle, keys
from host_tools.ota.rollout import Rollout, parse_waves
from laterne import otaoffer
from vboard_fixture import laterne


# -- keys ------------------------------------------------------------------------------------
def test_key_file_is_private_and_node_keys_differ(tmp_path):
    path = tmp_path / "keys.json"
    master = keys.load_or_create(path, log=lambda line: None)
    assert path.stat().st_mode & 0o777 == 0o600
    assert keys.load(path) == master and len(master) == 32
    assert keys.node_key(master, "lamp-001") != keys.node_key(master, "lamp-002")
    with pytest.raises(UserError, match="exists already"):
        keys.create(path)
    os.chmod(path, 0o644)
    with pytest.raises(UserError, match="can be read by other users"):
        keys.load(path)
    os.chmod(path, 0o600)
    path.write_text('{"something": "else"}')
    with pytest.raises(UserError, match="not a Laterne update key file"):
        keys.load(path)
    with pytest.raises(UserError, match="no key file"):
        keys.load(tmp_path / "missing.json")


def test_host_and_node_compute_the_same_hmac():
    key = bytes(range(32))
    text = "".join(otaoffer.signed_lines("lamp-1", "1.2.3", "00ff00ff", 6,
                                         [["laterne/a.mpy", 3, "0" * 64]]))
    assert keys.sign(key, text) == otakit.hmac(key, text.encode()).hex()


# -- bundles ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "app.zip"
    return out, bundle.build(out, version="7.8.9")


def test_a_bundle_holds_the_whole_app_precompiled_with_its_version(built, tmp_path):
    out, b = built
    sources = sorted(p.relative_to(paths.FIRMWARE_LIB).with_suffix(".mpy").as_posix()
                     for p in paths.FIRMWARE_LIB.rglob("*.py"))
    assert [f[0] for f in b.files] == sources
    again = bundle.load(out)
    assert again.version == "7.8.9" and again.files == b.files and again.mpy == 6
    lib = tmp_path / "lib"
    with zipfile.ZipFile(out) as z:  # the app as a slot holds it, loaded by MicroPython
        for name, _size, _sha in b.files:
            (lib / name).parent.mkdir(parents=True, exist_ok=True)
            (lib / name).write_bytes(z.read("files/" + name))
    run = subprocess.run([paths.micropython_exe(), "-c", "import sys; sys.path.insert(0, %r)\n"
                          "import laterne, laterne.ota\nprint(laterne.VERSION, laterne.__path__)"
                          % str(lib)], capture_output=True, text=True, timeout=60)
    assert run.stdout.split() == ["7.8.9", str(lib / "laterne")], run.stderr


def test_an_altered_bundle_is_refused(built, tmp_path):
    out, _b = built
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(out) as z, zipfile.ZipFile(bad, "w") as w:
        for info in z.infolist():
            data = z.read(info)
            if info.filename == "files/laterne/node.mpy":
                data = data[:-1] + b"\0"
            w.writestr(info, data)
    with pytest.raises(UserError, match="laterne/node.mpy does not match its manifest"):
        bundle.load(bad)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a usable update bundle"):
        bundle.load(tmp_path / "junk.zip")


def test_build_refuses_a_bad_version_or_folder(tmp_path):
    with pytest.raises(UserError, match="not like 1.2.3"):
        bundle.build(tmp_path / "x.zip", version="2.0-beta")
    with pytest.raises(UserError, match="not a Laterne firmware folder"):
        bundle.build(tmp_path / "x.zip", firmware_dir=tmp_path)


def test_the_offer_is_accepted_by_the_nodes_own_check_and_by_no_other_node(built):
    _out, b = built
    master = b"\x42" * 32
    message = bundle.offer(b, "lamp-007", keys.node_key(master, "lamp-007"), "12345678")
    doc = otaoffer.parse_offer(message.encode())
    otaoffer.verify_offer(doc, "lamp-007", keys.node_key(master, "lamp-007"), 6)
    with pytest.raises(ValueError, match="wrong key"):  # lamp-008's key cannot make it
        otaoffer.verify_offer(doc, "lamp-007", keys.node_key(master, "lamp-008"), 6)
    assert len(bundle.offer(b, "x" * 32, b"k" * 32, "12345678")) <= otaoffer.MAX_OFFER


# -- waves -----------------------------------------------------------------------------------
def test_waves_are_cumulative_counts():
    assert parse_waves("1,25%,100%", 10) == [1, 3, 10]
    assert parse_waves("1,25%,100%", 3) == [1, 3]
    assert parse_waves("1,25%,100%", 1) == [1]
    assert parse_waves("2,5", 3) == [2, 3]
    assert parse_waves("50%", 5) == [3]
    for bad in ("0", "x", "150%", "1,,2", "-1", "0%"):
        with pytest.raises(UserError):
            parse_waves(bad, 10)


# -- the rollout against a scripted broker ---------------------------------------------------
class Inbox(queue.Queue):
    def get(self, timeout=None):
        return queue.Queue.get(self, block=False)  # time passes on the Clock below only


class Broker:
    """Stands in for the MQTT connection: records publishes, and plays each node's answer to
    an offer (`behaviour[node]`: "ok", "rolled_back", "silent")."""

    def __init__(self, behaviour, version="0.2.0"):
        self.inbox = Inbox()
        self.published = []
        self.behaviour = behaviour
        self.version = version
        self.sessions = 1
        self.client = self

    def status(self, node, **fields):
        doc = {"v": 1, "node": node, "online": True, "fw": "0.1.0", "update": None}
        doc.update(fields)
        self.inbox.put(("laterne/%s/status" % node, json.dumps(doc).encode()))

    def publish(self, topic, payload, qos=0, retain=False):
        self.published.append((topic, payload, retain))
        node = topic.split("/")[1]
        if not topic.endswith("/ota/offer") or not payload:
            return
        offer = json.loads(payload)["offer"]
        how = self.behaviour.get(node, "ok")
        if how == "ok":
            self.status(node, fw=self.version, fw_previous="0.1.0",
                        update={"version": self.version, "offer": offer, "result": "ok"})
        elif how == "rolled_back":
            self.status(node, update={"version": self.version, "offer": offer,
                                      "result": "rolled_back", "reason": "crashed"},
                        crash="Traceback ...\nRuntimeError: boom\n")

    def offered(self):
        return [t.split("/")[1] for t, p, r in self.published if t.endswith("/offer") and p]

    def history(self, node):
        """What was published on the node's offer topic, in order: "offer" or "withdraw"."""
        return ["offer" if p else "withdraw" for t, p, r in self.published
                if t == "laterne/%s/ota/offer" % node]


def small_bundle(version="0.2.0"):
    return bundle.Bundle(version, 6, otakit.app_files(version))


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        self.t += 1.0
        return self.t


def rollout(broker, nodes=("lamp-001", "lamp-002", "lamp-003", "lamp-004"), waves="1,50%,100%",
            timeout=60.0, **statuses):
    for n in nodes:
        broker.status(n, **statuses.get(n.replace("-", "_"), {}))
    r = Rollout(broker, small_bundle(), b"\x01" * 32, timeout=timeout, clock=Clock())
    r.discover(settle=5)
    return r, r.plan(list(nodes), waves)


def outcomes(r):
    return {n: (t.outcome, t.reason) for n, t in r.targets.items()}


def test_waves_go_one_after_the_other_and_offers_are_withdrawn_when_done():
    broker = Broker({})
    r, waves = rollout(broker)
    assert waves == 3 and r.run(waves)
    assert broker.offered() == ["lamp-001", "lamp-002", "lamp-003", "lamp-004"]
    for n in r.targets:  # stale offers of an earlier push cleared first, none left behind
        assert broker.history(n) == ["withdraw", "offer", "withdraw"], n
    assert all(o == ("ok", None) for o in outcomes(r).values())
    assert [t.wave for t in r.targets.values()] == [1, 2, 3, 3]


def test_a_failed_canary_halts_and_nobody_else_is_offered():
    broker = Broker({"lamp-001": "rolled_back"})
    r, waves = rollout(broker)
    assert not r.run(waves)
    assert broker.offered() == ["lamp-001"]
    got = outcomes(r)
    assert got["lamp-001"] == ("rolled_back", "crashed: RuntimeError: boom")
    assert got["lamp-002"] == ("not offered", "rollout halted after wave 1")
    assert r.halted == "lamp-001 rolled_back"


def test_a_node_that_never_reports_times_out_and_halts():
    broker = Broker({"lamp-002": "silent"})
    r, waves = rollout(broker, timeout=30)
    assert not r.run(waves)
    got = outcomes(r)
    assert got["lamp-001"][0] == "ok" and got["lamp-002"][0] == "timeout"
    assert "no healthy report within 30 s (last: offered)" == got["lamp-002"][1]
    assert got["lamp-003"][0] == "not offered" and "lamp-003" not in broker.offered()


def test_an_offer_not_taken_up_is_published_again():
    broker = Broker({"lamp-001": "silent"})
    r, waves = rollout(broker, nodes=("lamp-001",), waves="1", timeout=200)
    assert not r.run(waves)
    assert 3 <= broker.history("lamp-001").count("offer") <= 200 // 30 + 1
    assert outcomes(r)["lamp-001"][0] == "timeout"


def test_running_again_resumes_nodes_already_updated_are_not_offered():
    broker = Broker({})
    done = {"fw": "0.2.0", "update": {"version": "0.2.0", "offer": "aaaaaaaa", "result": "ok"}}
    r, waves = rollout(broker, lamp_001=done, lamp_002=done)
    assert r.run(waves)
    assert broker.offered() == ["lamp-003", "lamp-004"]
    assert outcomes(r)["lamp-001"] == ("ok", "already running 0.2.0")


def test_news_from_an_earlier_offer_is_not_taken_for_this_one():
    broker = Broker({"lamp-001": "silent"})
    old = {"update": {"version": "0.2.0", "offer": "bbbbbbbb", "result": "refused", "reason": "x"}}
    r, waves = rollout(broker, nodes=("lamp-001",), waves="1", timeout=20, lamp_001=old)
    broker.status("lamp-001", **old)  # the retained status again, after our offer
    assert not r.run(waves)
    assert outcomes(r)["lamp-001"][0] == "timeout"


def test_chunk_requests_are_served_and_bad_ones_ignored():
    broker = Broker({"lamp-001": "silent"})
    r, waves = rollout(broker, nodes=("lamp-001",), waves="1")
    r._begin(r.targets["lamp-001"])
    b = r.bundle
    get = {"v": 1, "node": "lamp-001", "offer": r.offer_id, "file": 2, "offset": 1024, "size": 1024}
    for bad in (dict(get, offer="00000000"), dict(get, file=9), dict(get, offset=99999),
                dict(get, size=0), "not json"):
        r._on_request(r.targets["lamp-001"], "laterne/lamp-001/ota/get",
                      json.dumps(bad).encode() if isinstance(bad, dict) else bad.encode())
    assert not [t for t, p, _r in broker.published if t.endswith("/chunk")]
    r._on_request(r.targets["lamp-001"], "laterne/lamp-001/ota/get", json.dumps(get).encode())
    topic, payload, retain = broker.published[-1]
    name = b.files[2][0]
    assert topic == "laterne/lamp-001/ota/chunk" and not retain
    assert payload[:4] == bytes.fromhex(r.offer_id)
    assert struct.unpack(">HI", payload[4:10]) == (2, 1024)
    assert payload[10:] == b.data[name][1024:2048]
    assert r.targets["lamp-001"].outcome == "downloading"


def test_offers_are_published_again_in_a_new_broker_session():
    broker = Broker({"lamp-001": "silent"})
    r, waves = rollout(broker, nodes=("lamp-001",), waves="1")
    r._begin(r.targets["lamp-001"])
    r._drain(0)
    assert broker.offered() == ["lamp-001"]
    broker.sessions += 1  # the broker restarted: retained messages may be gone
    r._drain(0)
    assert broker.offered() == ["lamp-001", "lamp-001"]


# -- the command -----------------------------------------------------------------------------
def test_push_answers_bad_input_without_a_traceback(built, tmp_path):
    out, _b = built
    key_file = tmp_path / "keys.json"
    keys.create(key_file)
    cases = [
        (["--bundle", tmp_path / "none.zip", "--keys", key_file, "--all"], "no bundle"),
        (["--bundle", out, "--keys", tmp_path / "none.json", "--all"], "no key file"),
        (["--bundle", out, "--keys", key_file, "--node", "Lamp 1"], "not a node id"),
        (["--bundle", out, "--keys", key_file, "--node", "a", "--waves", "0"], "out of range"),
        (["--bundle", out, "--keys", key_file, "--all", "--timeout", "0"], "--timeout"),
    ]
    for args, message in cases:
        run = laterne("ota", "push", "--broker", "mqtt://127.0.0.1:9", *args)
        assert run.returncode == 2 and message in run.stderr, (args, run.stderr)
        assert "Traceback" not in run.stderr
    run = laterne("ota", "push", "--broker", "mqtt://127.0.0.1:9", "--bundle", out, "--keys",
                  key_file, "--all")
    assert run.returncode == 2 and "cannot reach the broker" in run.stderr, run.stderr


def test_build_command_reports_what_it_made(tmp_path):
    run = laterne("ota", "build", "--out", tmp_path / "b.zip", "--version", "1.2.3")
    assert run.returncode == 0, run.stderr
    assert "version 1.2.3" in run.stdout and (tmp_path / "b.zip").exists()


def test_ctrl_c_withdraws_the_offers_not_yet_taken():
    broker = Broker({"lamp-001": "silent"})
    r, waves = rollout(broker, nodes=("lamp-001", "lamp-002"), waves="100%")

    class Interrupting(Clock):
        def __call__(self):
            if self.t > 20:
                raise KeyboardInterrupt
            return Clock.__call__(self)
    r.clock = Interrupting()
    with pytest.raises(KeyboardInterrupt):
        r.run(waves)
    got = outcomes(r)
    assert got["lamp-001"] == ("withdrawn", "interrupted by the operator")
    assert got["lamp-002"][0] == "ok"
    assert broker.history("lamp-001") == ["withdraw", "offer", "withdraw"]


def test_progress_lines_and_the_final_table():
    import io
    from host_tools.ota import view
    broker = Broker({"lamp-002": "rolled_back"})
    out = io.StringIO()
    r, waves = rollout(broker, nodes=("lamp-001", "lamp-002", "lamp-003"))
    r.on_change = view.Live(out, Clock())
    assert not r.run(waves)
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["lamp-001: offered", "lamp-001: ok"]
    assert "lamp-002: rolled back (crashed: RuntimeError: boom)" in lines
    table = view.render(r, view.header(r)).splitlines()
    assert table[0] == "update 0.2.0 to 3 node(s): 1 ok, halted (lamp-002 rolled_back)"
    assert table[1].split() == ["node", "wave", "from", "to", "outcome", "reason"]
    assert table[3].split()[:5] == ["lamp-002", "2", "0.1.0", "0.2.0", "rolled"]
    assert table[4].split()[4:] == ["not", "offered", "rollout", "halted", "after", "wave", "2"]
