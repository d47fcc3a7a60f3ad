# `laterne export`: readings from the ingest's database as CSV or Parquet, in display units,
# with the derived values computed from the stored raw values (host_tools/ingest/derived.py).
# Rows come per node in seq order; a time filter applies to ts, so readings whose time the
# node never knew (ts null) appear only in an export without --since/--until.
import csv
import datetime

from host_tools.errors import UserError
from host_tools.ingest import derived

COLUMNS = ("node", "seq", "ts", "time_utc", "t_c", "p_hpa", "h_pct", "flags", "dew_point_c",
           "heat_index_c", "humidex", "pressure_tendency_hpa_3h", "received_utc")
WARM_C = 20.0  # heat index and Humidex only from here up (Environment Canada: humidex >= 20 °C)


def parse_time(text, option):
    """Unix seconds from Unix seconds or ISO 8601 (a date, or a time; UTC unless it says)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError("%s %r is not a time" % (option, text),
                        "use ISO 8601 (2026-05-01 or 2026-05-01T12:00Z) or Unix seconds")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return int(when.timestamp())


def _iso(seconds):
    if seconds is None:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _round(v, digits):
    return None if v is None else round(v, digits)


def records(db, node=None, since=None, until=None):
    """Export records (dicts of COLUMNS) from the database, derived values filled in."""
    start = None if since is None else since - derived.TENDENCY_S - derived.TENDENCY_SLACK_S
    tendency, current = None, None
    for n, seq, ts, t, p, h, flags, received in db.readings(node, start, until):
        if n != current:
            tendency, current = derived.Tendency(), n
        t_c = None if t is None else t / 100.0
        p_hpa = None if p is None else p / 100.0
        h_pct = None if h is None else h / 100.0
        change = tendency.add(ts, p_hpa)
        if since is not None and ts < since:
            continue  # read only for the tendency of what follows
        dew = derived.dew_point_c(t_c, h_pct)
        warm = t_c is not None and t_c >= WARM_C
        yield {"node": n, "seq": seq, "ts": ts, "time_utc": _iso(ts), "t_c": t_c,
               "p_hpa": p_hpa, "h_pct": h_pct, "flags": flags, "dew_point_c": _round(dew, 2),
               "heat_index_c": _round(derived.heat_index_c(t_c, h_pct), 2) if warm else None,
               "humidex": _round(derived.humidex(t_c, dew), 2) if warm else None,
               "pressure_tendency_hpa_3h": _round(change, 2),
               "received_utc": _iso(received)}


def write_csv(path, rows):
    n = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if r[c] is None else r[c] for c in COLUMNS])
            n += 1
    return n


def write_parquet(path, rows, chunk=50000):
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("Parquet needs pyarrow", "pip install 'laterne[parquet]' (make setup "
                        "installs it), or export --csv")
    types = {"node": pa.string(), "seq": pa.int64(), "ts": pa.int64(), "time_utc": pa.string(),
             "flags": pa.int32(), "received_utc": pa.string()}
    schema = pa.schema([(c, types.get(c, pa.float64())) for c in COLUMNS])
    n = 0
    with pq.ParquetWriter(path, schema) as writer:
        buf = []
        for r in rows:
            buf.append(r)
            if len(buf) >= chunk:
                writer.write_table(pa.Table.from_pylist(buf, schema))
                n += len(buf)
                buf = []
        if buf or not n:
            writer.write_table(pa.Table.from_pylist(buf, schema))
            n += len(buf)
    return n
