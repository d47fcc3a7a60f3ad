# `laterne export`: readings with derived values from the database (host_tools/ingest/export.py).
from host_tools.errors import UserError


def add_arguments(p):
    from host_tools.ingest import db
    p.add_argument("--db", default=db.DEFAULT_URL, metavar="URL",
                   help="sqlite:///PATH or postgresql://USER@HOST[:PORT]/DBNAME (default %s)"
                   % db.DEFAULT_URL)
    p.add_argument("--node", metavar="ID", help="only this node")
    p.add_argument("--since", metavar="T", help="readings at or after T (ISO 8601 or Unix s)")
    p.add_argument("--until", metavar="T", help="readings before T (ISO 8601 or Unix s)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--csv", metavar="FILE", help="write CSV to FILE")
    out.add_argument("--parquet", metavar="FILE", help="write Parquet to FILE")


def run(args):
    from host_tools.ingest import db, export
    since = None if args.since is None else export.parse_time(args.since, "--since")
    until = None if args.until is None else export.parse_time(args.until, "--until")
    if since is not None and until is not None and until <= since:
        raise UserError("--until must be later than --since")
    with db.open_db(args.db, create=False) as database:
        if not database.has_table("readings"):
            raise UserError("%s holds no laterne readings" % db.describe(args.db),
                            "point --db at the database `laterne ingest` writes")
        rows = export.records(database, args.node, since, until)
        try:
            n = export.write_csv(args.csv, rows) if args.csv else \
                export.write_parquet(args.parquet, rows)
        except OSError as e:
            raise UserError("cannot write %s: %s" % (args.csv or args.parquet, e.strerror))
    print("export: %d readings to %s" % (n, args.csv or args.parquet))
    return 0
