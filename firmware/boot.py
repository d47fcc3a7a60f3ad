# Runs first on every reset. Kept trivial on purpose: it must never fail.
# A soft reset (mpremote, Ctrl-D) lands at a REPL with the watchdog still running: lease it.
try:
    import machine
    if machine.reset_cause() == machine.SOFT_RESET:
        from laterne.hw.repl import repl_session
        repl_session()
except Exception:
    pass
