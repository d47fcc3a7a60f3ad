# Laterne firmware core. Modules in this package are pure logic (CPython and MicroPython);
# only laterne.hw touches machine/network/esp32.
import os

VERSION = "0.1.0"


def read_text(path, default=None):
    """A small file's text, or default when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def write_text(path, text):
    """Replace a small file atomically (littlefs renames atomically over the old file)."""
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)
