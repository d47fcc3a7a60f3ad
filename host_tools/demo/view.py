# What the demo shows on the terminal: the monitor's fleet table (host_tools/fleet/state.py and
# fleet/view.py, the same code as `laterne monitor`) fed with the messages the demo's recorder
# receives, and the demo's announcements. On a terminal the table is redrawn in place every
# second with the latest announcements under it, so neither hides the other; on a pipe the
# announcements are plain lines and the table is printed every few seconds when it changed.
import collections
import sys
import threading
import time

from host_tools.fleet.state import FleetState
from host_tools.fleet.view import CLEAR, render_table


class DemoView:
    def __init__(self, prefix="laterne", stale_after=600, stream=None, tty=None, every=None):
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = every if every is not None else (1.0 if self.tty else 10.0)
        self.state = FleetState(prefix, stale_after)
        self.lock = threading.Lock()
        self.notes = collections.deque(maxlen=8)
        self.now = time.time  # the fleet's clock: the demo sets it to virtual time
        self.header = ""
        self.last_draw = None
        self.dirty = False

    def feed(self, topic, payload):
        """One MQTT message, from the recorder's network thread."""
        with self.lock:
            self.state.update(topic, payload, self.now())
            self.dirty = True

    def say(self, text):
        """An announcement: a line now on a pipe, under the table on a terminal."""
        self.notes.append(time.strftime("%H:%M:%S ") + text)
        if not self.tty or self.last_draw is None:
            self.stream.write("demo: %s\n" % text)
            self.stream.flush()
        else:
            self.draw()

    def tick(self, now_real):
        due = self.last_draw is None or now_real - self.last_draw >= self.every
        if due and (self.dirty or self.tty):
            self.draw(now_real)

    def draw(self, now_real=None, final=False):
        with self.lock:
            rows = self.state.table(self.now())
            self.dirty = False
        text = render_table(rows, color=self.tty, header=self.header)
        if self.tty and not final:
            text = CLEAR + text + "\n\n" + "\n".join(self.notes)
        self.stream.write(text + "\n\n")
        self.stream.flush()
        self.last_draw = now_real if now_real is not None else time.monotonic()

    def states(self):
        with self.lock:
            return {r["node"]: r["state"] for r in self.state.table(self.now())}
