# The health gate of a new app on trial (docs/node.md): the loader (/main.py) boots an update
# on trial; this gate keeps it once it has run at least min_s (deep-sleep wakes count), sampled
# and stored readings of its own and uploaded all of them, acknowledged: the loader's record
# ota/state is then rewritten without the trial and the status says "ok". Anything short of
# that, and the loader rolls back by itself. Small on purpose: it stays imported for a trial.
import json
import os
import sys

STATE = "ota/state"


def save(root, record):
    """Replace the loader's record in one atomic littlefs rename."""
    path = root + STATE
    with open(path + ".new", "w") as f:
        f.write(json.dumps(record))
    os.rename(path + ".new", path)


def drop(name):
    """Forget module laterne.<name>, so its memory is freed once nothing uses it."""
    sys.modules.pop("laterne." + name, None)
    import laterne
    laterne.__dict__.pop(name, None)


class Gate:
    """node.updater while the app is on trial: offers wait until the trial is over."""

    def __init__(self, node):
        self.node = node
        self.first_seq = node.spool.next_seq  # readings from here on are this app's own

    def after_upload(self, drained):
        node = self.node
        state = node.ota_state
        trial = state["trial"]
        if not drained or node.spool.next_seq <= self.first_seq:
            return
        clock = node.clock
        age = node.timebase.uptime_s()
        if node.cfg["power_mode"] == "deep_sleep":
            age += (trial["boots"] - 1) * node.cfg["sample_interval_s"]
        if age < trial["min_s"]:
            return
        version = state["version"]  # = VERSION: the app was built for the version offered
        record = {"slot": state["slot"], "version": version, "previous": state["previous"],
                  "last": {"version": version, "offer": trial["offer"], "result": "ok",
                           "reason": None}}
        save(node.root, record)
        node.log("update: %s proved itself and is kept" % version)
        node.ota_state = record
        node.updater = None
        node.publish_status()
        drop("otagate")

    def report(self):
        return self.node.ota_state["last"]

    def on_message(self, topic, message):
        pass

    def pump(self):
        pass

    def stay_awake(self):
        pass
