# `laterne configure`: write a node's config (site defaults + inventory row + secrets).
# Secrets come from LATERNE_WIFI_SSID, LATERNE_WIFI_PASSWORD, LATERNE_MQTT_USERNAME,
# LATERNE_MQTT_PASSWORD in the environment or a chmod-600 file of KEY=value lines; never argv.
from host_tools import inventory
from host_tools.usb import configure


def add_arguments(parser):
    parser.add_argument("--port", required=True, help="serial port of the board")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--node-id", help="node id (with --board)")
    who.add_argument("--inventory", help="fleet inventory CSV (with --row)")
    parser.add_argument("--row", help="node id of the inventory row to use")
    parser.add_argument("--board", help="board name (see `laterne boards`); default: inventory")
    parser.add_argument("--site", help="site defaults JSON (broker, topic prefix, NTP, intervals)")
    parser.add_argument("--secrets", help="file of KEY=value secret lines (mode 600)")
    parser.add_argument("--keys", metavar="FILE",
                        help="fleet update key file (created when missing): the node gets its "
                             "own key, so updates over the air can reach it")


def run(args):
    spec = inventory.node_spec(inventory=args.inventory, row_id=args.row, node_id=args.node_id,
                               board_name=args.board, site=args.site, secrets_file=args.secrets)
    configure.configure(args.port, spec.config, spec.board)
    if args.keys:
        from host_tools.ota import keys
        keys.install(args.port, spec.config["node_id"], args.keys)
    return 0
