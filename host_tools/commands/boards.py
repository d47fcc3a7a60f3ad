# `laterne boards`: the supported boards as a table, or `--check` to validate the board files.
import sys

from host_tools import boards

COLUMNS = [("board", lambda b: b["name"]), ("chip", lambda b: b["chip"]),
           ("micropython build", lambda b: b["micropython_build"]),
           ("offset", lambda b: "%#x" % b["flash_offset"]),
           ("flash", lambda b: b["flash_size"]),
           ("sda/scl", lambda b: "%d/%d" % (b["i2c"]["sda"], b["i2c"]["scl"])),
           ("bme280", lambda b: "%#x" % b["bme280_address"]),
           ("heap", lambda b: "%d KB" % b["gc_heap"]["budget_kb"]),
           ("led", lambda b: "-" if not b["led"] else "%d%s" % (
               b["led"]["pin"], " (low)" if b["led"]["active_low"] else ""))]


def add_arguments(parser):
    parser.add_argument("--check", action="store_true",
                        help="validate boards/*.json against boards/schema.json; exit 1 on errors")
    parser.add_argument("--dir", default=None,
                        help="board folder (default: the repository's boards/)")


def format_table(rows):
    head = [name for name, _ in COLUMNS]
    cells = [[fn(b) for _, fn in COLUMNS] for b in rows]
    widths = [max(len(r[i]) for r in [head] + cells) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(head)] + [line(r) for r in cells])


def run(args):
    if args.check:
        errors = boards.validate_all(args.dir)
        if errors:
            for e in errors:
                print(e, file=sys.stderr)
            print("%d problem(s) in the board files" % len(errors), file=sys.stderr)
            return 1
        print("%d board files valid" % len(boards.list_boards(args.dir)))
        return 0
    rows = [boards.load_board(n, args.dir) for n in boards.list_boards(args.dir)]
    print(format_table(rows))
    return 0
