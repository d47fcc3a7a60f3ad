# The app's entry point on the ESP32: the loader (/main.py) calls main(record, forgive) with
# the update record it booted (None: the factory app, no update ever installed) and whether
# the reset that led here belongs to an update (a switch or a failed trial) rather than to a
# crash of this app. Wires the adapters into the core and runs. An unhandled exception is
# saved to flash and the node resets; repeated crashes enter safe mode (radio off, slow
# sampling, USB REPL reachable) instead of looping.
import gc
import sys
import time

WATCHDOG_MS = 120000
ROOM = 8192  # the MQTT client's packet and decoder buffers (laterne/uplink.py), 6.6 KB, and some


def load_config(hw, loaded):
    cfg, source, errors = loaded
    for e in errors:
        print("config:", e)
    if cfg is None:
        # No usable config: keep measuring into the spool and say why on the USB console.
        from laterne import node
        cfg = node.fallback_config(hw.mac())
        source = "none"
        print("config: no usable config.json; sampling offline as", cfg["node_id"])
    return cfg, source


def run(record, forgive):
    # Room for the MQTT client's buffers, held while the modules load (loading leaves holes
    # between their code that no 4 KB buffer fits in) and let go just before the node makes
    # them: on a 96 KB heap they would otherwise not be made at all (docs/heap.md).
    room = bytearray(ROOM)
    from laterne import config  # first, on a heap still empty: the schema it may load is big
    loaded = config.load("")
    config.release()  # the running node needs it only for a config/set
    del config
    from laterne import node
    from laterne.hw.platform import Platform
    hw = Platform()
    cfg, source = load_config(hw, loaded)
    safe = hw.boot_guard(cfg["safe_mode"]["crashes"], cfg["safe_mode"]["window_s"],
                         cfg["safe_mode"]["safe_s"], forgive)
    if safe:
        cfg = node.safe_mode_config(cfg)
        print("safe mode: %s detected; radio off, slow sampling, REPL available" % safe)
    hw.arm_watchdog(WATCHDOG_MS)
    del room
    gc.collect()
    n = node.Node(hw, cfg, source)
    n.safe_mode = safe
    n.ota_state = record
    if record and record.get("trial"):  # this app is new: the gate decides whether it stays
        from laterne import otagate
        n.updater = otagate.Gate(n)
    if cfg["power_mode"] == "deep_sleep" and not safe:
        n.run_once_deep_sleep()
    else:
        n.run()


def main(record=None, forgive=False):
    try:
        run(record, forgive)
    except KeyboardInterrupt:
        from laterne.hw.repl import repl_session
        repl_session()  # the watchdog cannot be stopped: give the person at the REPL time
        print("stopped: REPL")
    except Exception as e:
        from laterne import node  # imported already, unless the crash came before
        from laterne.hw.platform import Platform
        node.save_crash("", e)
        sys.print_exception(e)
        try:
            Platform().note_crash()
        except Exception:
            pass  # the reset below still happens; it then counts as a plain hard reset
        time.sleep_ms(1000)
        import machine
        machine.reset()
