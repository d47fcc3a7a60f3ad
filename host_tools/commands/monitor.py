# `laterne monitor`: live table of the fleet from the MQTT broker (host_tools/fleet/monitor.py).
import os

from host_tools.errors import UserError
from host_tools.fleet.monitor import run_monitor

PASSWORD_ENV = "LATERNE_MQTT_PASSWORD"


def add_arguments(parser):
    parser.add_argument("--broker", required=True, metavar="URL",
                        help="mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)")
    parser.add_argument("--prefix", default="laterne", help="topic prefix (default: laterne)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object per update (readings, status, state changes)")
    parser.add_argument("--csv", metavar="FILE", help="append every reading to FILE (deduped)")
    parser.add_argument("--stale-after", type=float, default=900, metavar="S",
                        help="a node whose newest reading is older than S seconds is stale "
                             "(default 900)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true",
                      help="collect the retained state, print it once and exit "
                           "(exit 1 if a node is stale or offline)")
    when.add_argument("--duration", type=float, metavar="S", help="watch S seconds, then exit")
    parser.add_argument("--username", help="broker user name (password from $%s)" % PASSWORD_ENV)
    parser.add_argument("--cafile", metavar="FILE", help="CA certificate (PEM) for TLS brokers")


def run(args):
    if args.stale_after <= 0 or (args.duration is not None and args.duration <= 0):
        raise UserError("--stale-after and --duration must be positive numbers of seconds")
    if args.cafile and not os.path.isfile(args.cafile):
        raise UserError("CA file %s does not exist" % args.cafile,
                        "pass the broker's CA certificate (PEM) with --cafile")
    return run_monitor(args.broker, prefix=args.prefix, as_json=args.json, csv_path=args.csv,
                       stale_after=args.stale_after, once=args.once, duration=args.duration,
                       username=args.username, password=os.environ.get(PASSWORD_ENV),
                       cafile=args.cafile)
