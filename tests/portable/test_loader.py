# The loader (firmware/main.py) deciding what boots: the factory app without a record, a
# committed update as recorded, a new app on trial counted boot by boot, and a rollback to
# the previous app after a crash, a watchdog reset, too many boots, a failure it noted
# itself, or the trial's time running out. Runs on CPython and MicroPython.
import json
import os

import machine
from check import raises
from otakit import fresh_root

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
LOADER = {"__name__": "loader"}
with open(_HERE + "/../../firmware/main.py") as _f:
    exec(_f.read(), LOADER)
choose = LOADER["choose"]

TRIAL = {"slot": "b", "version": "0.3.0", "previous": "0.2.0",
         "trial": {"good": "a", "offer": "0a0b0c0d", "boots": 0, "min_s": 120, "max_s": 360,
                   "max_boots": 4},
         "last": {"version": "0.3.0", "offer": "0a0b0c0d", "result": "trial", "reason": None}}


def on_flash(record):
    """A fresh root holding this ota/state (a str is written as it is), the loader's."""
    root = fresh_root()
    os.mkdir(root + "ota")
    LOADER["STATE"] = root + "ota/state"
    if record is not None:
        with open(LOADER["STATE"], "w") as f:
            f.write(record if isinstance(record, str) else json.dumps(record))


def stored():
    with open(LOADER["STATE"]) as f:
        return json.loads(f.read())


def trial(**changes):
    rec = json.loads(json.dumps(TRIAL))
    rec["trial"].update(changes)
    return rec


def test_no_record_boots_the_factory_app():
    on_flash(None)
    assert choose(machine.PWRON_RESET) == (None, False)


def test_an_unreadable_record_boots_the_factory_app():
    on_flash('{"slot": "a", "vers')
    assert choose(machine.HARD_RESET) == (None, False)


def test_a_committed_update_boots_as_recorded_and_crashes_count():
    rec = {"slot": "a", "version": "0.2.0", "previous": "0.1.0", "last": None}
    on_flash(rec)
    assert choose(machine.WDT_RESET) == (rec, False)


def test_the_first_trial_boot_follows_the_switch_reset_and_is_counted():
    on_flash(trial())
    rec, forgive = choose(machine.HARD_RESET)
    assert rec["slot"] == "b" and rec["trial"]["boots"] == 1 and forgive
    assert stored()["trial"]["boots"] == 1


def test_power_cuts_deep_sleep_and_soft_resets_do_not_end_a_trial():
    on_flash(trial(boots=1))
    for n, cause in enumerate((machine.PWRON_RESET, machine.DEEPSLEEP_RESET,
                               machine.SOFT_RESET)):
        rec, forgive = choose(cause)
        assert rec["slot"] == "b" and rec["trial"]["boots"] == 2 + n and forgive


def rolled_back(cause, why):
    rec, forgive = choose(cause)
    assert forgive, "the failed trial's reset must not count as a crash of the previous app"
    assert rec == stored()
    assert rec["slot"] == "a" and rec["version"] == "0.2.0" and rec["previous"] == "0.3.0"
    assert "trial" not in rec
    last = rec["last"]
    assert last["result"] == "rolled_back" and last["offer"] == "0a0b0c0d", last
    assert why in last["reason"], last
    assert choose(machine.HARD_RESET) == (rec, False)  # from now on a plain record


def test_a_crash_during_the_trial_rolls_back():
    on_flash(trial(boots=1))
    rolled_back(machine.HARD_RESET, "crashed")


def test_a_hang_during_the_trial_rolls_back():
    on_flash(trial(boots=2))
    rolled_back(machine.WDT_RESET, "watchdog")


def test_too_many_trial_boots_roll_back():
    on_flash(trial(boots=4))
    rolled_back(machine.PWRON_RESET, "no proof of health in 4 boots")


def test_a_failure_the_loader_noted_rolls_back_with_its_reason():
    on_flash(trial(boots=1, fail="ImportError: no module named 'laterne.node'"))
    rolled_back(machine.HARD_RESET, "no module named")


def test_a_broken_trial_record_rolls_back():
    on_flash(trial(boots="many"))
    rolled_back(machine.PWRON_RESET, "trial record unusable")


def test_the_trial_deadline_notes_the_failure_and_resets():
    on_flash(trial(boots=1))
    e = raises(machine.BoardReset, LOADER["_expired"], None)
    assert e.cause == machine.HARD_RESET
    assert stored()["trial"]["fail"] == "no proof of health within 360 s"
    rolled_back(machine.HARD_RESET, "within 360 s")


def test_the_deadline_does_nothing_once_the_app_committed():
    rec = {"slot": "b", "version": "0.3.0", "previous": "0.2.0", "last": None}
    on_flash(rec)
    LOADER["_expired"](None)
    assert stored() == rec
