# The virtual board's host side: a pseudo-terminal that mpremote opens like a USB serial port,
# bridged to a MicroPython unix-port process (board/repl_board.py beside this file) on a
# second pty.
# The unix port exits where an ESP32 soft-reboots (Ctrl-D) or resets; the bridge then prints
# what the board would ("MPY: soft reboot"), restarts the process and, when the reset came
# from the raw REPL, brings the new process back to the raw REPL without showing its banner.
# The watchdog keeps running at the REPL and across soft resets, as on the ESP32: the bridge
# resets a board whose deadline (STATE/wdt, written by the board) has passed.
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import select
import signal
import subprocess
import termios
import time
import tty
from pathlib import Path

from host_tools import paths
from host_tools.errors import UserError

RAW_PROMPT = b"raw REPL; CTRL-B to exit"
UP_MARK = b"\x00vboard-up\x00"
RAW_MARK = b"\x00vboard-raw\x00"
RESET_MARK = b"\x00vboard-reset\x00"
OUT_CAP = 256 * 1024  # bytes kept for a reader that is not reading, like a UART's void
TRACE = os.environ.get("LATERNE_VBOARD_TRACE")
STAND_INS = ("esp32", "ntptime")  # imported before "/" becomes the board's filesystem


def uid_for(node_id):
    """A stable, locally administered MAC-like unique id for a virtual node."""
    return bytes([0x02]) + hashlib.sha256(node_id.encode()).digest()[:5]


def _child_pty():
    """A pty for the MicroPython process: no echo, no signals, bytes as they come. Ctrl-C is
    turned into SIGINT by the bridge only while the interpreter runs code (see _ctrl_c)."""
    master, slave = os.openpty()
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(slave)
    iflag &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR | termios.IXON | termios.ISTRIP
               | termios.BRKINT)
    oflag &= ~termios.ONLCR  # the bridge cooks "\n" itself, see _cook
    lflag = 0
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    termios.tcsetattr(slave, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])
    return master, slave


def _catches_sigint(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        pass
    return False


def _child_setup():
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    try:  # die with the bridge, whatever kills it
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class VirtualBoard:
    def __init__(self, pty_path, state_dir, sensor=True, node_id="vboard", log=None, scale=1):
        self.pty_path = Path(pty_path)
        self.scale = scale
        self.state = Path(state_dir).resolve()
        self.sensor = sensor
        self.node_id = node_id
        self.log = log or (lambda msg: None)
        self.child = None
        self.child_fd = None
        self.master = self.slave = None
        self.mode = "friendly"  # REPL the process is in; a soft reset returns to it
        self.out = bytearray()
        self.pending_in = bytearray()
        self.interrupt_pending = False  # a Ctrl-C that came while the board was booting
        self.filter = None  # None, or "raw": hide the restarted process's banner
        self.filter_buf = b""
        self.raw_sent = False
        self.last_cr = False
        self.tail = b""
        self.wake_at = None
        self.restarts = 0
        self._stop = False

    # -- set-up --------------------------------------------------------------------------------
    def open(self):
        fs = self.state / "fs"
        fs.mkdir(parents=True, exist_ok=True)
        (fs / "lib").mkdir(exist_ok=True)
        spec = {"uid": uid_for(self.node_id).hex(), "sensor": self.sensor,
                "node_id": self.node_id, "scale": self.scale,
                "preload": [n for n in STAND_INS if (paths.VBOARD / (n + ".py")).exists()]}
        (self.state / "vboard.json").write_text(json.dumps(spec))
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        if self.pty_path.is_symlink() or self.pty_path.exists():
            if not self.pty_path.is_symlink():
                raise UserError("%s exists and is not a symlink" % self.pty_path,
                                "choose another --pty path")
            self.pty_path.unlink()
        self.pty_path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.ttyname(self.slave), self.pty_path)
        os.set_blocking(self.master, False)
        self._spawn("friendly", "power_on")

    def _spawn(self, mode, cause):
        self.mode = mode
        (self.state / "reset.json").unlink(missing_ok=True)
        (self.state / "wdt").unlink(missing_ok=True)  # the new process says what it has
        master, slave = _child_pty()
        env = paths.micropython_env()
        env["MICROPYPATH"] = os.pathsep.join([str(paths.VBOARD), ".frozen"])
        self.child = subprocess.Popen(
            [paths.micropython_exe(), "-i", str(paths.VBOARD / "repl_board.py"),
             str(self.state), mode, cause],
            stdin=slave, stdout=slave, stderr=slave, cwd=str(self.state / "fs"), env=env,
            preexec_fn=_child_setup, close_fds=True)
        os.close(slave)
        self.child_fd = master
        self.filter = "raw" if mode == "raw" else None
        self.filter_buf = b""
        self.raw_sent = False
        self.resetting = False
        self.wedge_reset = False
        self.wdt_fired = False
        self.futex_since = None
        self.sigint_sent = False  # only a Ctrl-C can wedge it: /proc is not polled before
        self.ready = False  # input waits until the interpreter can take it (see UP_MARK)
        self.early = b""
        self.log("board started (%s, %s), pid %d" % (mode, cause, self.child.pid))

    # -- running ---------------------------------------------------------------------------------
    def serve(self):
        """Bridge until stop() or a signal; always cleans up."""
        try:
            while not self._stop:
                self._step()
        finally:
            self.close()

    def stop(self, *_):
        self._stop = True

    def _step(self):
        rlist = [self.master]
        if self.child_fd is not None:
            rlist.append(self.child_fd)
        wlist = [self.master] if self.out else []
        timeout = 0.5
        if self.wake_at is not None:
            timeout = max(0.0, min(timeout, self.wake_at - time.monotonic()))
        if self.interrupt_pending and self.child_fd is not None and self.ready:
            if _catches_sigint(self.child.pid):
                self.interrupt_pending = False
                self.sigint_sent = True
                os.kill(self.child.pid, signal.SIGINT)
            else:
                timeout = 0.01  # code is about to run: look again soon
        try:
            readable, writable, _ = select.select(rlist, wlist, [], timeout)
        except InterruptedError:
            return
        if self.master in writable:
            self._flush_out()
        if self.master in readable:
            self._from_host()
        if self.child_fd is not None and self.child_fd in readable:
            self._from_board()
        if self.child_fd is not None and self.sigint_sent and self._wedged():
            # A Ctrl-C that hit the interpreter inside a C library call can leave a lock
            # taken (the process then waits on a futex forever): treat it as the watchdog
            # reset a hung chip would get.
            self.log("board hung after Ctrl-C: watchdog reset")
            self.child.kill()
            self.wedge_reset = True
        if self.child_fd is not None and not self.resetting and self._watchdog_expired():
            self.log("watchdog reset (not fed in time)")
            self.child.kill()
            self.wdt_fired = True
            self.ready = False
        if self.wake_at is not None and time.monotonic() >= self.wake_at:
            self.wake_at = None
            self._spawn("friendly", "deep_sleep")

    def _watchdog_expired(self):
        """The board's watchdog deadline (host ns, 0: not running) passed a second ago."""
        try:
            deadline = int((self.state / "wdt").read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        return not self.wdt_fired and 0 < deadline < time.time_ns() - 1000000000

    def _wedged(self):
        """True when the single-threaded interpreter has waited on a futex for over 1.5 s."""
        try:
            with open("/proc/%d/wchan" % self.child.pid) as f:
                waiting = f.read().startswith("futex")
        except OSError:
            waiting = False
        now = time.monotonic()
        if not waiting:
            self.futex_since = None
        elif self.futex_since is None:
            self.futex_since = now
        return (not self.wedge_reset and self.futex_since is not None
                and now - self.futex_since > 1.5)

    def _from_host(self):
        try:
            data = os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return
        self._trace("host", data)
        if self.wake_at is not None:
            return  # a sleeping chip hears nothing
        if self.child_fd is None or not self.ready:
            self.pending_in += data
            return
        self._to_board(data)

    def _to_board(self, data):
        parts = data.split(b"\x03")
        try:
            for i, part in enumerate(parts):
                if i:
                    self._ctrl_c()
                if part:
                    os.write(self.child_fd, part)
        except OSError:
            pass  # the process is ending; _child_ended follows

    def _ctrl_c(self):
        """Ctrl-C: KeyboardInterrupt while code runs (the unix port then has its SIGINT
        handler installed), else the byte itself for the REPL line editor, as on a device."""
        if _catches_sigint(self.child.pid):
            self.sigint_sent = True
            os.kill(self.child.pid, signal.SIGINT)
        else:
            os.write(self.child_fd, b"\x03")

    def _from_board(self):
        try:
            data = os.read(self.child_fd, 4096)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""
        if data:
            self._trace("board", data)
            self._emit_board(data)
        else:
            self._child_ended()

    def _trace(self, who, data):
        if TRACE:  # LATERNE_VBOARD_TRACE=FILE: every byte both ways, for debugging the bridge
            with open(TRACE, "a") as f:
                f.write("%.3f %s %r ready=%s\n" % (time.monotonic(), who, data, self.ready))

    def _emit_board(self, data):
        if not self.ready:
            # Until the runner is set up a Ctrl-C would kill the process instead of raising
            # KeyboardInterrupt, so host input is held back (a UART buffer would hold it too).
            self.early += data
            i = self.early.find(UP_MARK)
            if i < 0:
                return
            data = self.early[:i] + self.early[i + len(UP_MARK):]
            self.early = b""
            self.ready = True
            if self.pending_in:
                # Like the ESP32's UART: a Ctrl-C received during boot is not a byte in the
                # buffer but a pending KeyboardInterrupt, raised as soon as code runs.
                held = bytes(self.pending_in)
                self.pending_in.clear()
                if b"\x03" in held:
                    self.interrupt_pending = True
                    held = held.replace(b"\x03", b"")
                self._to_board(held)
        i = data.find(RESET_MARK)
        if i >= 0:  # machine.reset(), deepsleep(), a watchdog: the runner waits to be ended
            self.ready = False
            self.resetting = True
            self.child.kill()
            data = data[:i]
        if self.interrupt_pending and data.rstrip(b" ").endswith(b">"):
            self.interrupt_pending = False  # boot ended at a prompt: nothing to interrupt
        if self.filter == "raw":
            data = self._filter_raw(data)
            if not data:
                return
        self._track_mode(data)
        self._send(self._cook(data))

    def _filter_raw(self, data):
        """After a reset in the raw REPL: show boot.py's output, hide the REPL banner, enter
        the raw REPL and show from its prompt on, as an ESP32 does."""
        buf = self.filter_buf + data
        if not self.filter_buf.startswith(RAW_MARK):
            i = buf.find(RAW_MARK)
            if i < 0:
                keep = len(RAW_MARK) - 1  # a mark may be split between reads
                self.filter_buf = buf[-keep:] if len(buf) > keep else buf
                return buf[:-keep] if len(buf) > keep else b""
            shown, buf = buf[:i], buf[i:]
            self.filter_buf = buf
            self._scan_banner()
            return shown
        self.filter_buf = buf
        return self._scan_banner()

    def _scan_banner(self):
        buf = self.filter_buf
        if b">>> " in buf and not self.raw_sent:
            os.write(self.child_fd, b"\x01")  # Ctrl-A: the new process enters the raw REPL
            self.raw_sent = True
        i = buf.find(RAW_PROMPT)
        if i < 0:
            return b""
        self.filter = None
        self.filter_buf = b""
        return buf[i:]

    def _track_mode(self, data):
        seen = self.tail + data
        self.tail = seen[-40:]
        raw, friendly = seen.rfind(RAW_PROMPT), seen.rfind(b">>> ")
        if raw > friendly:
            self.mode = "raw"
        elif friendly > raw:
            self.mode = "friendly"

    def _cook(self, data):
        """ESP32 output ends lines with CRLF; the unix port prints bare LF from print()."""
        if not data:
            return b""
        head = b""
        if self.last_cr and data[:1] == b"\n":  # the CR came at the end of the last chunk
            head, data = b"\n", data[1:]
        self.last_cr = data[-1:] == b"\r" if data else False
        return head + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def _send(self, data):
        self.out += data
        if len(self.out) > OUT_CAP:
            del self.out[:len(self.out) - OUT_CAP]
        self._flush_out()

    def _flush_out(self):
        while self.out:
            try:
                n = os.write(self.master, self.out)
            except (BlockingIOError, OSError):
                return
            del self.out[:n]

    def _child_ended(self):
        if self.early:  # it died while setting up: show why
            self._send(self._cook(self.early))
            self.early = b""
        os.close(self.child_fd)
        self.child_fd = None
        code = self.child.wait()
        self.restarts += 1
        self.tail = b""
        reset = {}
        try:
            reset = json.loads((self.state / "reset.json").read_text() or "{}")
        except (OSError, ValueError):
            pass
        cause = reset.get("cause") if self.resetting else (
            3 if self.wedge_reset or self.wdt_fired else None)
        if code == 0:  # Ctrl-D at either REPL
            self._send(b"MPY: soft reboot\r\n")
            self._spawn(self.mode, "soft")
        elif cause == 5:  # machine.soft_reset()
            self._send(b"MPY: soft reboot\r\n")
            self._spawn("friendly", "soft")
        elif cause == 4:
            sleep_ms = reset.get("sleep_ms")
            self.log("deep sleep %s ms" % sleep_ms)
            self.wake_at = time.monotonic() + (sleep_ms / 1000 if sleep_ms else 365 * 86400)
        elif cause in (2, 3):
            cause = "wdt" if cause == 3 else "hard"
            self._send(b"\r\nrst:%s, boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
                       % (b"0x7 (TG0WDT_SYS_RESET)" if cause == "wdt" else b"0xc (SW_CPU_RESET)"))
            self._spawn("friendly", cause)
        elif code == -signal.SIGINT:
            # Ctrl-C raced the end of a command (the unix port had reset its handler):
            # a device would just show the prompt again, so come back quietly.
            self._spawn("friendly", "soft")
        else:  # the interpreter died: like a panic, the chip restarts
            self._send(b"\r\nvirtual board: process ended (%d), restarting\r\n" % code)
            self._spawn("friendly", "hard")

    # -- tear-down -------------------------------------------------------------------------------
    def close(self):
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait()
        for fd in (self.child_fd, self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.child_fd = self.master = self.slave = None
        try:
            if self.pty_path.is_symlink():
                self.pty_path.unlink()
        except OSError:
            pass


def run_board(pty_path, state_dir, sensor=True, node_id="vboard", log=print, scale=1):
    """Run a virtual board in this process until SIGINT/SIGTERM; its clock runs `scale` times
    faster than the host's (tests: the watchdog's 120 s in seconds)."""
    try:
        paths.micropython_exe()
    except FileNotFoundError:
        raise UserError("the MicroPython unix port is not installed", "run `make setup`")
    board = VirtualBoard(pty_path, state_dir, sensor=sensor, node_id=node_id, log=log,
                         scale=scale)
    old = {s: signal.signal(s, board.stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        board.open()
        log("virtual board %s on %s (files in %s)" % (node_id, pty_path, board.state / "fs"))
        board.serve()
        log("virtual board stopped")
    finally:
        board.close()
        for s, h in old.items():
            signal.signal(s, h)
    return 0
