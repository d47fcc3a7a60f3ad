# What the demo proves, computed from the readings it recorded: readings per node, gaps in
# each node's seq numbers, whether the node that lost its network delivered every reading
# it took while offline once the link was back, and whether the ingest's database holds each
# node's seqs 1..last exactly once. Pure functions over rows (dicts with node,
# seq, ts, received) and an outage dict (node, down_ts, up_ts in virtual Unix seconds).


def seq_gaps(seqs):
    """Sequence numbers missing between the lowest and highest seen."""
    seen = sorted(set(seqs))
    missing = []
    for a, b in zip(seen, seen[1:]):
        missing.extend(range(a + 1, b))
    return missing


def per_node(rows):
    nodes = {}
    for r in rows:
        nodes.setdefault(r["node"], []).append(r)
    out = {}
    for node, rs in sorted(nodes.items()):
        seqs = [r["seq"] for r in rs]
        out[node] = {"readings": len(rs), "first_seq": min(seqs), "last_seq": max(seqs),
                     "missing": seq_gaps(seqs)}
    return out


def outage_report(rows, outage):
    """Readings the outage node took while offline, and whether its backlog drained."""
    mine = [r for r in rows if r["node"] == outage["node"]]
    offline = [r for r in mine if r["ts"] is not None
               and outage["down_ts"] <= r["ts"] < outage["up_ts"]]
    after = [r for r in mine if r["ts"] is not None and r["ts"] >= outage["up_ts"]]
    missing = seq_gaps([r["seq"] for r in mine])
    return {"node": outage["node"], "taken_offline": len(offline),
            "readings_after": len(after), "missing": missing,
            "drained": bool(offline) and bool(after) and not missing}


def summarize(rows, nodes, outage=None):
    report = {"nodes": per_node(rows), "silent": [n for n in nodes if n not in
                                                   {r["node"] for r in rows}]}
    if outage and outage.get("up_ts") is not None:
        report["outage"] = outage_report(rows, outage)
    report["ok"] = (not report["silent"]
                    and all(not n["missing"] for n in report["nodes"].values())
                    and report.get("outage", {"drained": True})["drained"])
    return report


def format_summary(report):
    lines = ["%-10s %9s %9s %9s" % ("node", "readings", "seq", "seq gaps")]
    for node, n in report["nodes"].items():
        lines.append("%-10s %9d %4d-%-4d %9d" % (node, n["readings"], n["first_seq"],
                                                  n["last_seq"], len(n["missing"])))
    for node in report["silent"]:
        lines.append("%-10s %9d %9s %9s   (no reading arrived)" % (node, 0, "-", "-"))
    o = report.get("outage")
    if o:
        if o["drained"]:
            lines.append("%s took %d readings while offline; all were delivered after the "
                         "link returned (seq gaps 0)." % (o["node"], o["taken_offline"]))
        else:
            lines.append("%s took %d readings while offline; backlog NOT fully delivered "
                         "(%d seq gaps, %d readings after the outage)."
                         % (o["node"], o["taken_offline"], len(o["missing"]),
                            o["readings_after"]))
    lines.append("result: %s" % ("no reading lost" if report["ok"] else "READINGS MISSING"))
    return "\n".join(lines)


def database_check(counts, stored, report):
    """counts: node -> (readings, lowest seq, highest seq) in the database; stored: node ->
    its `stored` watermark; report: summarize()'s. A node matches when the database holds
    exactly its seqs 1..N, N being the highest seq the node delivered."""
    nodes = {}
    for node, seen in report["nodes"].items():
        n, lo, hi = counts.get(node, (0, None, None))
        nodes[node] = {"readings": n, "first_seq": lo, "last_seq": hi,
                       "stored": stored.get(node, 0), "node_last_seq": seen["last_seq"],
                       "match": n == seen["last_seq"] and lo == 1 and hi == seen["last_seq"]}
    return {"nodes": nodes, "ok": bool(nodes) and all(v["match"] for v in nodes.values())}


def format_database(check):
    lines = ["%-10s %9s %11s %9s %s" % ("node", "in db", "seq", "stored", "the node's seqs")]
    for node, n in check["nodes"].items():
        span = "-" if not n["readings"] else "%d-%d" % (n["first_seq"], n["last_seq"])
        lines.append("%-10s %9d %11s %9d %s" % (node, n["readings"], span, n["stored"],
                                                 "1-%d, match" % n["node_last_seq"] if n["match"]
                                                 else "1-%d, MISMATCH" % n["node_last_seq"]))
    lines.append("database: %s" % ("every reading once" if check["ok"]
                                   else "READINGS MISSING OR EXTRA"))
    return "\n".join(lines)
