# `laterne check`: a health check of one node over USB. Interrupts the running node (Ctrl-C),
# asks it through the raw REPL using the firmware's own modules (board file, I2C adapter,
# BME280 driver, config schema with secrets masked, spool, node snapshot), then soft-resets so
# the node carries on. Each line is PASS, WARN or FAIL.
import json

from host_tools.usb.device import Device, DeviceError, retry_once
from host_tools.errors import UserError

MARK = "@@laterne-check@@"
BME280_CHIP_ID = 0x60
BMP280_CHIP_IDS = (0x56, 0x57, 0x58)

# Runs on the board. Every part is guarded: a broken part is reported, not fatal.
DEVICE_CODE = """\
import sys, json, machine
# Interrupted while main.py was still importing, the node can leave half-made modules behind.
if 'laterne' in sys.modules and not hasattr(sys.modules['laterne'], 'VERSION'):
    for _k in [k for k in sys.modules if k == 'laterne' or k.startswith('laterne.')]:
        del sys.modules[_k]
_r = {}
def _err(e):
    return '%s: %s' % (type(e).__name__, e)
try:
    import laterne
    _r['fw'] = laterne.VERSION
except Exception as e:
    _r['fw_err'] = _err(e)
try:
    _r['mac'] = ':'.join('%02x' % b for b in machine.unique_id())
except Exception as e:
    _r['mac_err'] = _err(e)
try:
    with open('/board.json') as f:
        _b = json.load(f)
    _r['board'] = _b.get('name')
except Exception as e:
    _b = None
    _r['board_err'] = _err(e)
_cfg = None
try:
    from laterne import config as _c
    _cfg, _src, _errs = _c.load('')
    _r['config_source'] = _src
    _r['config_errors'] = [str(x) for x in _errs]
    if _cfg is not None:
        _r['config'] = _c.redact(_cfg)
except Exception as e:
    _r['config_err'] = _err(e)
if _b is not None:
    try:
        _s = _b['i2c']
        _i2c = machine.I2C(_s['id'], sda=machine.Pin(_s['sda']), scl=machine.Pin(_s['scl']),
                           freq=_s['freq'])
        _r['scan'] = _i2c.scan()
        _a = (_cfg or {}).get('sensor', {}).get('address') or _b.get('bme280_address', 0x76)
        _r['address'] = _a
        if _a in _r['scan']:
            _r['chip_id'] = _i2c.readfrom_mem(_a, 0xD0, 1)[0]
    except Exception as e:
        _r['i2c_err'] = _err(e)
    if 'chip_id' in _r:
        try:
            from laterne.hw.platform import Platform
            _p = Platform()
            _sc = (_cfg or {}).get('sensor') or _c.defaults()['sensor']
            _sen = _p.sensor(_sc)
            _r['reading'] = list(_sen.read())
        except Exception as e:
            _r['reading_err'] = _err(e)
try:
    from laterne import node as _n
    _r['snapshot'] = _n.snapshot()
except Exception as e:
    _r['snapshot_err'] = _err(e)
if not _r.get('snapshot') and _cfg is not None:
    try:
        from laterne.spool import Spool
        from laterne.hw.platform import Platform
        _sp = Spool('', _cfg['spool_bytes'], rtc=Platform().rtc_spool(),
                    rtc_loss_ok=_cfg.get('rtc_fast_path', False))
        _r['spool'] = {'depth': _sp.depth(), 'dropped': _sp.dropped}
    except Exception as e:
        _r['spool_err'] = _err(e)
print('@@laterne-check@@' + json.dumps(_r))
"""


def collect(port, timeout=10):
    """The raw facts from the board (a dict), the node resumed afterwards."""
    return retry_once(_collect, port, timeout)


def _collect(port, timeout):
    with Device(port, soft_reset=False, timeout=timeout) as dev:
        try:
            out = dev.exec(DEVICE_CODE, timeout=30).decode(errors="replace")
        except DeviceError as e:
            raise UserError("the check could not run on the board: %s" % e.last_line(),
                            "is the firmware deployed? run `laterne deploy --port %s`" % port)
        dev.resume()
    for line in reversed(out.splitlines()):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise UserError("no answer from the check on the board", "run it again; if it persists "
                    "open the REPL: mpremote connect %s repl" % port)


def evaluate(facts):
    """[(item, status, detail)] from the facts."""
    lines = []

    def add(item, status, detail):
        lines.append((item, status, detail))

    if "fw" in facts:
        add("firmware", "PASS", "laterne %s" % facts["fw"])
    else:
        add("firmware", "FAIL", "not deployed (%s): run laterne deploy" % facts.get("fw_err"))
    if facts.get("board"):
        add("board", "PASS", facts["board"])
    else:
        add("board", "FAIL", "no /board.json (%s): run laterne configure"
            % facts.get("board_err", "no name"))
    if "mac" in facts:
        add("mac", "PASS", facts["mac"])
    else:
        add("mac", "FAIL", facts.get("mac_err"))
    _sensor_lines(facts, add)
    _config_lines(facts, add)
    _spool_and_links(facts, add)
    return lines


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
    elif chip == BME280_CHIP_ID:
        add("sensor", "PASS", "BME280 (chip id 0x%02x)" % chip)
    elif chip in BMP280_CHIP_IDS:
        add("sensor", "WARN", "BMP280 (chip id 0x%02x): no humidity" % chip)
    else:
        add("sensor", "FAIL", "unknown chip id 0x%02x" % chip)
    if "reading" in facts:
        t, p, h = facts["reading"][:3]
        detail = "%.2f °C  %.1f hPa  %.2f %%RH" % (t / 100, p / 100, h / 100)
        plausible = -4000 <= t <= 8500 and 30000 <= p <= 110000 and 0 <= h <= 10000
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
    """Check the node on `port`: dict(ok, lines=[(item, status, detail)], facts)."""
    facts = collect(port, timeout=timeout)
    lines = evaluate(facts)
    return {"ok": all(s == "PASS" for _, s, _ in lines),
            "failed": [i for i, s, _ in lines if s == "FAIL"],
            "lines": lines, "mac": facts.get("mac"), "fw": facts.get("fw"),
            "board": facts.get("board"), "facts": facts}


def table(lines):
    width = max(len(i) for i, _, _ in lines)
    return "\n".join("%-*s  %-4s  %s" % (width, i, s, d) for i, s, d in lines)
