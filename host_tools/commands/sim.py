# `laterne sim`: run N virtual nodes against a broker (host_tools/virtual/sim.py).
from host_tools.errors import UserError


def add_arguments(p):
    p.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    p.add_argument("--broker", required=True, help="mqtt://HOST:PORT")
    p.add_argument("--state", required=True, help="folder for the nodes' flash and RTC state")
    p.add_argument("--sample-interval", type=int, default=60, metavar="S",
                   help="seconds between readings, virtual time (default 60)")
    p.add_argument("--upload-interval", type=int, default=300, metavar="S",
                   help="seconds between uploads, virtual time (default 300)")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="virtual time runs X times faster than real time")
    p.add_argument("--preload", type=int, default=0, metavar="N",
                   help="start each new node with N readings spooled, as after an outage")
    p.add_argument("--exit-when-drained", action="store_true",
                   help="stop once every node reported an empty spool")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S real seconds")
    p.add_argument("--deep-sleep", action="store_true", help="nodes sleep between samples")
    p.add_argument("--prefix", default="laterne", help="MQTT topic prefix")
    p.add_argument("--config", metavar="FILE",
                   help="JSON object of config keys applied to every node (e.g. intervals)")
    p.add_argument("--cafile", help="CA certificate (PEM) of an mqtts:// broker")
    p.add_argument("--no-ntp", action="store_true",
                   help="no time server answers: readings are published with ts null")
    p.add_argument("--keys", metavar="FILE",
                   help="fleet update key file (created when missing): each node gets its "
                        "own key, so `laterne ota push --keys FILE` can update it")
    p.add_argument("--board", default="esp32-devkitc",
                   help="board file the nodes run on (default esp32-devkitc)")
    p.add_argument("--mpy32", action="store_true",
                   help="run the nodes on the 32-bit MicroPython build (make mpy32) with the "
                        "board's heap shape and budget")
    p.add_argument("--heap", metavar="SIZE",
                   help="the node's GC heap, e.g. 96k (default: the board's budget with "
                        "--mpy32, else 256k); the virtual board's own share comes on top")
    p.add_argument("--skip-idle", action="store_true",
                   help="virtual time jumps over idle waits (a simulated week in minutes)")
    p.add_argument("--virtual-duration", type=float, metavar="S",
                   help="each node stops after S seconds of virtual time of its boot")


def run(args):
    from host_tools.virtual import sim
    if args.nodes < 1 or args.nodes > 500:
        raise UserError("--nodes must be between 1 and 500")
    if args.time_scale <= 0:
        raise UserError("--time-scale must be positive")
    sim.parse_broker(args.broker)  # a bad URL is a UserError before anything starts
    overrides = None
    if args.config:
        import json
        try:
            with open(args.config) as f:
                overrides = json.load(f)
        except (OSError, ValueError) as e:
            raise UserError("cannot read --config %s: %s" % (args.config, e))
        if not isinstance(overrides, dict):
            raise UserError("--config must hold a JSON object of config keys")
    ca = None
    if args.cafile:
        try:
            with open(args.cafile) as f:
                ca = f.read()
        except OSError as e:
            raise UserError("cannot read --cafile: %s" % e)
    from host_tools import paths
    from host_tools.boards import load_board
    board = load_board(args.board)
    if args.mpy32:
        try:
            paths.micropython32_exe()
        except FileNotFoundError as e:
            raise UserError(str(e))
    try:
        if args.heap is not None:
            sim.parse_size(args.heap)
        sim.run_fleet(args.nodes, args.broker, args.state, args.sample_interval,
                      args.upload_interval, args.time_scale, args.preload,
                      args.exit_when_drained, args.duration, args.deep_sleep, args.prefix,
                      heap=args.heap, board=board, ntp=not args.no_ntp, ca=ca,
                      overrides=overrides, keys=args.keys, mpy32=args.mpy32,
                      skip_idle=args.skip_idle, stop_after_s=args.virtual_duration)
    except ConnectionRefusedError:
        raise UserError("no broker answers at %s" % args.broker,
                        "start one (mosquitto -p PORT) or check --broker")
    except ValueError as e:
        raise UserError(str(e))
    return 0
