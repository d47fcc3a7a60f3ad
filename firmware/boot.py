# Runs first on every reset. Kept trivial on purpose: it must never fail.
