# The README is for users, so every fact and command in it is checked: the wiring table against
# boards/*.json, each fenced shell command either run (quick, no hardware) or checked to be a
# documented `laterne` verb/option or `make` target, and every relative link.
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
LATERNE = [sys.executable, "-m", "host_tools.cli"]
RUN_QUICK = {("laterne", "--help"), ("laterne", "boards"), ("laterne", "boards", "--check"),
             ("make", "help"), ("make", "check-boards")}


def boards():
    out = {}
    for f in sorted((ROOT / "boards").glob("*.json")):
        if f.name != "schema.json":
            out[f.stem] = json.loads(f.read_text())
    return out


def shell_commands():
    """Every line of every ```sh block, without its trailing comment."""
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                cmds.append(line)
    return cmds


def help_text(*verb):
    p = subprocess.run(LATERNE + list(verb) + ["--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def make_targets():
    p = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return set(re.findall(r"^\s*make (\S+)", p.stdout, re.M))


def test_readme_starts_with_the_two_setup_commands():
    assert README.startswith(
        "# Laterne\n\n```sh\n"
        "make demo   # sets everything up, then runs a virtual fleet against a broker, watched live\n"
        "make test   # sets everything up, then runs every test\n```\n")


def test_sections_are_in_the_order_users_need_them():
    heads = re.findall(r"^## (.+)$", README, re.M)
    assert heads[:3] == ["For technicians", "For operators", "For developers"]
    assert README.index("make demo") < README.index("## For technicians")


def wiring_rows():
    rows = {}
    for line in README.splitlines():
        m = re.match(r"\|\s*`([a-z0-9-]+)`\s*\|\s*(\w+)\s*\|\s*`(\w+)`\s*\|\s*GPIO(\d+)\s*\|"
                     r"\s*GPIO(\d+)\s*\|\s*(\d+) KB\s*\|", line)
        if m:
            name, chip, build, sda, scl, heap = m.groups()
            rows[name] = {"chip": chip, "micropython_build": build, "sda": int(sda),
                          "scl": int(scl), "heap_kb": int(heap)}
    return rows


def test_wiring_table_matches_every_board_file():
    files, rows = boards(), wiring_rows()
    assert files, "no board files"
    assert sorted(rows) == sorted(files), "the wiring table must list exactly boards/*.json"
    for name, b in files.items():
        assert rows[name] == {"chip": b["chip"], "micropython_build": b["micropython_build"],
                              "sda": b["i2c"]["sda"], "scl": b["i2c"]["scl"],
                              "heap_kb": b["gc_heap"]["budget_kb"]}, name


def test_the_sensor_address_stated_holds_for_every_board():
    stated = re.search(r"sensor's address is 0x([0-9A-Fa-f]{2})", README)
    assert stated
    assert {b["bme280_address"] for b in boards().values()} == {int(stated.group(1), 16)}


@pytest.mark.parametrize("cmd", shell_commands())
def test_every_readme_command_is_exercised(cmd):
    argv = shlex.split(cmd)
    if tuple(argv) in RUN_QUICK:
        run = LATERNE + argv[1:] if argv[0] == "laterne" else argv
        p = subprocess.run(run, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "Traceback" not in p.stderr
        if argv[:2] == ["laterne", "boards"] and len(argv) == 2:
            assert set(boards()) <= set(re.findall(r"^(\S+)", p.stdout, re.M))
    elif argv[0] == "make":
        targets = [a for a in argv[1:] if "=" not in a]
        assert targets and set(targets) <= make_targets(), cmd
        for var in (a.split("=")[0] for a in argv[1:] if "=" in a):
            assert var in (ROOT / "Makefile").read_text(), "make variable %s unused" % var
    elif argv[0] == "laterne":
        verb = argv[1]
        verbs = re.findall(r"^    ([a-z][a-z-]*)\s", help_text(), re.M)
        assert verb in verbs, "%s is not a verb of `laterne --help` (%s)" % (verb, verbs)
        action = argv[2:3] if len(argv) > 2 and not argv[2].startswith("-") else []
        documented = set(re.findall(r"--[a-z][a-z0-9-]*", help_text(verb, *action)))
        used = {a.split("=")[0] for a in argv[2:] if a.startswith("--")}
        assert used <= documented, "%s: %s not in `laterne %s --help`" % (
            cmd, sorted(used - documented), verb)
        if "--board" in argv:
            assert argv[argv.index("--board") + 1] in boards()
    elif argv[0] == ".venv/bin/pytest":
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                           + argv[1:], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout[-2000:]
        assert re.search(r"\b[1-9]\d* passed", p.stdout)
    else:
        pytest.fail("README command not covered by this test: %s" % cmd)


def test_relative_links_point_to_files():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [l for l in links if "://" not in l]
    assert local
    missing = [l for l in local if not (ROOT / l).exists()]
    assert not missing, missing


def test_the_stale_time_stated_is_the_monitor_default():
    minutes = int(re.search(r"`stale` \(no new reading for (\d+) minutes\)", README).group(1))
    default = re.search(r"--stale-after S.*?\(default\s+(\d+)\)", help_text("monitor"), re.S)
    assert default and int(default.group(1)) == minutes * 60


def test_the_inventory_example_is_read_by_the_tools(tmp_path):
    from host_tools import inventory
    block = re.search(r"```csv\n(.*?)```", README, re.S).group(1).splitlines()
    assert tuple(block[0].split(",")) == inventory.INVENTORY_COLUMNS
    fleet = tmp_path / "fleet.csv"
    fleet.write_text("\n".join(block) + "\n")
    row = inventory.read_inventory(str(fleet), "lamp-017")
    assert row["board"] in boards() and row["lat"] == 52.5201
    for name in inventory.SECRET_NAMES:
        assert "`%s=...`" % name in README, name


def test_the_success_line_shown_is_what_provision_prints(monkeypatch, capsys):
    import argparse
    from host_tools.commands import provision as command
    from host_tools.usb import provision
    shown = re.search(r"`(provision: OK [^`]+)`", README).group(1)
    monkeypatch.setattr(provision, "provision", lambda *a, **k: {
        "node_id": "lamp-017", "mac": "24:0a:c4:00:00:11", "board": "esp32-devkitc",
        "warnings": []})
    args = argparse.Namespace(port="/dev/ttyUSB0", inventory="fleet.csv", row="lamp-017",
                              firmware="ESP32_GENERIC.bin", board=None, site=None, secrets=None,
                              log="provisioning.jsonl", skip_flash=False, restart=False,
                              keys=None)
    assert command.run(args) == 0
    printed = capsys.readouterr().out.strip()
    pattern = r"\s+".join(re.escape(w).replace(r"\.\.\.", r"\S+") for w in shown.split())
    assert re.fullmatch(pattern, printed), (shown, printed)


def test_make_setup_says_how_to_put_laterne_on_the_path(tmp_path):
    stamp = tmp_path / "installed"
    stamp.touch()  # newer than pyproject.toml: nothing is installed again
    venv_bin = str(ROOT / ".venv" / "bin")
    plain = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                            if p.rstrip("/") != venv_bin)

    def setup(path):
        p = subprocess.run(["make", "setup", "STAMP=%s" % stamp], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, PATH=path))
        assert p.returncode == 0, p.stderr
        return p.stdout

    assert "run  . .venv/bin/activate  to put it on your PATH" in setup(plain)
    assert "activate" not in setup(venv_bin + os.pathsep + plain)  # already there: quiet


def test_the_readme_says_how_to_get_laterne_before_its_first_use():
    first_use = re.search(r"```sh\n(?:[^`]*\n)?laterne ", README).start()
    assert 0 < README.find("`. .venv/bin/activate`") < first_use
