# `laterne provision`: flash, deploy, configure and check one node in one go. Resumable: the
# state file build/provision/<node_id>.json records finished steps with the hashes of their
# inputs, so a rerun continues at the failed step (and starts over when the firmware image or
# the app changed). Every run appends one record to the provisioning log (JSON lines, no
# secrets): node, MAC, chip, board, image and app hashes, time, result, failed step and why.
import datetime
import hashlib
import json
from pathlib import Path

from host_tools import inventory, paths
from host_tools.boards import load_board
from host_tools.errors import UserError
from host_tools.usb import check, configure, deploy

STEPS = ("flash", "deploy", "configure", "check")


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def tree_sha256(folder):
    """Hash of the firmware source tree (paths and contents): 'the app' before compiling."""
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(folder).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def app_version():
    import laterne
    return laterne.VERSION


class State:
    """Finished steps of one node, kept valid only for the inputs they were done with."""

    def __init__(self, path, inputs):
        self.path = Path(path)
        self.inputs = inputs
        self.done = {}
        try:
            old = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        same = lambda k: old.get("inputs", {}).get(k) == inputs.get(k)  # noqa: E731
        if not (same("firmware_sha256") and same("app_sha256") and same("board")):
            return  # new image, app or board: start over
        self.done = old.get("done", {})
        if not same("config_inputs"):
            for step in ("configure", "check"):
                self.done.pop(step, None)

    def finished(self, step, info):
        self.done[step] = dict(info, at=_now())
        self.save()

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"inputs": self.inputs, "done": self.done}, indent=1))


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def provision(port, inventory_path, row_id, firmware=None, board=None, site=None,
              secrets_file=None, log_path="provisioning.jsonl", skip_flash=False,
              state_dir=None, firmware_dir=None, flash=None, restart=False, environ=None,
              log=print, timeout=10, keys=None):
    """Run the steps not yet done; returns the log record. `board` names a board other than
    the inventory row's; `flash` replaces flash_board (tests inject a fake flash step here);
    `keys` is the fleet's OTA key file: the node's own key is put on it after configure."""
    row = inventory.read_inventory(inventory_path, row_id)
    board_spec = load_board(board or row["board"])
    if not skip_flash:
        if not firmware:
            raise UserError("--firmware FILE.bin is needed to flash", "or pass --skip-flash")
        if not Path(firmware).is_file():
            raise UserError("firmware file %s not found" % firmware,
                            "download the MicroPython %s image to that path"
                            % board_spec.get("micropython_build", ""))
    job = inventory.spec_for(row, board_spec, site, secrets_file, environ)
    firmware_dir = Path(firmware_dir or paths.FIRMWARE)
    inputs = {"firmware_sha256": file_sha256(firmware) if firmware and Path(firmware).is_file()
              else None,
              "app_sha256": tree_sha256(firmware_dir), "board": job.board["name"],
              "config_inputs": configure.config_hash(configure.summary(job.config))}
    state_dir = Path(state_dir or paths.BUILD / "provision")
    state = State(state_dir / (row["node_id"] + ".json"), inputs)
    if restart:
        state.done = {}
    record = {"time_utc": _now(), "node_id": row["node_id"], "board": job.board["name"],
              "chip": job.board.get("chip"), "mac": None, "port": port,
              "firmware_file": str(firmware) if firmware else None,
              "firmware_sha256": inputs["firmware_sha256"], "app_version": app_version(),
              "app_hash": None, "steps_run": [], "steps_skipped": [], "result": "failed",
              "failed_step": None, "reason": None, "warnings": []}
    for step in STEPS:
        if step in state.done and step != "check":
            record["steps_skipped"].append(step)
            _carry(record, state.done[step])
            log("provision: %s already done, skipped" % step)
            continue
        if step == "flash" and skip_flash:
            record["steps_skipped"].append(step)
            log("provision: flash skipped (--skip-flash)")
            continue
        log("provision: %s ..." % step)
        try:
            info = _run_step(step, port, job, firmware, firmware_dir, flash, log, timeout, keys)
        except Exception as e:
            record["failed_step"] = step
            record["reason"] = e.message if isinstance(e, UserError) else "%s: %s" % (
                type(e).__name__, e)
            _append_log(log_path, record)
            state.save()
            raise
        record["steps_run"].append(step)
        _carry(record, info)
        if step == "check":
            record["warnings"] = info.get("warnings", [])
        state.finished(step, info)
    record["result"] = "ok"
    _append_log(log_path, record)
    log("provision: %s done (MAC %s, app %s %s)" % (row["node_id"], record["mac"],
                                                    record["app_version"],
                                                    (record["app_hash"] or "")[:12]))
    return record


def _carry(record, info):
    for key in ("mac", "chip", "app_hash"):
        if info.get(key):
            record[key] = info[key]


def _run_step(step, port, job, firmware, firmware_dir, flash, log, timeout, keys):
    """One step for the node spec `job` (row, board dict, config); returns what it learnt."""
    if step == "flash":
        if flash is None:
            from host_tools.flash.flasher import flash_board as flash
        info = flash(port, job.board, firmware, erase=False, baud=460800, progress=True,
                     log=log)
        return {"mac": info.get("mac"), "chip": info.get("chip")}
    if step == "deploy":
        result = deploy.deploy(port, firmware_dir=firmware_dir, log=log, timeout=timeout)
        return {"app_hash": result["app_hash"], "copied": len(result["copied"]),
                "removed": len(result["removed"])}
    if step == "configure":
        result = configure.configure(port, job.config, job.board, log=log, timeout=timeout)
        if keys:
            from host_tools.ota import keys as ota_keys
            ota_keys.install(port, job.config["node_id"], keys, log, timeout)
        return {"config_hash": result["config_hash"]}
    report = check.check(port, timeout=timeout)
    log(check.table(report["lines"]))
    if report["failed"]:
        raise UserError("check failed: %s" % ", ".join(
            "%s (%s)" % (i, d) for i, s, d in report["lines"] if s == "FAIL"),
            "fix it and run provision again: it continues at the failed step")
    return {"mac": report.get("mac"), "warnings": ["%s: %s" % (i, d) for i, s, d in report["lines"]
                                     if s == "WARN"]}


def _append_log(path, record):
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
