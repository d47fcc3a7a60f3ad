# Laterne node: wire the ESP32 adapters into the core and run. An unhandled exception is
# saved to flash and the node resets; repeated crashes enter safe mode (radio off, slow
# sampling, USB REPL reachable) instead of looping.
import sys
import time

WATCHDOG_MS = 120000


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


def run():
    from laterne import config  # first, on a heap still empty: the schema it may load is big
    loaded = config.load("")
    config.release()  # the running node needs it only for a config/set
    del config
    from laterne import node
    from laterne.hw.platform import Platform
    hw = Platform()
    cfg, source = load_config(hw, loaded)
    safe = hw.boot_guard(cfg["safe_mode"]["crashes"], cfg["safe_mode"]["window_s"],
                         cfg["safe_mode"]["safe_s"])
    if safe:
        cfg = node.safe_mode_config(cfg)
        print("safe mode: crash loop detected; radio off, slow sampling, REPL available")
    hw.arm_watchdog(WATCHDOG_MS)
    n = node.Node(hw, cfg, source)
    n.safe_mode = safe
    if cfg["power_mode"] == "deep_sleep" and not safe:
        n.run_once_deep_sleep()
    else:
        n.run()


try:
    run()
except KeyboardInterrupt:
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
