# `laterne provision`: flash, deploy, configure and check one node, resumable, and log it.
from host_tools.usb import provision


def add_arguments(parser):
    parser.add_argument("--port", required=True, help="serial port of the board")
    parser.add_argument("--inventory", required=True, help="fleet inventory CSV")
    parser.add_argument("--row", required=True, help="node id of the inventory row")
    parser.add_argument("--firmware", help="MicroPython image (.bin) to flash")
    parser.add_argument("--board", help="board name; default: the inventory row's board")
    parser.add_argument("--site", help="site defaults JSON for configure")
    parser.add_argument("--secrets", help="file of KEY=value secret lines (mode 600)")
    parser.add_argument("--keys", metavar="FILE",
                        help="fleet update key file for configure (created when missing)")
    parser.add_argument("--log", default="provisioning.jsonl",
                        help="provisioning log to append to (default: provisioning.jsonl)")
    parser.add_argument("--skip-flash", action="store_true",
                        help="the board already runs MicroPython: deploy, configure, check")
    parser.add_argument("--restart", action="store_true",
                        help="forget finished steps and start from the first")


def run(args):
    record = provision.provision(args.port, args.inventory, args.row, firmware=args.firmware,
                                 board=args.board, site=args.site, secrets_file=args.secrets,
                                 keys=args.keys,
                                 log_path=args.log, skip_flash=args.skip_flash,
                                 restart=args.restart)
    print("provision: OK %s  MAC %s  board %s  logged to %s"
          % (record["node_id"], record["mac"], record["board"], args.log))
    for w in record["warnings"]:
        print("  warning: " + w)
    return 0
