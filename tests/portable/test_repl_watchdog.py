# The watchdog at the REPL (issue 10 item 4): the ESP32's WDT cannot be stopped and survives
# soft resets, so a person or tool at the REPL gets it as a lease, and the reset that ends a
# forgotten session is not counted toward safe mode.
import machine
from laterne.hw import repl

import nodekit

LEASE = repl.LEASE_MS


def test_repl_session_leases_the_watchdog_instead_of_stopping_it():
    root = nodekit.fresh_root()
    hw = nodekit.Board(root, nodekit.power_on(root))
    hw.arm_watchdog(120000)                      # the node runs ...
    repl.repl_session()                      # ... Ctrl-C: a person takes the REPL
    assert machine.board.wdt_timeout_ms == LEASE
    hw.clock.sleep_ms(LEASE - 1000)              # a long session is not cut
    try:
        hw.clock.sleep_ms(2000)                  # a forgotten one ends: the node resumes
        raise AssertionError("the lease must end in a watchdog reset")
    except machine.BoardReset as e:
        assert e.cause == machine.WDT_RESET


def test_resets_that_end_repl_sessions_never_enter_safe_mode():
    root = nodekit.fresh_root()
    clock = nodekit.power_on(root)
    for _ in range(5):                           # five technician sessions in ten minutes
        machine.board.after_reset(machine.WDT_RESET)
        hw = nodekit.Board(root, clock)
        assert hw.boot_guard(3, 600, 3600) is None
        hw.arm_watchdog(120000)
        repl.repl_session()
        hw.clock.sleep_ms(100000)
    machine.board.after_reset(machine.WDT_RESET)  # while a real watchdog reset still counts
    for _ in range(2):
        assert nodekit.Board(root, clock).boot_guard(3, 600, 3600) is None
        machine.board.after_reset(machine.WDT_RESET)
    assert nodekit.Board(root, clock).boot_guard(3, 600, 3600) == "crash loop"
