# Hypothesis state machines: the spool (in a real directory) against a plain list of the
# readings it was given. Appends, bulk extends, peeks, acks, restarts and capacity overflow;
# the second machine adds the RTC fast path and power-ons that wipe RTC memory.
import shutil
import tempfile

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from laterne.spool import Spool
from ramrtc import RamRtc

READINGS = st.tuples(              # the order laterne/reading.py defines
    st.integers(0, 2 ** 32 - 1),   # ts
    st.integers(-32768, 32767),    # t
    st.integers(0, 131071),        # p
    st.integers(0, 16383),         # h
    st.integers(0, 0xFFFF),        # flags
    st.integers(0, 65535),         # boot
)
GUARANTEED = 2 * 204  # capacity_bytes=0 still keeps two full sealed segments


class SpoolMachine(RuleBasedStateMachine):
    RTC = False

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="spoolmodel")
        self.rtc = RamRtc()
        self.model = []       # [(seq, reading)] not yet acknowledged, oldest first
        self.last_seq = 0     # highest seq ever handed out
        self.dropped = 0
        self.open()

    def open(self):
        self.sp = Spool(self.dir + "/", capacity_bytes=0, rtc=self.rtc if self.RTC else None,
                        rtc_loss_ok=self.RTC, rtc_batch=7)

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def stored(self, seq, reading):
        assert seq > self.last_seq, (seq, self.last_seq)
        self.last_seq = seq
        self.model.append((seq, reading))

    def take_drops(self):
        """Readings the spool reports dropped must be the oldest, and only when it is full."""
        grew = self.sp.dropped - self.dropped
        if grew:
            assert len(self.model) > GUARANTEED, ("dropped below capacity", len(self.model))
            event("capacity overflow")
            del self.model[:grew]
            self.dropped = self.sp.dropped

    @rule(r=READINGS)
    def append(self, r):
        self.stored(self.sp.append(r), r)

    @rule(rs=st.lists(READINGS, max_size=260))
    def extend(self, rs):
        last = self.sp.extend(rs)
        if not rs:
            assert last == self.sp.next_seq - 1
        for i, r in enumerate(rs):
            self.stored(last - len(rs) + 1 + i, r)

    @rule(n=st.integers(150, 450), base=READINGS, one_by_one=st.booleans())
    def burst(self, n, base, one_by_one):
        """Days offline: many readings, towards and past the capacity."""
        rs = [(base[0], base[1], (base[2] + i) % 131072, base[3], base[4], base[5])
              for i in range(n)]
        if one_by_one:
            for r in rs:
                self.append(r)
        else:
            self.extend(rs)

    @rule(n=st.integers(0, 600))
    def peek(self, n):
        got = self.sp.peek(n)
        self.take_drops()
        assert got == [(s,) + r for s, r in self.model[:n]]

    @rule(data=st.data())
    def ack(self, data):
        if self.model and data.draw(st.booleans()):
            up = self.model[data.draw(st.integers(0, len(self.model) - 1))][0]
        else:
            up = data.draw(st.integers(-5, self.last_seq + 5))
        self.sp.ack(up)
        self.model = [x for x in self.model if x[0] > up]

    @rule()
    def restart(self):
        self.take_drops()
        self.open()

    @invariant()
    def depth_and_counts(self):
        self.take_drops()
        assert self.sp.depth() == len(self.model)
        assert self.sp.next_seq == self.last_seq + 1
        assert self.sp.corrupt == 0


class RtcSpoolMachine(SpoolMachine):
    RTC = True

    @precondition(lambda self: self.sp.stats()["rtc_held"] > 0)
    @rule()
    def power_on(self):
        """Power cut: RTC memory is gone, and with it at most the unflushed readings."""
        held = self.sp.stats()["rtc_held"]
        assert held < 7
        self.take_drops()
        del self.model[len(self.model) - held:]
        self.rtc.lose()
        self.open()
        assert self.sp.next_seq > self.last_seq  # a lost seq is never handed out again
        self.last_seq = self.sp.next_seq - 1


TestSpoolModel = SpoolMachine.TestCase
TestSpoolModel.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
TestRtcSpoolModel = RtcSpoolMachine.TestCase
TestRtcSpoolModel.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
