# `laterne ingest`: the broker's readings and status into the database (host_tools/ingest/).
import os
import signal

from host_tools.errors import UserError

PASSWORD_ENV = "LATERNE_MQTT_PASSWORD"


def add_arguments(p):
    from host_tools.ingest import db, service
    p.add_argument("--broker", required=True, metavar="URL",
                   help="mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)")
    p.add_argument("--db", default=db.DEFAULT_URL, metavar="URL",
                   help="sqlite:///PATH or postgresql://USER@HOST[:PORT]/DBNAME (default %s)"
                   % db.DEFAULT_URL)
    p.add_argument("--prefix", default="laterne", help="topic prefix (default: laterne)")
    p.add_argument("--client-id", default=service.DEFAULT_CLIENT_ID,
                   help="fixed MQTT client id of the persistent session (default %s); each "
                        "worker needs its own" % service.DEFAULT_CLIENT_ID)
    p.add_argument("--share", metavar="GROUP",
                   help="subscribe as a member of the MQTT shared subscription GROUP, so several "
                        "ingest workers split the load")
    p.add_argument("--username", help="broker user name (password from $%s)" % PASSWORD_ENV)
    p.add_argument("--cafile", metavar="FILE", help="CA certificate (PEM) for TLS brokers")
    p.add_argument("--max-ahead", type=float, default=service.MAX_AHEAD_S, metavar="S",
                   help="readings dated more than S seconds ahead of this machine's clock are "
                        "rejected (default %d)" % service.MAX_AHEAD_S)
    p.add_argument("--progress", type=float, default=10.0, metavar="S",
                   help="a progress line every S seconds (0: none; default 10)")
    p.add_argument("--migrate-only", action="store_true",
                   help="create or upgrade the database schema, then exit")


def run(args):
    from host_tools.ingest import db, migrations, service
    if args.max_ahead < 0 or args.progress < 0:
        raise UserError("--max-ahead and --progress must not be negative")
    if args.cafile and not os.path.isfile(args.cafile):
        raise UserError("CA file %s does not exist" % args.cafile)
    database = db.open_db(args.db)
    try:
        try:
            applied = migrations.migrate(database)
        except migrations.SchemaTooNew as e:
            raise UserError(str(e), "upgrade laterne before pointing it at this database")
        if applied or args.migrate_only:
            print("ingest: %s at schema version %d%s" % (
                db.describe(args.db), migrations.latest(),
                " (applied %s)" % ", ".join(map(str, applied)) if applied else ""), flush=True)
        if args.migrate_only:
            return 0
        ingest = service.Ingest(database, args.prefix, args.max_ahead,
                                reopen=lambda: db.open_db(args.db))
        stopping = []
        old = {s: signal.signal(s, lambda n, f: stopping.append(n))
               for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            ingest.connect(args.broker, args.username, os.environ.get(PASSWORD_ENV),
                           args.cafile, args.client_id, args.share)
            print("ingest: %s -> %s as %s%s; Ctrl-C stops" % (
                args.broker, db.describe(args.db), args.client_id,
                " in shared group " + args.share if args.share else ""), flush=True)
            ingest.run(lambda: stopping, args.progress)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
        database = ingest.db
    finally:
        database.close()
    return 0
