# Renders recorded readings to a PNG: one panel per quantity (temperature °C, pressure hPa,
# humidity %RH), one line per node over the readings' own (virtual) time, and each outage as a
# shaded band on every panel. A line breaks where a node's readings have a hole in time, so a
# lost stretch of data shows as a gap instead of being drawn over.
# Usage: python -m host_tools.fleet.plot READINGS.csv [-o OUT.png] [--outage NODE:START:END ...]
import argparse
import sys
from datetime import datetime, timezone

from host_tools.fleet.csvrows import HEADER

QUANTITIES = (("t_c", "temperature (°C)"), ("p_hpa", "pressure (hPa)"),
              ("h_pct", "humidity (%RH)"))
CSV_COLUMNS = tuple(HEADER)  # laterne monitor --csv
GAP_FACTOR = 2.5  # a step longer than this many typical intervals breaks the line


def _series(rows):
    """node -> rows with a known time, sorted by ts."""
    nodes = {}
    for r in rows:
        if r.get("ts") is not None:
            nodes.setdefault(r["node"], []).append(r)
    return {n: sorted(rs, key=lambda r: r["ts"]) for n, rs in sorted(nodes.items())}


def with_breaks(ts, values):
    """Insert a None value where the step in ts is far above the typical one (lines break)."""
    if len(ts) < 3:
        return list(ts), list(values)
    steps = sorted(b - a for a, b in zip(ts, ts[1:]))
    typical = steps[len(steps) // 2] or 1
    out_t, out_v = [ts[0]], [values[0]]
    for i in range(1, len(ts)):
        if ts[i] - ts[i - 1] > GAP_FACTOR * typical:
            out_t.append((ts[i - 1] + ts[i]) / 2)
            out_v.append(None)
        out_t.append(ts[i])
        out_v.append(values[i])
    return out_t, out_v


def _nan(v):
    return float("nan") if v is None else v


def read_csv(path):
    """A readings CSV (laterne monitor --csv, or the demo's) -> list of dicts: ts int or None,
    t_c/p_hpa/h_pct float or None (a channel the sensor skipped)."""
    import csv
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not set(CSV_COLUMNS) <= set(reader.fieldnames):
            raise ValueError("%s: the header must name %s" % (path, ",".join(CSV_COLUMNS)))
        rows = []
        for i, rec in enumerate(reader, start=2):
            try:
                rows.append({"node": rec["node"], "seq": int(rec["seq"]),
                             "ts": int(rec["ts"]) if rec["ts"] else None,
                             "t_c": float(rec["t_c"]) if rec["t_c"] else None,
                             "p_hpa": float(rec["p_hpa"]) if rec["p_hpa"] else None,
                             "h_pct": float(rec["h_pct"]) if rec["h_pct"] else None,
                             "flags": int(rec["flags"] or 0)})
            except (TypeError, ValueError):
                raise ValueError("%s line %d: not a reading: %s" % (path, i, ",".join(
                    str(v) for v in rec.values())))
    return rows


def _dt(ts):
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def render(rows, png_path, outages=(), title=None):
    """Draw `rows` (dicts node, ts, t_c, p_hpa, h_pct) into `png_path`; outages are
    (node, start, end) in Unix seconds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    series = _series(rows)
    if not series:
        raise ValueError("no reading with a known time to plot")
    fig, axes = plt.subplots(len(QUANTITIES), 1, sharex=True, figsize=(11, 8.5), dpi=100)
    colours = plt.get_cmap("tab10")
    for ax, (key, label) in zip(axes, QUANTITIES):
        for i, (node, rs) in enumerate(series.items()):
            ts, vs = with_breaks([r["ts"] for r in rs], [r[key] for r in rs])
            x = [_dt(t) for t in ts]
            y = [_nan(v) for v in vs]
            ax.plot(x, y, color=colours(i % 10), lw=1.6, label=node)
            for o_node, start, end in outages:  # readings taken offline, delivered later
                kept = [r for r in rs if o_node == node and start <= r["ts"] < end]
                if kept:
                    ax.plot([_dt(r["ts"]) for r in kept], [_nan(r[key]) for r in kept], "o",
                            ms=3.5, color=colours(i % 10), label="%s spooled offline" % node)
        for node, start, end in outages:
            ax.axvspan(_dt(start), _dt(end), color="tab:red", alpha=0.13, lw=0,
                       label="%s without network" % node)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter(useOffset=False))
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=timezone.utc))
    axes[-1].set_xlabel("time of the reading (virtual, UTC)")
    handles, labels = axes[0].get_legend_handles_labels()
    lines = [(h, l) for h, l in zip(handles, labels) if l in series]  # one per node
    extras = [(h, l) for h, l in zip(handles, labels) if l not in series]  # the outage
    fig.suptitle(title or "Laterne: readings per node", y=0.985, fontsize=13)
    top = 0.955
    for group in (lines, extras):
        for start in range(0, len(group), 6):
            chunk = group[start:start + 6]
            fig.legend([h for h, _ in chunk], [l for _, l in chunk], loc="upper center",
                       bbox_to_anchor=(0.5, top), ncol=len(chunk), frameon=False)
            top -= 0.03
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(png_path)
    plt.close(fig)
    return png_path


def parse_outage(text):
    try:
        node, start, end = text.rsplit(":", 2)
        start, end = float(start), float(end)
    except ValueError:
        raise argparse.ArgumentTypeError("expected NODE:START:END (Unix seconds), got %r" % text)
    if not node or end < start:
        raise argparse.ArgumentTypeError("expected NODE:START:END with START <= END")
    return node, start, end


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.fleet.plot",
                                 description="plot recorded Laterne readings to a PNG")
    ap.add_argument("csv", help="readings CSV from the demo or `laterne monitor --csv`")
    ap.add_argument("-o", "--output", help="PNG to write (default: beside the CSV)")
    ap.add_argument("--outage", action="append", type=parse_outage, default=[],
                    metavar="NODE:START:END", help="shade an outage (virtual Unix seconds)")
    args = ap.parse_args(argv)
    out = args.output or (args.csv[:-4] if args.csv.endswith(".csv") else args.csv) + ".png"
    try:
        render(read_csv(args.csv), out, args.outage)
    except (OSError, ValueError) as e:
        print("plot: error: %s" % e, file=sys.stderr)
        return 2
    print("plot: wrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
