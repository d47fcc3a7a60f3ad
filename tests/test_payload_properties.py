# The readings batch encoder (payload.Batch, which writes JSON rows from spool records into a
# buffer, digit by digit) against json.loads of what it wrote, for any record the spool can
# hold: the extremes of every field, skipped channels, relative timestamps of this boot and
# of others.
import json

from hypothesis import given, settings
from hypothesis import strategies as st

import vclock
from batch_json import readings_json
from laterne import flags, timebase

BOOT = 7
SYNC_UNIX = 1700000000
UPTIME_S = 900

rows = st.lists(st.tuples(
    st.integers(0, 2 ** 32 - 1),                     # seq (a u32 on flash)
    st.integers(0, 2 ** 32 - 1),                     # ts
    st.integers(-32768, 32767),                      # t
    st.integers(0, 131071),                          # p
    st.integers(0, 16383),                           # h
    st.integers(0, 0xFFFF),                          # flags
    st.sampled_from([BOOT, BOOT + 1, 0, 65535]),     # boot
), max_size=60)


def clock_state():
    clock = vclock.VClock()
    cs = timebase.ClockState(clock, BOOT)
    clock.sleep(UPTIME_S)
    cs.mark_synced(SYNC_UNIX + UPTIME_S)
    return cs


def expected(row):
    seq, ts, t, p, h, fl, boot = row
    if fl & flags.TIME_RELATIVE:
        if boot == BOOT and ts <= UPTIME_S:
            ts, fl = SYNC_UNIX + ts, (fl & ~flags.TIME_RELATIVE) | flags.TIME_FIXED
        else:
            ts = None
    return [seq, ts, None if fl & flags.T_SKIPPED else t, None if fl & flags.P_SKIPPED else p,
            None if fl & flags.H_SKIPPED else h, fl]


@settings(max_examples=300, deadline=None)
@given(rows, st.sampled_from(["lamp-001", "n", "a-very-long-node-id-of-32-chars-x"]))
def test_batch_rows_are_the_records(batch, node_id):
    doc = json.loads(readings_json(node_id, batch, clock_state()))
    assert doc["v"] == 1 and doc["node"] == node_id
    assert doc["cols"] == ["seq", "ts", "t", "p", "h", "flags"]
    assert doc["rows"] == [expected(r) for r in batch]


@given(st.integers(0, 2 ** 32 - 1))
def test_every_u32_is_written_as_itself(n):
    doc = json.loads(readings_json("n", [(n, n, 0, 0, 0, 0, 0)], clock_state()))
    assert doc["rows"][0][:2] == [n, n]
