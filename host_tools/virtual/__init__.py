# Virtual nodes: the sim supervisor, the pty board, and (board/) the MicroPython-side stand-ins.
