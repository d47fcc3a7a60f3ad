# A readings message for test rows, encoded the way the drain encodes one (CPython and
# MicroPython): each row packed into a spool record, then written by payload.Batch.
from laterne import payload, reading


def readings_json(node_id, rows, timebase):
    """The message for rows (seq, ts, t, p, h, flags, boot), as text."""
    batch = payload.Batch(node_id, timebase)
    buf = bytearray(batch.size(len(rows)) + 8)
    batch.begin(buf, 8, len(rows))  # not at 0: the drain writes behind the MQTT header
    record = bytearray(reading.SIZE)
    for r in rows:
        reading.pack_into(record, 0, r[0], r[1:])
        batch.add(record, 0)
    n = batch.finish()
    return bytes(buf[8:8 + n]).decode()
