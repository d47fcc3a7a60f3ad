# Power-cut proof of updates over the air, like the spool's: MicroPython's littlefs2 on a
# RamBlockDev that cuts the power at the k-th flash operation (torn, lost or fully applied),
# through a scripted run of three updates: download into slot a, switch, trial boots, commit;
# the next one into slot b, the same; a third into slot a that crashes on trial and is rolled
# back by the loader. After every cut the power returns and the loader (firmware/main.py)
# chooses what boots; that app must be complete and verified (every file of its version,
# byte for byte), never older than the newest version whose commit had returned before the
# cut, and the run must still end as without the cut.
# This one file is both sides: pytest (CPython) starts MicroPython on it, and under
# MicroPython it runs the cuts in one process and prints "OK <case> <runs> ...".
import sys

MP = sys.implementation.name == "micropython"

if not MP:
    import subprocess
    from pathlib import Path

    from host_tools.paths import micropython_env, micropython_exe

    HERE = Path(__file__).resolve().parent

    def _run(case):
        proc = subprocess.run(
            [micropython_exe(), "-X", "heapsize=16M", str(Path(__file__)), case],
            env=micropython_env(HERE.parent / "portable", HERE.parent / "kit"),
            capture_output=True, text=True, timeout=900)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and ("OK " + case) in out, out[-4000:]
        return out

    def test_cut_at_every_flash_operation_of_two_updates():
        out = _run("exhaustive")
        words = out.split("OK exhaustive ")[1].split()
        runs, ops = int(words[0]), int(words[3])
        assert ops > 80 and runs == 3 * ops  # every position in all three modes really ran
        booted = out.split("booted ")[1].split()[0]
        assert set(booted.split(",")) == {"factory", "a", "b"}, booted  # every app was chosen


if MP:
    import json
    import os

    import blockdev
    import machine
    import otakit
    import vfs
    from laterne import VERSION

    with open(otakit.__file__.rsplit("/", 1)[0] + "/../../firmware/main.py") as _f:
        LOADER = {"__name__": "loader"}
        exec(_f.read(), LOADER)

    FACTORY = otakit.app_files(VERSION, b"factory", 2100)
    from laterne import otagate
    APPS = {"9.0.0": otakit.app_files("9.0.0", b"first update", 2100),
            "9.1.0": otakit.app_files("9.1.0", b"second update", 2100),
            "9.2.0": otakit.app_files("9.2.0", b"an update that crashes", 2100)}
    OFFERS = {"9.0.0": "00000001", "9.1.0": "00000002", "9.2.0": "00000003"}
    KEY_HEX = "11" * 32


class Flash:
    """One node's flash across power cuts: mount per power-on period, the loader's choice."""

    mounts = 0

    def __init__(self):
        self.bd = blockdev.RamBlockDev(4096, 64)
        vfs.VfsLfs2.mkfs(self.bd)
        self.root = None
        self.committed = VERSION  # the newest version whose commit returned
        self.mount()
        for path, data in FACTORY.items():  # what `laterne deploy` put in /lib
            _write(self.root + "lib/" + path, data)
        _write(self.root + "ota.key", KEY_HEX.encode())

    def mount(self):
        if self.root:
            try:
                vfs.umount(self.root[:-1])
            except OSError:
                pass  # a mount that died with the power stays in the table
        Flash.mounts += 1
        self.root = "/ou%d/" % Flash.mounts
        vfs.mount(vfs.VfsLfs2(self.bd.session()), self.root[:-1])
        LOADER["STATE"] = self.root + "ota/state"

    def snapshot(self):
        return bytes(self.bd.mem)

    def restore(self, image):
        self.bd.mem[:] = image
        self.committed = VERSION
        self.bd.power_restore()
        self.mount()

    def boot(self, cause):
        """The loader's choice, checked: (record, the version that boots)."""
        record, forgive = LOADER["choose"](cause)
        slot = record and record["slot"]
        if not slot:
            version, top = VERSION, self.root + "lib/"
            want = FACTORY
        else:
            version, top = record["version"], self.root + "ota/" + slot + "/"
            want = APPS[version]
        for path, data in want.items():
            with open(top + path, "rb") as f:
                assert f.read() == data, ("incomplete or wrong app boots", slot, path)
        assert otakit.otaoffer.parse_version(version) >= otakit.otaoffer.parse_version(
            self.committed), ("an older app than the committed one boots", version)
        return record, slot or "factory", version


def _write(path, data):
    otakit.ota._mkdirs(path)
    with open(path, "wb") as f:
        f.write(data)


def download(flash, version, record):
    """The running app takes an offer, downloads and switches (then it resets)."""
    node = otakit.Node(flash.root, record, key=None)
    files = APPS[version]
    node.ota().on_message("laterne/lamp-t/ota/offer",
                          otakit.offer(files, version=version, offer_id=OFFERS[version]))
    switched = otakit.Push(node, files, OFFERS[version]).run()
    assert switched, ("the update did not switch", node.lines, node.updater and node.updater.last)


def update(flash, version, record):
    """An update that the new app's trial boots commit."""
    download(flash, version, record)
    return trial(flash, machine.HARD_RESET)


def failed_update(flash, record):
    """9.2.0 crashes on trial: the loader goes back to 9.1.0 in slot b."""
    download(flash, "9.2.0", record)
    flash.boot(machine.HARD_RESET)  # the switch's reset: the first trial boot
    return crash(flash)


def crash(flash):
    record = flash.boot(machine.HARD_RESET)[0]
    assert record["version"] == "9.1.0" and record["last"]["result"] == "rolled_back"
    return record


def trial(flash, cause):
    record, _slot, _version = flash.boot(cause)
    node = otakit.Node(flash.root, record, key=None)
    node.updater = otagate.Gate(node)
    node.spool.next_seq += 1  # it sampled and stored a reading of its own
    node.clock.sleep(200)
    node.updater.after_upload(True)
    flash.committed = record["version"]
    return flash.boot(machine.PWRON_RESET)[0]


def scenario(flash):
    record = flash.boot(machine.PWRON_RESET)[0]
    record = update(flash, "9.0.0", record)
    assert record["slot"] == "a" and "trial" not in record
    record = update(flash, "9.1.0", record)
    assert record["slot"] == "b" and "trial" not in record
    record = failed_update(flash, record)
    assert record["slot"] == "b" and "trial" not in record


def recover(flash):
    """After the cut: what boots is complete; then the run is taken up again and ends with
    9.1.0 committed in slot b and 9.2.0 rolled back."""
    record, slot, version = flash.boot(machine.PWRON_RESET)
    if record and record.get("trial"):
        record = crash(flash) if version == "9.2.0" else trial(flash, machine.PWRON_RESET)
        version = record["version"]
    if version not in APPS:
        record = update(flash, "9.0.0", record)
        version = "9.0.0"
    if version == "9.0.0":
        record = update(flash, "9.1.0", record)
    if record["last"]["version"] != "9.2.0":
        record = failed_update(flash, record)
    assert record["slot"] == "b" and record["version"] == "9.1.0" and "trial" not in record
    assert record["last"]["result"] == "rolled_back"
    return slot


def exhaustive():
    flash = Flash()
    image = flash.snapshot()
    start = flash.bd.ops
    scenario(flash)
    total = flash.bd.ops - start
    runs = 0
    booted = set()
    for mode in (blockdev.TORN, blockdev.LOST, blockdev.DONE):
        for k in range(1, total + 1):
            flash.restore(image)
            flash.bd.cut_after(k, mode)
            try:
                scenario(flash)
            except (blockdev.PowerCut, OSError, otakit.Reset, AssertionError) as e:
                if flash.bd.powered:
                    raise AssertionError("failed without a cut at %d: %r" % (k, e))
            if flash.bd.powered:
                raise AssertionError("no cut at %d of %d" % (k, total))
            flash.bd.power_restore()
            flash.mount()
            try:
                booted.add(recover(flash))
            except Exception as e:
                raise AssertionError("cut %s at op %d/%d: %r" % (mode, k, total, e))
            runs += 1
    print("OK exhaustive", runs, "runs over", total, "flash operations; booted",
          ",".join(sorted(booted)))


if MP and __name__ == "__main__":
    if sys.argv[1] == "exhaustive":
        exhaustive()
