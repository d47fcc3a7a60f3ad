# `laterne ota`: updates over the air. `ota build` makes a bundle of the precompiled app with
# its manifest; `ota push` rolls a bundle out to nodes over their MQTT broker, wave by wave,
# halting on the first failure (host_tools/ota/, docs/ota.md).
import os
import re
import sys
import time

from host_tools.errors import UserError

PASSWORD_ENV = "LATERNE_MQTT_PASSWORD"
NODE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")  # as in docs/mqtt.schema.json


def add_arguments(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="make an update bundle of the precompiled app",
                       description="Compile the app (firmware/lib) to bytecode and write it "
                                   "with its manifest into one bundle file.")
    b.add_argument("--out", required=True, metavar="BUNDLE", help="bundle file to write")
    b.add_argument("--firmware", metavar="DIR",
                   help="firmware folder (default: the repository's firmware/)")
    b.add_argument("--version", metavar="V",
                   help="version the app reports (default: laterne.VERSION of the folder)")
    b.set_defaults(action_run=build)
    p = sub.add_parser("push", help="roll a bundle out over MQTT in waves",
                       description="Offer the update to nodes wave by wave; a wave starts when "
                                   "every node of the last one runs the new version healthy; "
                                   "a failure or timeout halts the rollout.")
    p.add_argument("--broker", required=True, metavar="URL", help="mqtt://HOST[:PORT] or mqtts://")
    p.add_argument("--bundle", required=True, metavar="BUNDLE", help="from `laterne ota build`")
    p.add_argument("--keys", required=True, metavar="FILE",
                   help="the fleet's update key file (the one the nodes were configured with)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--all", action="store_true", help="every node with a status on the broker")
    who.add_argument("--node", nargs="+", metavar="ID",
                     help="these nodes, in this order (the first is the canary)")
    p.add_argument("--waves", default="1,25%,100%",
                   help="cumulative wave sizes, counts or percentages (default 1,25%%,100%%)")
    p.add_argument("--timeout", type=float, default=3600, metavar="S",
                   help="seconds a node may take from its offer to reporting the new version "
                        "healthy (default 3600)")
    p.add_argument("--prefix", default="laterne", help="topic prefix (default: laterne)")
    p.add_argument("--username", help="broker user name (password from $%s)" % PASSWORD_ENV)
    p.add_argument("--cafile", metavar="FILE", help="CA certificate (PEM) for TLS brokers")
    p.set_defaults(action_run=push)


def run(args):
    return args.action_run(args)


def build(args):
    from host_tools.ota import bundle
    b = bundle.build(args.out, args.firmware, args.version)
    print("ota build: %s, version %s, %d files, %d bytes (.mpy v%d)"
          % (args.out, b.version, len(b.files), b.size(), b.mpy))
    return 0


def push(args):
    from laterne import otaoffer
    from host_tools.ota import bundle, keys, view
    from host_tools.ota.rollout import PushConnection, Rollout, parse_waves
    if args.timeout <= 0:
        raise UserError("--timeout must be a positive number of seconds")
    node_ids = None
    if args.node:
        node_ids = list(dict.fromkeys(args.node))
        bad = [n for n in node_ids if not NODE_ID.fullmatch(n)]
        if bad:
            raise UserError("not a node id: %s" % ", ".join(bad),
                            "node ids are lower-case letters, digits and -")
        parse_waves(args.waves, len(node_ids))
    b = bundle.load(args.bundle)
    master = keys.load(args.keys)
    longest = bundle.offer(b, "x" * 32, b"\0" * 32, "00000000")
    if len(longest) > otaoffer.MAX_OFFER:
        raise UserError("the bundle's manifest (%d bytes) is too large for a node's offer (%d)"
                        % (len(longest), otaoffer.MAX_OFFER), "fewer or shorter file names")
    conn = PushConnection(args.broker, args.prefix, args.username,
                          os.environ.get(PASSWORD_ENV), args.cafile)
    conn.open()
    rollout = Rollout(conn, b, master, args.prefix, args.timeout,
                      on_change=view.Live(sys.stdout, time.monotonic))
    try:
        rollout.discover()
        waves = rollout.plan(node_ids, args.waves)
        print("ota push: %s (%d files, %d bytes) to %d node(s) in %d wave(s)"
              % (b.version, len(b.files), b.size(), len(rollout.targets), waves))
        ok = rollout.run(waves)
    except KeyboardInterrupt:
        print(view.render(rollout, view.header(rollout)))
        print("interrupted: offers not yet taken were withdrawn; nodes on trial finish it")
        return 130
    finally:
        conn.close()
    print(view.render(rollout, view.header(rollout)))
    return 0 if ok else 1
