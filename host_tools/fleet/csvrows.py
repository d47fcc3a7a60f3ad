# Appends readings to a CSV file, one row per node+seq: the header is written once, and rows
# already in the file (from an earlier monitor run) are not written again.
import csv
import os

HEADER = ["node", "seq", "ts", "t_c", "p_hpa", "h_pct", "flags"]


def _cell(v, spec):
    return "" if v is None else spec % v


def row(node, seq, ts, t_c, p_hpa, h_pct, flags):
    """The cells of one CSV row (HEADER's columns) from a reading in display units."""
    return [node, seq, _cell(ts, "%d"), _cell(t_c, "%.2f"), _cell(p_hpa, "%.2f"),
            _cell(h_pct, "%.2f"), flags or 0]


class ReadingCsv:
    def __init__(self, path):
        self.path = path
        self.known = set()
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        if not new:
            with open(path, newline="") as f:
                rows = csv.reader(f)
                head = next(rows, None)
                if head != HEADER:
                    raise ValueError("%s exists but is not a laterne readings CSV" % path)
                for r in rows:
                    if len(r) >= 2:
                        self.known.add((r[0], r[1]))
        self.f = open(path, "a", newline="")
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(HEADER)
            self.f.flush()

    def add(self, reading):
        """Write one reading event (from FleetState.update); False if it was there already."""
        key = (reading["node"], str(reading["seq"]))
        if key in self.known:
            return False
        self.known.add(key)
        self.w.writerow(row(reading["node"], reading["seq"], reading["ts"], reading["t_c"],
                            reading["p_hpa"], reading["h_pct"], reading["flags"]))
        return True

    def flush(self):
        self.f.flush()

    def close(self):
        self.f.close()
