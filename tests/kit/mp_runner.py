# Runs the portable tests of one module on MicroPython: every callable named test_*.
# Prints one line per test and the traceback of each failure; exit status 1 on any failure.
import sys


def main(modname):
    mod = __import__(modname)
    names = sorted(n for n in dir(mod) if n.startswith("test_"))
    failed = 0
    for name in names:
        try:
            getattr(mod, name)()
            print("PASS", name)
        except Exception as e:  # report every failure, keep going
            failed += 1
            print("FAIL", name)
            sys.print_exception(e)
    print("%d passed, %d failed" % (len(names) - failed, failed))
    if not names:
        print("no tests in", modname)
        failed = 1
    sys.exit(1 if failed else 0)


main(sys.argv[1])
