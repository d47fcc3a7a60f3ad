# `laterne deploy`: copy the compiled firmware to a board, only what changed.
from host_tools.usb import deploy


def add_arguments(parser):
    parser.add_argument("--port", required=True, help="serial port of the board (or a virtual "
                        "board's --pty path)")
    parser.add_argument("--firmware-dir", default=None,
                        help="firmware folder to deploy (default: the repository's firmware/)")
    parser.add_argument("--dry-run", action="store_true",
                        help="show what would be copied and removed, change nothing")


def run(args):
    result = deploy.deploy(args.port, firmware_dir=args.firmware_dir, dry_run=args.dry_run)
    verb = "would copy" if args.dry_run else "copied"
    for path in result["copied"]:
        print("%s %s" % (verb, path))
    for path in result["removed"]:
        print("%s %s" % ("would remove" if args.dry_run else "removed", path))
    if not result["copied"] and not result["removed"]:
        print("deploy: nothing to copy, all %d files unchanged (%s, mpy v%d)"
              % (result["unchanged"], result["arch"] or "bytecode", result["mpy"]))
    else:
        print("deploy: %s %d, removed %d, unchanged %d; app %s"
              % (verb, len(result["copied"]), len(result["removed"]), result["unchanged"],
                 result["app_hash"][:12]))
    if not args.dry_run:
        if result["ota_reset"]:
            print("deploy: the update installed over the air was reset: the node runs this app")
        print("board soft-reset: the node runs the new firmware")
    return 0
