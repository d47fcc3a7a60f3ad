# A person or tool at the REPL. Imported only then (main.py on Ctrl-C, boot.py on a soft reset,
# every `laterne` session), so the running node does not carry it.
import machine

from laterne import timebase
from laterne.hw.platform import AT_REPL, FLOOR_STEP_S, RTC_CRASH, RtcRegion

LEASE_MS = 1800000  # the REPL's watchdog: a node left at the REPL resumes after it


def repl_session(lease_ms=LEASE_MS):
    """The ESP32's watchdog cannot be stopped and survives soft resets (machine_wdt.c), so it
    is set to the lease instead of the node's 120 s, and the reset that ends a forgotten
    session is not counted as a crash. main.py sets it back when the node runs again."""
    RtcRegion(machine.RTC(), RTC_CRASH, 3).write(AT_REPL)
    machine.WDT(timeout=lease_ms).feed()


def raise_clock_floor(unix, root=""):
    """A tool session tells the node the host's time: with it as a floor a node that never
    reached NTP can still check TLS certificate dates. At most one flash write a day."""
    if unix >= timebase.load_floor(root) + FLOOR_STEP_S:
        timebase.store_floor(root, unix)
