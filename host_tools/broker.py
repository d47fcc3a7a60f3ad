# Starts an MQTT broker on a free loopback port for tests, benches and the demo:
# mosquitto when it is installed, otherwise amqtt from the project's environment.
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_exe():
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)),
        None)


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("broker exited with code %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("broker did not listen on port %d" % port)


def end_process(proc, timeout, sig=signal.SIGTERM):
    """Send sig to a running proc, wait up to timeout seconds, then SIGKILL; always reaped."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Broker:
    """A broker process on 127.0.0.1:`port`. `tls` = (cafile, certfile, keyfile) adds TLS;
    mosquitto only: `persistence` keeps sessions and retained messages in self.db_path across
    restarts, `auth` = (password_file, acl_file) turns anonymous access off."""

    def __init__(self, port=None, tls=None, kind=None, log_path=None, persistence=False,
                 auth=None):
        self.port = port or free_port()
        self.tls = tls
        self.persistence = persistence
        self.auth = auth
        self.kind = kind or ("mosquitto" if mosquitto_exe() else "amqtt")
        self.proc = None
        self._dir = tempfile.mkdtemp(prefix="laterne-broker-")
        self.log_path = log_path or os.path.join(self._dir, "broker.log")
        self.db_path = os.path.join(self._dir, "mosquitto.db")

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % ("mqtts" if self.tls else "mqtt", self.port)

    def _mosquitto_cmd(self):
        conf = Path(self._dir) / "mosquitto.conf"
        lines = ["listener %d 127.0.0.1" % self.port,
                 "allow_anonymous %s" % ("false" if self.auth else "true"),
                 "max_inflight_messages 0", "max_queued_messages 100000",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if self.persistence or self.auth:
            self._give_to_broker(self._dir)
        if self.persistence:
            lines += ["persistence true", "persistence_location %s/" % self._dir,
                      "persistence_file mosquitto.db", "autosave_interval 5"]
        else:
            lines.append("persistence false")
        if self.auth:
            lines += ["password_file %s" % self._own(self.auth[0]),
                      "acl_file %s" % self._own(self.auth[1])]
        if self.tls:
            ca, cert, key = self.tls
            lines += ["cafile %s" % ca, "certfile %s" % cert, "keyfile %s" % key]
        conf.write_text("\n".join(lines) + "\n")
        return [mosquitto_exe(), "-c", str(conf)]

    def _own(self, path):
        """A copy of path in the broker's folder, readable by the broker once it dropped root."""
        copy = os.path.join(self._dir, os.path.basename(path))
        shutil.copyfile(path, copy)
        self._give_to_broker(copy)
        return copy

    def _give_to_broker(self, path):
        # mosquitto started as root runs as the user `mosquitto` after reading its config
        if os.geteuid() == 0:
            try:
                import pwd
                user = pwd.getpwnam("mosquitto")
            except (ImportError, KeyError):
                return
            os.chown(path, user.pw_uid, user.pw_gid)

    def _amqtt_cmd(self):
        if self.tls or self.persistence or self.auth:
            raise RuntimeError("TLS, persistence and authentication need mosquitto")
        conf = Path(self._dir) / "amqtt.yaml"
        conf.write_text(
            "listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:%d\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
            "    allow_anonymous: true\n" % self.port)
        exe = Path(sys.executable).parent / "amqtt"
        return [str(exe), "-c", str(conf)]

    def start(self):
        cmd = self._mosquitto_cmd() if self.kind == "mosquitto" else self._amqtt_cmd()
        self._log = open(self.log_path, "ab")
        # its own session: a Ctrl-C meant for the demo must not kill the broker first
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port, proc=self.proc)
        return self

    def stop(self, sig=signal.SIGTERM):
        end_process(self.proc, 5, sig)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def kill(self):
        """SIGKILL: the broker dies without saving anything (a crash)."""
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
