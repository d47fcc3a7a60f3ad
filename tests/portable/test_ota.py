# Updates over the air on the node (laterne.ota, otaoffer, otagate): HMAC against RFC 4231,
# offers refused for every reason the issue names, a download verified file by file and
# switched by one record, resumption after a reset, unchanged files copied instead of fetched,
# and the trial's health gate. Runs on CPython and MicroPython (littlefs on MicroPython).
import binascii
import json
import sys

import otakit
from check import raises
from laterne import VERSION, ota, otagate, otaoffer
from otakit import KEY, Node, Push, app_files, fresh_root, offer, read_state, slot_files


def hexmac(key, data):
    return binascii.hexlify(otakit.hmac(key, data)).decode()


def test_hmac_sha256_matches_rfc_4231():
    assert hexmac(b"\x0b" * 20, b"Hi There") == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    assert hexmac(b"Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    long_key = b"\xaa" * 131  # longer than a block: hashed first
    assert hexmac(long_key, b"Test Using Larger Than Block-Size Key - Hash Key First") == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")


def test_signed_text_names_node_version_offer_and_every_file():
    text = "".join(otaoffer.signed_lines("lamp-7", "1.2.3", "00ff00ff", 6,
                                         [["laterne/a.mpy", 10, "ab" * 32]]))
    assert text == ("laterne-ota 1\nnode lamp-7\nversion 1.2.3\noffer 00ff00ff\nmpy 6\n"
                    "file laterne/a.mpy 10 " + "ab" * 32 + "\n")


def test_versions_compare_as_numbers():
    assert otaoffer.parse_version("0.10.0") > otaoffer.parse_version("0.9.7")
    assert otaoffer.parse_version("1.0") < otaoffer.parse_version("1.0.1")
    for bad in ("", "1..2", "v1.2", "1.2.3.4.5", "1.2a", None, 12, "1" * 30):
        raises(ValueError, otaoffer.parse_version, bad)


def checked(message, key=KEY, node="lamp-t", mpy=6):
    doc = otaoffer.parse_offer(message)
    otaoffer.verify_offer(doc, node, key, mpy)
    return doc


def test_a_genuine_offer_passes():
    doc = checked(offer(app_files()))
    assert doc["version"] == "9.0.0" and len(doc["files"]) == 3


def reason(fn, *args):
    return str(raises(ValueError, fn, *args))


def test_offers_refused_with_a_reason():
    files = app_files()
    assert "wrong key" in reason(checked, offer(files, key=b"\x22" * 32))
    assert "another node" in reason(checked, offer(files, node="lamp-u"))
    assert "no update key" in reason(checked, offer(files), None)
    assert ".mpy v6" in reason(checked, offer(files), KEY, "lamp-t", 5)
    doc = json.loads(offer(files))
    doc["files"][1][2] = "00" * 32  # the manifest altered after signing
    assert "wrong key, or altered" in reason(checked, json.dumps(doc).encode())
    doc = json.loads(offer(files))
    doc["version"] = "99.0.0"
    assert "altered" in reason(checked, json.dumps(doc).encode())
    assert "not JSON" in reason(checked, b"\xff{")
    assert "exceeds" in reason(checked, b" " * 5000)


def test_offers_with_unsafe_or_oversized_files_are_refused():
    for path in ("laterne/../main.py", "/laterne/x.mpy", "lib/x.mpy", "laterne//x.mpy",
                 "laterne/.hidden", "laterne/X.mpy"):
        assert "bad file entry" in reason(checked, offer({path: b"x"}))
    assert "bad file entry" in reason(checked, offer({"laterne/big.mpy": b"x" * 70000}))
    many = dict(("laterne/m%d.mpy" % i, b"x") for i in range(33))
    assert "1..32 files" in reason(checked, offer(many))


def offered(files=None, state=None):
    """A node that just got an offer of `files` (default: app_files()), and its push."""
    root = fresh_root()
    files = files or app_files()
    node = Node(root, state)
    node.take(offer(files))
    return root, node, files, Push(node, files)


def test_download_is_verified_then_switched_by_one_record():
    root, node, files, push = offered()
    assert push.run(), "the node switched and reset"
    assert slot_files(root, "a") == files
    rec = read_state(root)
    assert rec["slot"] == "a" and rec["version"] == "9.0.0" and rec["previous"] == VERSION
    trial = rec["trial"]
    assert trial["good"] == "" and trial["boots"] == 0 and trial["offer"] == "0a0b0c0d"
    assert (trial["min_s"], trial["max_s"], trial["max_boots"]) == (120, 360, 4)
    assert node.uplink.closed == 1  # DISCONNECT first: the restart does not fire the will
    assert push.served == sum(len(b) for b in files.values())
    assert node.uplink.client.subscriptions == ["laterne/lamp-t/ota/chunk"]


def test_next_update_goes_to_the_other_slot_and_remembers_the_previous_app():
    root, node, files, push = offered(state={"slot": "a", "version": VERSION,
                                             "previous": "0.0.1"})
    assert push.run()
    rec = read_state(root)
    assert rec["slot"] == "b" and rec["trial"]["good"] == "a" and rec["previous"] == VERSION


def test_a_reset_mid_download_keeps_complete_files_and_fetches_the_rest():
    root, node, files, push = offered()
    for _ in range(5):  # __init__ and hw/app (a chunk each) done, node.mpy (3) partly there
        node.updater.pump()
        push.answer()
    node = Node(root)  # the power came back: a new boot, the retained offer again
    node.take(offer(files))
    again = Push(node, files)
    assert again.run()
    assert slot_files(root, "a") == files
    assert again.served == len(files["laterne/node.mpy"])


def test_a_tampered_file_is_fetched_twice_then_refused_and_nothing_switches():
    root, node, files, push = offered()
    push.alter = "laterne/node.mpy"
    assert not push.run()
    report = node.ota_state["last"]
    assert report["result"] == "refused" and "laterne/node.mpy does not match" in report["reason"]
    assert report["offer"] == "0a0b0c0d" and node.statuses >= 2  # accepted, then refused
    assert node.updater is None
    raises(OSError, read_state, root)  # still the factory app


def test_older_and_same_version_offers():
    root = fresh_root()
    node = Node(root)
    old = "0.0.1"
    node.take(offer(app_files(old), version=old))
    assert node.updater.last["result"] == "refused"
    assert "older than the running" in node.updater.last["reason"]
    node.updater.pump()  # reports, then drops itself
    assert node.updater is None and node.ota_state["last"]["version"] == old
    node.take(offer(app_files(VERSION), version=VERSION))
    assert node.updater.last is None and node.updater.offer is None  # already running: quiet


def test_a_withdrawn_offer_stops_the_download():
    root, node, files, push = offered()
    node.updater.pump()
    node.take(b"")
    assert node.updater.last["result"] == "withdrawn"
    node.updater.pump()
    assert node.updater is None


def test_unchanged_files_are_copied_from_the_running_app():
    running = ota._running_dir()
    with open(running + "/flags.py", "rb") as f:  # the tests run the source files
        same = f.read()
    files = app_files()
    files["laterne/flags.py"] = same
    root, node, files, push = offered(files)
    assert push.run()
    assert slot_files(root, "a")["laterne/flags.py"] == same
    assert push.served == sum(len(b) for p, b in files.items() if p != "laterne/flags.py")


def test_requests_are_asked_again_when_nobody_answers():
    root, node, files, push = offered()

    def asked():
        return len([m for leaf, m in node.uplink.sent if leaf == "ota/get"])
    node.updater.pump()
    node.updater.pump()
    assert asked() == 1
    node.clock.sleep(16)
    node.updater.pump()
    assert asked() == 2
    node.clock.sleep(16)  # now it waits twice as long
    node.updater.pump()
    assert asked() == 2
    node.uplink.connects += 1  # a new session: subscribe again and ask at once
    node.updater.pump()
    assert len(node.uplink.client.subscriptions) == 2 and asked() == 3


def trial_node(root, cfg=None, boots=1):
    """A node whose app runs on trial (the record as the switch wrote it)."""
    cfg = cfg or otakit.CFG
    min_s, max_s, max_boots = ota.trial_limits(cfg)
    state = {"slot": "a", "version": VERSION, "previous": "0.0.1",
             "trial": {"good": "", "offer": "0a0b0c0d", "boots": boots, "min_s": min_s,
                       "max_s": max_s, "max_boots": max_boots},
             "last": {"version": VERSION, "offer": "0a0b0c0d", "result": "trial", "reason": None}}
    ota._mkdirs(root + otagate.STATE)
    otagate.save(root, state)
    node = Node(root, state, cfg)
    node.updater = otagate.Gate(node)
    return node


def test_a_new_app_is_kept_only_after_it_ran_sampled_and_uploaded():
    root = fresh_root()
    node = trial_node(root)
    node.spool.next_seq += 1  # sampled and stored a reading of its own
    node.updater.after_upload(True)
    assert "trial" in read_state(root), "too early: one upload interval must pass"
    node.clock.sleep(130)
    node.updater.after_upload(False)
    assert "trial" in read_state(root), "the spool was not drained"
    node.updater.after_upload(True)
    rec = read_state(root)
    assert "trial" not in rec and rec["slot"] == "a" and rec["previous"] == "0.0.1"
    assert rec["last"] == {"version": VERSION, "offer": "0a0b0c0d", "result": "ok", "reason": None}
    assert node.updater is None and node.statuses == 1
    assert "laterne.otagate" not in sys.modules


def test_offers_wait_while_a_new_app_is_on_trial():
    root = fresh_root()
    node = trial_node(root)
    node.take(offer(app_files(), offer_id="22222222"))
    node.updater.pump()
    assert isinstance(node.updater, otagate.Gate) and node.statuses == 0
    assert node.updater.report()["result"] == "trial"


def test_a_new_app_that_stored_nothing_of_its_own_is_not_kept():
    root = fresh_root()
    node = trial_node(root)
    node.clock.sleep(600)
    node.updater.after_upload(True)  # uploaded, but only readings from before the switch
    assert "trial" in read_state(root)


def test_deep_sleep_trials_count_their_wakes():
    root = fresh_root()
    cfg = dict(otakit.CFG, power_mode="deep_sleep", upload_interval_s=300)
    assert ota.trial_limits(cfg) == (300, 900, 18)
    node = trial_node(root, cfg, boots=5)  # four wakes of 60 s behind it
    node.spool.next_seq += 1
    node.updater.after_upload(True)
    assert "trial" in read_state(root)
    node = trial_node(root, cfg, boots=6)
    node.spool.next_seq += 1
    node.updater.after_upload(True)
    assert "trial" not in read_state(root)


def test_the_module_is_dropped_when_finished():
    root = fresh_root()
    node = Node(root)
    node.take(offer(app_files(VERSION), version=VERSION))
    node.updater.pump()
    assert node.updater is None
    import laterne
    for name in ("ota", "otaoffer"):
        assert "laterne." + name not in sys.modules and not hasattr(laterne, name), name
    from laterne import ota as again  # noqa: F401 (the next offer imports it anew)
