# One open connection to a MicroPython board over mpremote's SerialTransport, with every
# transport or serial failure turned into a UserError that tells the technician what to do.
# deploy, configure and check share it; call() runs a laterne.service function on the board.
import contextlib
import io
import os
import time

from host_tools.errors import UserError

FETCH_INFO = """\
import sys
_m = getattr(sys.implementation, '_mpy', 0)
print(repr({'mpy': _m, 'platform': sys.platform, 'version': tuple(sys.implementation.version),
 'machine': getattr(sys.implementation, '_machine', '')}))
del _m
"""


# Every session starts here. The ESP32's watchdog cannot be stopped and survives soft resets:
# the node's firmware leases it to the REPL (laterne.hw.repl.repl_session, also called
# on Ctrl-C and from boot.py), so the session is not cut and its reset is no crash; the
# host's time becomes the node's clock floor (for TLS before NTP answers). A board without
# the firmware has neither and no armed watchdog: nothing to do there.
SESSION_START = """\
try:
    from laterne.hw.repl import raise_clock_floor, repl_session
    repl_session()
    raise_clock_floor(%d)
except Exception:
    pass
"""


def _explain(exc, port):
    from host_tools.serial_hints import explain_serial_error
    err = explain_serial_error(exc, port)
    err.transport = True  # the link failed (not our request): worth one more try
    return err


def retry_once(fn, *args, **kw):
    """fn(), and once more if the serial link failed midway (a board that reset or hung
    while we talked to it); idempotent operations only."""
    try:
        return fn(*args, **kw)
    except UserError as e:
        if not getattr(e, "transport", False):
            raise
    return fn(*args, **kw)


class Device:
    """`with Device(port) as dev:` enters the raw REPL (soft reset first unless told not)."""

    def __init__(self, port, soft_reset=True, timeout=10):
        self.port = port
        self.soft_reset = soft_reset
        self.timeout = timeout
        self.transport = None

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport
        import serial

        if not self.port.startswith(("socket://", "rfc2217://", "loop://")) \
                and not os.path.exists(self.port):
            raise UserError("no serial port %s" % self.port,
                            "plug the board in and check the name (ls /dev/ttyUSB* /dev/ttyACM*); "
                            "for the virtual board use the --pty path it printed")
        try:
            self.transport = SerialTransport(self.port, baudrate=115200)
        except (TransportError, serial.SerialException, OSError) as e:
            raise _explain(e, self.port) from None
        quiet = io.StringIO()  # mpremote prints the raw bytes it got when entering fails
        try:
            with contextlib.redirect_stdout(quiet):
                self.transport.enter_raw_repl(soft_reset=self.soft_reset,
                                              timeout_overall=self.timeout)
            self._resync()
            self.transport.exec_raw(SESSION_START % int(time.time()), timeout=self.timeout)
        except (TransportError, serial.SerialException, OSError) as e:
            self.close()
            raise _explain(e, self.port) from None

    def _resync(self):
        """A board interrupted while booting can print a second raw-REPL prompt: drop what
        is still arriving and ask for one fresh prompt (Ctrl-A), so the next command reads
        only its own answer. mpremote expects the final ">" still unread."""
        t = self.transport
        time.sleep(0.05)
        if t.serial.in_waiting <= 1:  # only the prompt's ">" is waiting: all is well
            return
        t.serial.reset_input_buffer()
        t.serial.write(b"\x01")
        t.read_until(1, b"raw REPL; CTRL-B to exit\r\n", timeout=self.timeout)

    def close(self):
        if self.transport is not None:
            try:
                if self.transport.in_raw_repl:
                    self.transport.exit_raw_repl()
                self.transport.close()
            except OSError:
                pass
            self.transport = None

    def exec(self, code, timeout=10):
        """Run code in the raw REPL; returns stdout (bytes); an exception on the device raises
        DeviceError carrying its traceback."""
        from mpremote.transport import TransportError
        import serial
        try:
            out, err = self.transport.exec_raw(code, timeout=timeout)
        except (TransportError, serial.SerialException, OSError) as e:
            raise _explain(e, self.port) from None
        if err:
            raise DeviceError(err.decode(errors="replace"))
        return out

    def call(self, code, timeout=10):
        """Run code that ends in laterne.service.answer(value) on the board; return the value
        (None when the board printed no answer)."""
        import json
        from laterne.service import MARK
        out = self.exec(code, timeout=timeout).decode(errors="replace")
        for line in reversed(out.splitlines()):
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])
        return None

    def eval_repr(self, code):
        """Run code that prints one repr(); return the value."""
        import ast
        out = self.exec(code).decode(errors="replace").strip()
        try:
            return ast.literal_eval(out)
        except (ValueError, SyntaxError):
            raise UserError("unexpected answer from the board on %s: %r" % (self.port, out[:200]),
                            "is this a MicroPython board? try `mpremote connect %s repl`"
                            % self.port)

    def info(self):
        return self.eval_repr(FETCH_INFO)

    def write_file(self, path, data, chunk=2048):
        from mpremote.transport import TransportError
        try:
            self.transport.fs_writefile(path, data, chunk_size=chunk)
        except TransportError as e:
            raise DeviceError(str(e)) from None

    def resume(self):
        """Leave the raw REPL and soft-reset in the friendly REPL so boot.py and main.py run:
        the node carries on as after power-up (without losing RTC memory)."""
        t = self.transport
        t.exit_raw_repl()
        t.read_until(1, b">>> ", timeout=2)
        t.serial.write(b"\x04")
        t.read_until(1, b"soft reboot\r\n", timeout=self.timeout)


class DeviceError(Exception):
    """Python code run on the board raised; the text is the device's traceback."""

    def last_line(self):
        lines = [l for l in str(self).strip().splitlines() if l.strip()]
        return lines[-1] if lines else ""

