# Turns the serial-port failures technicians hit every week (permissions, busy port, missing
# port, brltty, boot mode, raw REPL) into a UserError saying what to do. It looks at the
# machine (device group, /proc) to name the group or the process involved.
import errno
import grp
import os
import re

from host_tools.errors import UserError

BOOT_HINT = ("hold the BOOT button, tap EN/RESET, release BOOT and run the command again; "
             "if it still fails use a data USB cable and try --baud 115200")
CONNECT_FAILURES = ("no serial data received", "failed to connect", "wrong boot mode",
                    "invalid head of packet", "serial data stream stopped",
                    "timed out waiting for packet", "download mode successfully detected")
ERRNO_RE = re.compile(r"\[Errno (\d+)\]")


def _errno_of(exc):
    for e in _chain(exc):
        if isinstance(getattr(e, "errno", None), int):
            return e.errno
        if e.args and isinstance(e.args[0], int):
            return e.args[0]
        m = ERRNO_RE.search(str(e))
        if m:
            return int(m.group(1))
    return None


def _chain(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _text(exc):
    return " | ".join(str(e) for e in _chain(exc))


def port_group(port):
    """Name of the group owning the device node, or None."""
    try:
        gid = os.stat(port).st_gid
        return grp.getgrgid(gid).gr_name
    except (OSError, KeyError):
        return None


def _processes(proc_root):
    try:
        names = os.listdir(proc_root)
    except OSError:
        return
    for pid in names:
        if pid.isdigit():
            yield int(pid), os.path.join(proc_root, pid)


def _comm(pdir):
    try:
        with open(os.path.join(pdir, "comm")) as f:
            return f.read().strip()
    except OSError:
        return "?"


def port_holders(port, proc_root="/proc"):
    """[(pid, command)] of other processes with `port` open, from /proc/*/fd."""
    target = os.path.realpath(port)
    out = []
    for pid, pdir in _processes(proc_root):
        if pid == os.getpid():
            continue
        fd_dir = os.path.join(pdir, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == target:
                    out.append((pid, _comm(pdir)))
                    break
            except OSError:
                continue
    return out


def brltty_running(proc_root="/proc"):
    return any(_comm(pdir) == "brltty" for _, pdir in _processes(proc_root))


def visible_ports():
    """The serial ports pyserial sees, as 'device (description)' strings."""
    try:
        from serial.tools import list_ports
        ports = list_ports.comports()
    except Exception:
        return []
    out = []
    for p in sorted(ports, key=lambda p: p.device):
        desc = p.description if p.description and p.description != "n/a" else ""
        out.append("%s (%s)" % (p.device, desc) if desc else p.device)
    return out


def _permission(port):
    group = port_group(port) or "dialout"
    user = os.environ.get("USER") or "$USER"
    try:
        members = grp.getgrnam(group).gr_mem
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        members, gid = [], None
    if user in members and gid not in os.getgroups():
        hint = ("you were added to the '%s' group but this login session predates it: "
                "log out and back in (or reboot), then run again" % group)
    else:
        hint = ("add yourself to the group owning the port: sudo usermod -aG %s %s, "
                "then log out and back in" % (group, user))
    return UserError("permission denied on %s (the port belongs to group '%s')" % (port, group),
                     hint)


def _busy(port, proc_root):
    holders = port_holders(port, proc_root)
    if any(name == "brltty" for _, name in holders):
        return _brltty(port)
    if holders:
        who = ", ".join("%s (pid %d)" % (name, pid) for pid, name in holders)
        return UserError("%s is busy: it is open in %s" % (port, who),
                         "close that program (serial monitor, mpremote, another laterne) "
                         "or stop it with: kill %d" % holders[0][0])
    return UserError("%s is busy: another program has it open" % port,
                     "close serial monitors, mpremote or other laterne/esptool runs, then retry")


def _brltty(port):
    return UserError("brltty (a Braille display driver) is grabbing the USB serial adapter, "
                     "so %s disappears" % port,
                     "remove it with: sudo apt remove brltty, then unplug and replug the board")


def _missing(port, proc_root):
    if brltty_running(proc_root):
        return _brltty(port)
    ports = visible_ports()
    if ports:
        hint = "serial ports found: %s; pass one with --port" % ", ".join(ports)
    else:
        hint = ("no serial ports found at all: plug the board in with a data USB cable "
                "(charge-only cables have no data lines) and check `dmesg | tail`")
    return UserError("no serial port %s" % port, hint)


def chip_mismatch(board, found_chip):
    """The board file says one chip, the board on the port is another."""
    return UserError("the board on the port is an %s but board '%s' is an %s"
                     % (found_chip, board["name"], board["chip"].upper()),
                     "pick the right board with --board (see `laterne boards`) or plug in "
                     "the right board")


def missing_firmware(path, why="does not exist"):
    return UserError("firmware file %s %s" % (path, why),
                     "download the MicroPython .bin for this board from "
                     "micropython.org/download (the board's micropython_build) and pass it "
                     "with --firmware")


def explain_serial_error(exc, port, proc_root="/proc"):
    """A UserError with one sentence of what to do for `exc` raised while using `port`."""
    if isinstance(exc, UserError):
        return exc
    text = _text(exc)
    low = text.lower()
    code = _errno_of(exc)
    if isinstance(exc, FileNotFoundError) and exc.filename and exc.filename != port:
        return missing_firmware(exc.filename)
    if "could not enter raw repl" in low:
        return UserError("%s answers, but not with a MicroPython REPL (could not enter raw "
                         "REPL)" % port,
                         "the node may be busy or not running MicroPython: press Ctrl-C in "
                         "`mpremote connect %s repl` or tap RESET and retry; if that fails, "
                         "reflash with `laterne flash`" % port)
    if code == errno.EACCES or "permission denied" in low:
        return _permission(port)
    if code in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in low:
        return _busy(port, proc_root)
    if code == errno.ENOENT or "no such file or directory" in low or (
            "failed to access" in low and not os.path.exists(port)):
        return _missing(port, proc_root)
    if "failed to access" in low:  # mpremote says only this: find out which case it is
        if not os.access(port, os.R_OK | os.W_OK):
            return _permission(port)
        return _busy(port, proc_root)
    if "md5 of file does not match" in low or "write failed" in low:
        return UserError("the data written to %s did not verify" % port,
                         "run again with --erase and --baud 115200; if it fails again the "
                         "board's flash or USB cable is faulty")
    if any(s in low for s in CONNECT_FAILURES):
        return UserError("no answer from the ESP32 bootloader on %s (not in download mode)"
                         % port, BOOT_HINT)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return UserError("serial error on %s: %s" % (port, first),
                     "unplug and replug the board, then run the command again")
