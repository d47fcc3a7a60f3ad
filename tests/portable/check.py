# Helpers for portable tests (they run under pytest on CPython and, unchanged, under
# tests/kit/mp_runner.py on the MicroPython unix port, where pytest does not exist): an
# assertion for exceptions and a scratch folder on the host filesystem.
import os
import random


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception of exc_type it raised; fail if it raised none."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))


def tmpdir():
    """A new empty folder under /tmp, as a path prefix ending in '/'."""
    path = "/tmp/laterne-test-%08x" % random.getrandbits(32)
    os.mkdir(path)
    return path + "/"


def cleanup(root):
    """Remove the folder `root` (ends in '/') with everything in it."""
    for name in os.listdir(root):
        path = root + name
        if os.stat(path)[0] & 0x4000:  # a folder
            cleanup(path + "/")
        else:
            os.remove(path)
    os.rmdir(root[:-1])
