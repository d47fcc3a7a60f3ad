# Child processes of the demo: each started in its own session (so a Ctrl-C on the terminal
# reaches only the demo, which then stops them in order), stopped by its process group with
# SIGTERM, then SIGKILL if it does not end in time, and always waited for. Also finds leftover
# processes by a path on their command line, and tells whether a TCP port is free again.
import os
import signal
import socket
import subprocess
import time


class Child:
    """One command in its own session; stderr (and stdout unless given) goes to `log_path`."""

    def __init__(self, name, cmd, log_path, stdout=None, env=None):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout or self._log,
                                     stderr=self._log, env=env, start_new_session=True)
        self.pid = self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM to the group, wait, then SIGKILL; returns the exit code."""
        if self.running():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.proc.wait()
        _signal_group(self.pid, signal.SIGKILL)  # anything it left in its group
        if self._log:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def log_tail(self, lines=8):
        if not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])


def _signal_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def pids_mentioning(text):
    """Pids of live processes (not zombies) whose command line contains `text`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%s/stat" % entry) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry))
    return found


def kill_and_wait(pids, timeout=5.0):
    """SIGKILL each pid (and its group when it leads one); wait until they are gone."""
    for pid in pids:
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def port_free(port, host="127.0.0.1"):
    """True when nothing listens on `port` (closed connections in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
