# `laterne virtual-board`: a MicroPython unix-port node behind a pseudo-terminal, driven by
# mpremote, deploy, configure and check like a board on USB. Stops on Ctrl-C or SIGTERM.
from host_tools import paths
from host_tools.virtual import pty_board


def add_arguments(parser):
    parser.add_argument("--pty", required=True, help="path of the symlink to create (the port)")
    parser.add_argument("--state", default=str(paths.BUILD / "vboard"),
                        help="folder for the board's state; its filesystem is STATE/fs "
                             "(default: build/vboard in the repository, as `make virtual-board`)")
    parser.add_argument("--no-sensor", action="store_true", help="no BME280 on the I2C bus")
    parser.add_argument("--node-id", default="vboard",
                        help="name the board's unique id (MAC) is derived from")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="the board's clock runs this many times faster (default 1)")


def run(args):
    print("virtual board: Ctrl-C to stop; try  mpremote connect %s  or  laterne check --port %s"
          % (args.pty, args.pty), flush=True)
    return pty_board.run_board(args.pty, args.state, sensor=not args.no_sensor,
                               node_id=args.node_id, log=lambda m: print(m, flush=True),
                               scale=args.time_scale)
