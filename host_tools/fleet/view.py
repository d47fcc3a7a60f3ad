# Renders FleetState.table() rows as a fixed-width text table (stale and offline nodes
# highlighted with ANSI colours when wanted) and events as JSON lines for scripts.
import json

COLUMNS = ["node", "state", "t °C", "p hPa", "h %", "age", "spool", "dropped", "rssi", "fw",
           "last error"]
RED, YELLOW, RESET = "\x1b[31m", "\x1b[33;1m", "\x1b[0m"
CLEAR = "\x1b[H\x1b[J"  # cursor home, clear to the end: redraw in place


def _fmt(v, spec="%s"):
    return "-" if v is None else spec % v


def age_text(seconds):
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds // 60)
    if seconds < 172800:
        return "%dh" % (seconds // 3600)
    return "%dd" % (seconds // 86400)


def cells(row):
    err = row["last_error"] or "-"
    return [row["node"], row["state"], _fmt(row["t_c"], "%.2f"), _fmt(row["p_hpa"], "%.2f"),
            _fmt(row["h_pct"], "%.2f"), age_text(row["age_s"]), _fmt(row["spool_depth"]),
            _fmt(row["dropped"]), _fmt(row["rssi"]), _fmt(row["fw"]),
            err if len(err) <= 40 else err[:39] + "…"]


def render_table(rows, color=False, header=None):
    """The fleet as text lines. `header` is an optional first line (broker, counts)."""
    body = [cells(r) for r in rows]
    widths = [max(len(c[i]) for c in [COLUMNS] + body) for i in range(len(COLUMNS))]
    line = lambda c: "  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip()
    out = [header] if header else []
    out.append(line(COLUMNS))
    for row, c in zip(rows, body):
        text = line(c)
        if color and row["state"] == "stale":
            text = YELLOW + text + RESET
        elif color and row["state"] == "offline":
            text = RED + text + RESET
        out.append(text)
    if not rows:
        out.append("(no nodes seen yet)")
    return "\n".join(out)


def json_line(event):
    return json.dumps(event, sort_keys=True, separators=(",", ":"))
