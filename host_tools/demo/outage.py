# The demo's network outage for one virtual node: the node's Wi-Fi is cut by writing "down"
# to its link file (host_tools/virtual/board/network.py reads it) and restored by writing "up".
# The cut waits until the node has delivered something, so the outage never hides a node that
# is still starting; host times of the cut and the return are kept for the plot and summary.
import os
import time


def outage_times(duration):
    """(cut after, outage length) in real seconds: cut at ~20 % of the run, back at 50 %."""
    if duration is None:
        return 30.0, 45.0
    return 0.2 * duration, 0.3 * duration


class Outage:
    def __init__(self, node, link_path, cut_after, length, clock=time.time):
        self.node = node
        self.link = link_path
        self.cut_after, self.length = cut_after, length
        self.clock = clock
        self.down_host = self.up_host = None
        self.drained = False

    def step(self, elapsed, delivered):
        """Advance; returns "down", "up" or None. `delivered`: readings seen from the node."""
        if self.down_host is None:
            if elapsed >= self.cut_after and delivered:
                write_atomic(self.link, "down\n")
                self.down_host = self.clock()
                return "down"
        elif self.up_host is None and self.clock() - self.down_host >= self.length:
            write_atomic(self.link, "up\n")
            self.up_host = self.clock()
            return "up"
        return None

    def virtual(self, world):
        """The outage in the fleet's virtual time: dict node, down_ts, up_ts (None if open)."""
        if self.down_host is None:
            return None
        return {"node": self.node, "down_ts": world.virtual(self.down_host),
                "up_ts": None if self.up_host is None else world.virtual(self.up_host)}

    def as_dict(self):
        return {"node": self.node, "down_host": self.down_host, "up_host": self.up_host,
                "drained": self.drained}


def write_atomic(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
