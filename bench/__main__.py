# `make bench`: runs every bench/bench_*.py (each has `measure() -> dict` of named figures),
# writes the flat JSON object build/bench.json and prints a table.
# Usage: python -m bench [name-substring ...]
import importlib
import json
import sys
import time
from pathlib import Path

from host_tools.paths import BUILD

HERE = Path(__file__).parent


def main(argv):
    wanted = argv[1:]
    figures = {}
    for path in sorted(HERE.glob("bench_*.py")):
        if wanted and not any(w in path.stem for w in wanted):
            continue
        started = time.time()
        module = importlib.import_module("bench." + path.stem)
        figures.update(module.measure())
        print("# %s: %.1f s" % (path.stem, time.time() - started), file=sys.stderr)
    BUILD.mkdir(exist_ok=True)
    out = BUILD / "bench.json"
    old = json.loads(out.read_text()) if (wanted and out.exists()) else {}
    old.update(figures)
    out.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")
    width = max(len(k) for k in old) if old else 10
    print("| %-*s | %14s |" % (width, "figure", "value"))
    print("|-%s-|-%s-|" % ("-" * width, "-" * 14))
    for key in sorted(old):
        value = old[key]
        text = ("%.3f" % value) if isinstance(value, float) else str(value)
        print("| %-*s | %14s |" % (width, key, text))
    print("written to", out)


if __name__ == "__main__":
    main(sys.argv)
