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
    deploy.deploy(args.port, firmware_dir=args.firmware_dir, dry_run=args.dry_run)
    return 0
