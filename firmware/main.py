# The loader: picks the app and runs it. The factory app is /lib (put there by `laterne
# deploy`); an update over the air lives in /ota/a or /ota/b, and the record ota/state says
# which one runs. A new app runs on trial: when it crashes, hangs (watchdog), fails to import
# or does not prove itself in time (laterne/ota.py commits it), the loader puts the previous
# app back by itself. Never updated over the air; when in doubt it boots the factory app.
import sys

import machine

STATE = "ota/state"


def _load():
    import json
    with open(STATE) as f:
        return json.loads(f.read())


def _save(record):
    import json
    import os
    # a temporary name of its own: the app's commit (ota/state.new) may be cut off by _expired
    with open(STATE + ".boot", "w") as f:
        f.write(json.dumps(record))
    os.rename(STATE + ".boot", STATE)  # atomic on littlefs


def _rollback(record, why):
    trial = record["trial"]
    record = {"slot": trial["good"], "version": record["previous"],
              "previous": record["version"],
              "last": {"version": record["version"], "offer": trial["offer"],
                       "result": "rolled_back", "reason": why}}
    try:
        _save(record)
    except Exception:
        pass  # this boot runs the previous app all the same; the next one saves it again
    return record


def choose(cause):
    """(record, forgive): the update record to boot (None: the factory app) and whether the
    reset that led here belongs to an update (its switch or its failed trial)."""
    try:
        record = _load()
    except Exception:
        return None, False  # no update ever installed (or deploy reset it)
    trial = record.get("trial")
    if not trial:
        return record, False
    try:
        why = trial.get("fail")  # written by _failed or _expired before their reset
        if not why and trial["boots"]:  # the first trial boot follows the switch's reset
            if cause == machine.WDT_RESET:
                why = "watchdog reset (hang)"
            elif cause == machine.HARD_RESET:
                why = "crashed (reset during trial)"
        if not why and trial["boots"] >= trial["max_boots"]:
            why = "no proof of health in %d boots" % trial["boots"]
        if not why:
            trial["boots"] += 1
            _save(record)
            return record, True
    except Exception as e:
        why = "trial record unusable: %r" % e
    return _rollback(record, why), True


def _expired(timer):
    """Timer callback: the trial's time is up without the app committing itself."""
    try:
        record = _load()
        trial = record.get("trial")
        if trial:
            trial["fail"] = "no proof of health within %d s" % trial["max_s"]
            _save(record)
            machine.reset()
    except Exception:
        pass


def _failed(record, e):
    """The app did not import, or an exception escaped its own crash handler."""
    sys.print_exception(e)
    why = "%s: %s" % (type(e).__name__, e)
    try:
        if record and record.get("trial"):
            record["trial"]["fail"] = why[:200]  # the next boot rolls back
            _save(record)
        elif record and record.get("slot"):  # a committed update that no longer starts
            _save({"slot": "", "version": None, "previous": record["version"],
                   "last": {"version": record["version"], "offer": None, "result": "failed",
                            "reason": "stopped starting: " + why[:160]}})
    except Exception:
        pass
    import time
    time.sleep_ms(1000)
    machine.reset()


def boot():
    try:
        record, forgive = choose(machine.reset_cause())
        slot = record and record["slot"]
    except Exception:
        record, forgive, slot = None, False, None
    timer = None
    if slot:
        import os
        sys.path.insert(0, os.getcwd().rstrip("/") + "/ota/" + slot)
        for name in list(sys.modules):  # a factory module imported earlier (virtual board)
            if name.startswith("laterne"):
                del sys.modules[name]
        try:
            if record.get("trial"):
                timer = machine.Timer(0)
                timer.init(mode=machine.Timer.ONE_SHOT, period=record["trial"]["max_s"] * 1000,
                           callback=_expired)
        except Exception as e:
            _failed(record, e)
    try:
        import gc
        gc.collect()  # the app starts on a heap without the loader's leftovers
        from laterne.hw import app
        app.main(record, forgive)
    except Exception as e:
        _failed(record, e)
    if timer is not None:
        timer.deinit()  # stopped at the REPL: no rollback under a technician's hands


if __name__ == "__main__":
    boot()
