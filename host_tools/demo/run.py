# `make demo`: a broker on a free loopback port, `laterne ingest` into build/demo/laterne.db,
# a time-accelerated virtual fleet (`laterne sim`, delivery "stored") and the monitor's live
# table. One node loses its network for a while and catches up afterwards. At the end
# (DURATION or Ctrl-C) everything is stopped, the readings go to build/demo/readings.csv and
# build/demo/readings.png, and a summary is printed with the database's count per node.
# Usage: python -m host_tools.demo --nodes N [--duration S] [--out DIR]
import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from host_tools import paths
from host_tools.broker import Broker
from host_tools.demo import procs, summary
from host_tools.demo.outage import Outage, outage_times

OUT = paths.BUILD / "demo"
SAMPLE_S, UPLOAD_S, SCALE = 60, 120, 30  # a reading every 2 s, an upload every 4 s (real)
STALE_S = 600  # virtual seconds without a reading before the table marks a node stale
MAX_AHEAD_S = 366 * 86400  # virtual time runs ahead of the host: the ingest must accept it
MIN_DURATION = 45


class WorldClock:
    """Host time -> the fleet's virtual Unix time, read from a node's run.json."""

    def __init__(self, run_json):
        spec = json.loads(run_json.read_text())
        self.epoch_unix, self.epoch_host_ns = spec["epoch_unix"], spec["epoch_host_ns"]
        self.scale = spec["scale"]

    def virtual(self, host_s):
        return self.epoch_unix + (host_s * 1e9 - self.epoch_host_ns) * self.scale / 1e9


class Demo:
    def __init__(self, nodes, duration, out=OUT, view=None):
        self.nodes = ["lamp-%03d" % (i + 1) for i in range(nodes)]
        self.duration = duration
        self.out = out
        self.state = out / ("state-%d" % os.getpid())
        node = self.nodes[min(1, nodes - 1)]
        self.outage = Outage(node, self.state / node / "link", *outage_times(duration))
        self.view = view
        self.sim = self.broker = self.recorder = self.broker_pid = self.world = None
        self.ingest = None
        self.db_path = out / "laterne.db"
        self.node_pids = set()
        self.stopping = False
        self.sim_cmd = [sys.executable, "-m", "host_tools.cli", "sim"]

    def say(self, text):
        if self.view is not None:
            self.view.say(text)
        else:
            print("demo: " + text, flush=True)

    # --- start ------------------------------------------------------------------------
    def start(self):
        from host_tools.demo.recorder import Recorder
        self.out.mkdir(parents=True, exist_ok=True)
        remove_stale_states(self.out)
        self.broker = Broker(log_path=str(self.out / "broker.log")).start()
        self.broker_pid = self.broker.proc.pid
        self.say("broker (%s) on %s" % (self.broker.kind, self.broker.url))
        self.recorder = Recorder("127.0.0.1", self.broker.port,
                                 listener=self.view.feed if self.view else None).start()
        for old in self.out.glob("laterne.db*"):  # the fleet is new: so is its database
            old.unlink()
        self.ingest = procs.Child("ingest", [
            sys.executable, "-m", "host_tools.cli", "ingest", "--broker", self.broker.url,
            "--db", "sqlite:///%s" % self.db_path, "--client-id", "laterne-demo-ingest",
            "--progress", "0", "--max-ahead", str(MAX_AHEAD_S)],
            log_path=str(self.out / "ingest.log"))
        self.say("laterne ingest stores every reading in %s" % shown(self.db_path))
        config = self.out / "sim-config.json"
        config.write_text(json.dumps({"delivery": "stored"}))
        self.sim = procs.Child("sim", self.sim_cmd + [
            "--nodes", str(len(self.nodes)), "--broker", self.broker.url,
            "--state", str(self.state), "--sample-interval", str(SAMPLE_S),
            "--upload-interval", str(UPLOAD_S), "--time-scale", str(SCALE),
            "--config", str(config)], log_path=str(self.out / "sim.log"))
        self.say("%d virtual nodes (%s..%s) run the firmware; virtual time runs x%d: a reading "
                 "every %d s of virtual time arrives every %g s" % (
                     len(self.nodes), self.nodes[0], self.nodes[-1], SCALE, SAMPLE_S,
                     SAMPLE_S / SCALE))
        self.save_run()

    def save_run(self):
        """run.json beside the results: what this run started, so leftovers can be found."""
        self.collect_node_pids()
        run = {"pid": os.getpid(), "state": str(self.state),
               "broker_port": self.broker.port if self.broker else None,
               "broker_pid": self.broker_pid,
               "pids": {"sim": self.sim.pid if self.sim else None,
                        "ingest": self.ingest.pid if self.ingest else None},
               "node_pids": sorted(self.node_pids), "outage": self.outage.as_dict()}
        (self.out / "run.json").write_text(json.dumps(run, indent=1))

    def collect_node_pids(self):
        for node in self.nodes:
            try:
                self.node_pids.add(int((self.state / node / "pid").read_text()))
            except (OSError, ValueError):
                pass

    def world_clock(self):
        if self.world is None:
            try:
                self.world = WorldClock(self.state / self.nodes[0] / "run.json")
            except (OSError, ValueError, KeyError):
                return None
            if self.view is not None:
                self.view.now = lambda: self.world.virtual(time.time())
        return self.world

    # --- run --------------------------------------------------------------------------
    def run(self):
        """Until DURATION or Ctrl-C: play the outage and show the fleet. False on failure."""
        started = time.monotonic()
        quiet_noted, next_pids = False, started
        while not self.stopping:
            now = time.monotonic()
            elapsed = now - started
            if self.duration is not None and elapsed >= self.duration:
                break
            if not self.sim.running():
                self.say("the fleet stopped unexpectedly (exit %s):\n%s"
                         % (self.sim.proc.returncode, self.sim.log_tail()))
                return False
            if elapsed > 30 and not quiet_noted and not self.recorder.store.count():
                quiet_noted = True
                self.say("no node has published yet; their consoles are in "
                         "%s/<node>/console.log" % shown(self.state))
            self.world_clock()
            self.step_outage(elapsed)
            if now >= next_pids:  # nodes restart after power cuts: remember every pid
                self.collect_node_pids()
                next_pids = now + 2
            if self.view is not None:
                self.view.header = self.header(elapsed)
                self.view.tick(now)
            time.sleep(0.2)
        return True

    def header(self, elapsed):
        world = self.world_clock()
        when = time.strftime("%H:%M", time.gmtime(world.virtual(time.time()))) if world else "-"
        left = "Ctrl-C stops" if self.duration is None else \
            "%ds left" % max(0, self.duration - elapsed)
        return "Laterne demo  broker %s  virtual time %s UTC (x%d)  %s" % (
            self.broker.url, when, SCALE, left)

    def step_outage(self, elapsed):
        o = self.outage
        event = o.step(elapsed, self.recorder.store.count(o.node))
        if event == "down":
            self.say(">>> %s loses its network now (Wi-Fi cut). It keeps sampling into its "
                     "spool." % o.node)
        elif event == "up":
            self.say(">>> %s has its network back: its backlog drains now." % o.node)
        elif o.up_host is not None and not o.drained and self.world_clock():
            report = summary.outage_report(self.recorder.store.rows(),
                                                o.virtual(self.world))
            if report["drained"]:
                o.drained = True
                self.say(">>> %s delivered all %d readings it took while offline: no gap."
                         % (o.node, report["taken_offline"]))
        if event:
            self.save_run()

    # --- stop -------------------------------------------------------------------------
    def stop(self):
        """Stop the fleet, the recorder and the broker, in that order; leave nothing behind."""
        self.collect_node_pids()
        self.world_clock()
        if self.sim is not None:
            self.sim.stop(timeout=20)
        time.sleep(0.5)  # let the last acknowledged batch reach the recorder
        if self.recorder is not None:
            self.recorder.stop()
        if self.ingest is not None:  # SIGTERM: it commits what it received, then leaves
            self.ingest.stop(timeout=20)
        left = procs.kill_and_wait(procs.pids_mentioning(str(self.state)))
        if self.broker is not None:
            self.broker.stop()
        self.save_run()
        if left:
            self.say("could not stop processes %s" % left)
        if self.broker is not None and not procs.port_free(self.broker.port):
            self.say("port %d is still in use" % self.broker.port)

    def results(self):
        """Write the CSV and PNG, print the summary; True when no reading was lost."""
        from host_tools.fleet import plot
        if self.view is not None and self.view.last_draw is not None:
            self.view.draw(final=True)
        self.view = None  # from here on plain lines
        csv_path, png_path = self.out / "readings.csv", self.out / "readings.png"
        n = self.recorder.store.write_csv(csv_path)
        rows = self.recorder.store.rows()
        outage = self.outage.virtual(self.world) if self.world else None
        (self.out / "outage.json").write_text(json.dumps(outage))
        self.say("wrote %s (%d readings)" % (shown(csv_path), n))
        if any(r["ts"] is not None for r in rows):
            bands = [(outage["node"], outage["down_ts"], outage["up_ts"] or
                      self.world.virtual(time.time()))] if outage else []
            plot.render(plot.read_csv(csv_path), png_path, bands, title="Laterne demo: %d virtual nodes, "
                        "readings over virtual time" % len(self.nodes))
            self.say("wrote %s" % shown(png_path))
        report = summary.summarize(rows, self.nodes, outage)
        print(summary.format_summary(report), flush=True)
        stored = self.database_report(report)
        if outage and outage["up_ts"] is None:
            self.say("stopped while %s was still offline; run longer to see its backlog "
                     "drain" % outage["node"])
        return report["ok"] and stored

    def database_report(self, report):
        """Print the database's count per node against the nodes' seqs; True when they match."""
        from host_tools.ingest import db
        if not self.db_path.exists():
            self.say("the ingest wrote no database (%s):\n%s" % (
                shown(self.db_path), self.ingest.log_tail() if self.ingest else ""))
            return False
        with db.open_db("sqlite:///%s" % self.db_path, create=False) as database:
            check = summary.database_check(database.node_counts(), database.watermarks(),
                                                report)
        print("database %s (laterne ingest):" % shown(self.db_path))
        print(summary.format_database(check), flush=True)
        return check["ok"]


def shown(path):
    """A path as the user would type it: relative to the current folder when inside it."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def remove_stale_states(out):
    """Remove state folders of earlier demo runs whose process is gone."""
    for d in out.glob("state-*"):
        pid = d.name.split("-", 1)[1]
        if pid.isdigit() and not os.path.exists("/proc/%s" % pid):
            shutil.rmtree(d, ignore_errors=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="python -m host_tools.demo",
                                 description="a virtual Laterne fleet feeding a broker, "
                                             "watched live")
    ap.add_argument("--nodes", type=int, default=5, help="how many virtual nodes (1-20)")
    ap.add_argument("--duration", type=float, metavar="S",
                    help="stop after S seconds (default: run until Ctrl-C)")
    ap.add_argument("--out", default=os.environ.get("LATERNE_DEMO_OUT", str(OUT)),
                    help="folder for the CSV, the PNG and the logs (default build/demo)")
    args = ap.parse_args(argv)
    if not 1 <= args.nodes <= 20:
        ap.error("--nodes must be between 1 and 20, got %d" % args.nodes)
    if args.duration is not None and args.duration < MIN_DURATION:
        ap.error("--duration must be at least %d seconds so the outage can be shown"
                 % MIN_DURATION)
    return args


def main(argv=None):
    from host_tools.demo.view import DemoView
    args = parse_args(argv)
    demo = Demo(args.nodes, args.duration, Path(args.out).resolve(),
                view=DemoView(stale_after=STALE_S))

    def on_signal(signum, frame):
        demo.stopping = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    ok = result = False
    try:
        demo.start()
        demo.say("running %s; Ctrl-C stops everything" % (
            "until Ctrl-C" if args.duration is None else "for %g s" % args.duration))
        ok = demo.run()
    except Exception as e:  # a message, not a traceback; the clean-up below still runs
        if os.environ.get("LATERNE_DEBUG"):
            raise
        demo.say("error: %s: %s" % (type(e).__name__, e))
    finally:
        for s in old:
            signal.signal(s, signal.SIG_IGN)  # a second Ctrl-C must not skip the clean-up
        demo.say("stopping the fleet and the broker")
        demo.stop()
    try:
        result = demo.results() if demo.recorder is not None else False
    except Exception as e:
        if os.environ.get("LATERNE_DEBUG"):
            raise
        print("demo: error while writing the results: %s: %s" % (type(e).__name__, e))
    if ok and result:  # the nodes' flash images are only worth keeping to debug a failure
        shutil.rmtree(demo.state, ignore_errors=True)
    for s, handler in old.items():
        signal.signal(s, handler)
    return 0 if ok and result else 1


if __name__ == "__main__":
    sys.exit(main())
