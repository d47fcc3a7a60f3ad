# Starts a throwaway PostgreSQL server for tests and benches: initdb into a temporary folder,
# then `postgres` on a free loopback port. PostgreSQL refuses to run as root, so as root both
# run as the unprivileged user `nobody` (through setpriv); any other user runs them directly.
# The binaries come from Debian's postgresql package (`make setup` installs it).
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from host_tools.broker import end_process, free_port

SUPERUSER = "laterne"


def bindir():
    """The folder holding initdb and postgres, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return os.path.dirname(found[-1])
    exe = shutil.which("postgres")
    return os.path.dirname(os.path.realpath(exe)) if exe else None


class PgServer:
    """A PostgreSQL server on 127.0.0.1:`port` with a trusted superuser `laterne`.
    `durable=False` turns fsync off: fine for tests, where only clients are killed."""

    def __init__(self, port=None, durable=True):
        self.port = port or free_port()
        self.durable = durable
        self.proc = None
        self.dir = None

    def _as_owner(self, cmd):
        if os.geteuid() != 0:
            return cmd
        return ["setpriv", "--reuid", "nobody", "--regid", str(pwd.getpwnam("nobody").pw_gid),
                "--clear-groups", "--"] + cmd

    def start(self, timeout=60):
        bins = bindir()
        if bins is None:
            raise FileNotFoundError("PostgreSQL is not installed: run `make setup` "
                                    "(or apt-get install postgresql)")
        self.dir = tempfile.mkdtemp(prefix="laterne-pg-")
        data, sockets = os.path.join(self.dir, "data"), os.path.join(self.dir, "run")
        os.mkdir(sockets)
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in (self.dir, sockets):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
        self.log_path = os.path.join(self.dir, "postgres.log")
        with open(self.log_path, "ab") as log:
            subprocess.run(self._as_owner([
                os.path.join(bins, "initdb"), "-D", data, "-U", SUPERUSER, "--auth=trust",
                "-E", "UTF8", "--no-locale", "--no-sync"]), stdout=log, stderr=subprocess.STDOUT,
                check=True, timeout=timeout, cwd=self.dir)
        options = ["-c", "listen_addresses=127.0.0.1", "-p", str(self.port), "-k", sockets,
                   "-c", "max_connections=50"]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                        "-c", "full_page_writes=off"]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._as_owner([os.path.join(bins, "postgres"), "-D", data]
                                                    + options), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.dir, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout):
        import psycopg
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited with code %s:\n%s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                psycopg.connect(self.url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise TimeoutError("postgres did not accept connections within %d s:\n%s"
                                       % (timeout, self.log_tail()))
                time.sleep(0.1)

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def url(self, dbname):
        return "postgresql://%s@127.0.0.1:%d/%s" % (SUPERUSER, self.port, dbname)

    def create_database(self, name):
        """A new empty database; returns its URL."""
        import psycopg
        from psycopg import sql
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self):
        end_process(self.proc, 20, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
