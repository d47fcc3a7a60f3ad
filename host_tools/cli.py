# The `laterne` command: one verb per technician task. Each verb lives in
# host_tools/commands/<verb>.py with `add_arguments(parser)` and `run(args) -> exit code`;
# this file is only the table.
import argparse
import importlib
import os
import sys

from host_tools.errors import UserError

VERBS = {
    "flash": "write a MicroPython image to a board with esptool",
    "deploy": "copy the firmware to a board (only what changed)",
    "configure": "write a node's config from inventory, site defaults and secrets",
    "check": "health check of a node over USB: sensor, config, spool, links",
    "provision": "flash, deploy, configure and check one node, and log it",
    "monitor": "live table of the fleet from the MQTT broker",
    "ingest": "store every reading from the broker in a database (SQLite or PostgreSQL)",
    "export": "readings from the database as CSV (or Parquet), with derived values",
    "acl": "the broker's access control list (mosquitto) for the fleet in the inventory",
    "ota": "updates over the air: build a bundle, push it to nodes in waves",
    "sim": "run virtual nodes (unmodified firmware on MicroPython) against a broker",
    "virtual-board": "a virtual node behind a pseudo-terminal, driven like a USB board",
    "boards": "list the supported boards or validate the board files",
}


def build_parser():
    parser = argparse.ArgumentParser(prog="laterne", description="Laterne node tools")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb, summary in VERBS.items():
        p = sub.add_parser(verb, help=summary, description=summary)
        module = importlib.import_module("host_tools.commands." + verb.replace("-", "_"))
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except UserError as e:
        print("laterne %s: error: %s" % (args.verb, e.message), file=sys.stderr)
        if e.hint:
            print("  hint: " + e.hint, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # last resort: a message, not a traceback
        if os.environ.get("LATERNE_DEBUG"):
            raise
        print("laterne %s: unexpected error: %s: %s" % (args.verb, type(e).__name__, e),
              file=sys.stderr)
        print("  hint: run again with LATERNE_DEBUG=1 for the details and report it",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
