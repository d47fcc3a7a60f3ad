# `laterne check`: health check of a node over USB; exit code 0 only when every line passes.
import json

from host_tools.usb import check


def add_arguments(parser):
    parser.add_argument("--port", required=True, help="serial port of the board (or a virtual "
                        "board's --pty path)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args):
    report = check.check(args.port)
    if args.json:
        print(json.dumps({"ok": report["ok"], "mac": report["mac"], "fw": report["fw"],
                          "board": report["board"],
                          "next": report["next"] and dict(zip(("missing", "run"), report["next"])),
                          "lines": [{"item": i, "status": s, "detail": d}
                                    for i, s, d in report["lines"]]}, indent=1))
    else:
        print(check.table(report["lines"]))
        if report["next"]:
            print("check: %s: run  %s" % report["next"])
        else:
            print("check: %s" % ("all PASS" if report["ok"] else
                                 "FAIL: " + ", ".join(report["failed"]) if report["failed"]
                                 else "warnings (see WARN lines)"))
    if report["ok"]:
        return 0
    return 1 if report["failed"] else 4
