# `laterne acl`: the mosquitto ACL for the fleet, from the inventory (host_tools/ingest/acl.py).
import os


def add_arguments(p):
    p.add_argument("--inventory", required=True, metavar="CSV", help="the fleet inventory")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="the acl_file to write (mosquitto.conf: acl_file FILE)")
    p.add_argument("--prefix", default="laterne", help="topic prefix (default: laterne)")
    for role, who in (("ingest", "of laterne ingest"), ("monitor", "that reads everything"),
                      ("admin", "that may also send config/set")):
        p.add_argument("--%s-user" % role, default="laterne-" + role,
                       help="broker user %s (default laterne-%s)" % (who, role))


def run(args):
    from host_tools.errors import UserError
    from host_tools.fleet.monitor import check_prefix
    from host_tools.ingest import acl
    nodes = acl.inventory_node_ids(args.inventory)
    text = acl.render(nodes, check_prefix(args.prefix), args.ingest_user, args.monitor_user,
                      args.admin_user, source=os.path.basename(args.inventory))
    try:
        with open(args.out, "w") as f:
            f.write(text)
    except OSError as e:
        raise UserError("cannot write %s: %s" % (args.out, e.strerror))
    print("acl: %d nodes, users %s, %s, %s -> %s" % (len(nodes), args.ingest_user,
                                                     args.monitor_user, args.admin_user, args.out))
    return 0
