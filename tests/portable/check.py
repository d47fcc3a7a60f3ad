# Assertion helpers for portable tests (they run under pytest on CPython and, unchanged,
# under tests/kit/mp_runner.py on the MicroPython unix port, where pytest does not exist).


def raises(exc_type, fn, *args, **kwargs):
    """Call fn and return the exception of exc_type it raised; fail if it raised none."""
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s did not raise %s" % (getattr(fn, "__name__", fn), exc_type.__name__))
