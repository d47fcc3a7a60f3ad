# `laterne check`: a health check of one node over USB. Interrupts the running node (Ctrl-C),
# calls laterne.service.facts on the board through the raw REPL (board file, I2C adapter,
# BME280 driver, config schema with secrets masked, spool, node snapshot), then soft-resets so
# the node carries on. The facts are judged here: each line is PASS, WARN or FAIL.
from host_tools.errors import UserError
from host_tools.usb.device import Device, DeviceError, retry_once
from laterne import flags
from laterne.bme280 import CHIP_BME280, CHIP_BMP280

# The purge runs before any Laterne module is imported, so it stays here: interrupted while
# main.py was still importing, the node can leave half-made modules behind.
CALL = """\
import sys
if 'laterne' in sys.modules and not hasattr(sys.modules['laterne'], 'VERSION'):
    for _k in [k for k in sys.modules if k == 'laterne' or k.startswith('laterne.')]:
        del sys.modules[_k]
from laterne import service
from laterne.hw.platform import Platform
service.answer(service.facts(Platform()))
"""


def collect(port, timeout=10):
    """The raw facts from the board (a dict), the node resumed afterwards."""
    return retry_once(_collect, port, timeout)


def _collect(port, timeout):
    with Device(port, soft_reset=False, timeout=timeout) as dev:
        try:
            facts = dev.call(CALL, timeout=30)
        except DeviceError as e:
            if "ImportError" not in str(e):
                raise UserError("the check could not run on the board: %s" % e.last_line(),
                                "open the REPL and look: mpremote connect %s repl" % port)
            facts = {"fw_err": e.last_line()}  # no Laterne (or an older one) on the board
        except ValueError:
            facts = None
        dev.resume()
    if not isinstance(facts, dict):
        raise UserError("no answer from the check on the board", "run it again; if it persists "
                        "open the REPL: mpremote connect %s repl" % port)
    return facts


def evaluate(facts):
    """[(item, status, detail)] from the facts. A board without the firmware, or without any
    config or board file yet, gets the one line that says so instead of a row of FAILs."""
    lines = []

    def add(item, status, detail):
        lines.append((item, status, detail))

    if "fw" not in facts:
        add("firmware", "FAIL", "not deployed yet (%s): run laterne deploy" % facts.get("fw_err"))
        return lines
    add("firmware", "PASS", "laterne %s" % facts["fw"])
    if not facts.get("configured", True):
        add("mac", "PASS", facts["mac"])
        add("config", "FAIL", "not configured yet (no /config.json, no /board.json): "
            "run laterne configure")
        return lines
    if facts.get("board"):
        add("board", "PASS", facts["board"])
    else:
        add("board", "FAIL", "no /board.json (%s): run laterne configure"
            % facts.get("board_err", "no name"))
    add("mac", "PASS", facts["mac"])
    _sensor_lines(facts, add)
    _config_lines(facts, add)
    _spool_and_links(facts, add)
    return lines


def next_step(facts, port):
    """(what is missing, the command to run) for a board that is not deployed or not
    configured yet, else None."""
    if "fw" not in facts:
        return "no firmware on the node yet", "laterne deploy --port %s" % port
    if not facts.get("configured", True):
        return ("the node is not configured yet",
                "laterne configure --port %s --inventory fleet.csv --row NODE_ID" % port)
    return None


def _sensor_lines(facts, add):
    if "i2c_err" in facts:
        add("i2c scan", "FAIL", facts["i2c_err"])
    elif "scan" not in facts:
        add("i2c scan", "FAIL", "not scanned: the board file is missing")
    else:
        found = ", ".join("0x%02x" % a for a in facts["scan"]) or "nothing"
        status = "PASS" if facts.get("address") in facts["scan"] else "FAIL"
        add("i2c scan", status, "found %s (sensor expected at 0x%02x)"
            % (found, facts.get("address") or 0))
    chip = facts.get("chip_id")
    if chip is None:
        add("sensor", "FAIL", "no BME280 answers: check wiring, power and the address")
    elif chip == CHIP_BME280:
        add("sensor", "PASS", "BME280 (chip id 0x%02x)" % chip)
    elif chip in CHIP_BMP280:
        add("sensor", "WARN", "BMP280 (chip id 0x%02x): no humidity" % chip)
    else:
        add("sensor", "FAIL", "unknown chip id 0x%02x" % chip)
    if "reading" in facts:
        t, p, h, reading_flags = facts["reading"][:4]
        detail = "%.2f °C  %.1f hPa  %.2f %%RH" % (t / 100, p / 100, h / 100)
        plausible = not reading_flags & flags.IMPLAUSIBLE  # the driver's own ranges
        add("reading", "PASS" if plausible else "WARN",
            detail if plausible else detail + " (implausible)")
    elif chip is not None:
        add("reading", "FAIL", facts.get("reading_err", "no reading"))
    else:
        add("reading", "FAIL", "no sensor")


def _config_lines(facts, add):
    cfg = facts.get("config")
    if cfg:
        source = facts.get("config_source")
        status = "PASS" if source in ("config", "config.json", "file", "primary") else "WARN"
        summary = "node %s, broker %s" % (cfg.get("node_id"), _broker_text(cfg.get("broker")))
        add("config", status, "%s (from %s)" % (summary, source))
    else:
        why = facts.get("config_err") or "; ".join(facts.get("config_errors") or []) or "missing"
        add("config", "FAIL", "%s: run laterne configure" % why)


def _broker_text(broker):
    if not isinstance(broker, dict):
        return str(broker)
    return "%s:%s%s" % (broker.get("host"), broker.get("port"),
                        " tls" if broker.get("tls") else "")


def _spool_and_links(facts, add):
    snap = facts.get("snapshot")
    spool = ({"depth": snap.get("spool_depth"), "dropped": snap.get("dropped")} if snap
             else facts.get("spool"))
    if spool:
        add("spool", "PASS" if not spool.get("dropped") else "WARN",
            "%s readings waiting, %s dropped" % (spool.get("depth"), spool.get("dropped")))
    else:
        add("spool", "WARN", facts.get("spool_err") or "unknown")
    if not snap:
        add("wifi", "WARN", "node not running")
        add("broker", "WARN", "node not running")
        return
    add("wifi", "PASS" if snap.get("wifi") else "WARN",
        "connected, RSSI %s" % snap.get("rssi") if snap.get("wifi") else "not connected")
    state = snap.get("broker")
    add("broker", "PASS" if state == "up" else "WARN",
        {"up": "connected", "off": "radio off (no network configured or safe mode)",
         "down": "not connected", "wifi": "joining Wi-Fi", "mqtt": "connecting to the broker"}
        .get(state, str(state)))
    if snap.get("last_error"):
        add("last error", "WARN", str(snap["last_error"]))


def check(port, timeout=10):
    """Check the node on `port`: dict(ok, failed, lines=[(item, status, detail)], next, facts);
    `next` is (what is missing, command to run) for a board not deployed or configured yet."""
    facts = collect(port, timeout=timeout)
    lines = evaluate(facts)
    return {"ok": all(s == "PASS" for _, s, _ in lines),
            "failed": [i for i, s, _ in lines if s == "FAIL"],
            "lines": lines, "next": next_step(facts, port), "mac": facts.get("mac"),
            "fw": facts.get("fw"), "board": facts.get("board"), "facts": facts}


def table(lines):
    width = max(len(i) for i, _, _ in lines)
    return "\n".join("%-*s  %-4s  %s" % (width, i, s, d) for i, s, d in lines)
