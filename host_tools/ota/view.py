# What `laterne ota push` shows: the per-node table (node, wave, from, to, outcome, reason),
# redrawn in place on a terminal, or one line per change when the output is a file or pipe.
COLUMNS = ("node", "wave", "from", "to", "outcome", "reason")
CLEAR = "\x1b[H\x1b[J"


def outcome_text(t):
    if t.outcome == "downloading" and t.progress is not None:
        return "downloading %d%%" % t.progress
    return t.outcome.replace("_", " ")


def rows(rollout):
    return [[t.node, str(t.wave or "-"), t.start or "-", rollout.bundle.version,
             outcome_text(t), t.reason or ""] for t in rollout.targets.values()]


def render(rollout, header=None):
    body = rows(rollout)
    widths = [max(len(r[i]) for r in [list(COLUMNS)] + body) for i in range(len(COLUMNS))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    out = [header] if header else []
    out.append(line(COLUMNS))
    out += [line(r) for r in body]
    return "\n".join(out)


class Live:
    """Progress on `stream` as the rollout goes (called on every change)."""

    def __init__(self, stream, clock, every=0.5):
        self.stream = stream
        self.tty = stream.isatty()
        self.clock = clock
        self.every = every
        self.drawn = None
        self.said = {}

    def __call__(self, rollout):
        if self.tty:
            now = self.clock()
            if self.drawn is None or now - self.drawn >= self.every:
                self.drawn = now
                self.stream.write(CLEAR + render(rollout, header(rollout)) + "\n")
                self.stream.flush()
            return
        for t in rollout.targets.values():  # the outcome words, not every percent
            if self.said.get(t.node) != (t.outcome, t.reason) and t.outcome != "waiting":
                self.said[t.node] = (t.outcome, t.reason)
                self.stream.write("%s: %s%s\n" % (t.node, t.outcome.replace("_", " "),
                                                  " (%s)" % t.reason if t.reason else ""))
        self.stream.flush()


def header(rollout):
    done = sum(1 for t in rollout.targets.values() if t.outcome == "ok")
    return "update %s to %d node(s): %d ok%s" % (
        rollout.bundle.version, len(rollout.targets), done,
        ", halted (%s)" % rollout.halted if rollout.halted else "")
