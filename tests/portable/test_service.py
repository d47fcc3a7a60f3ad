# laterne.service, the board side of `laterne check` and `laterne configure`, on the virtual
# board's machine module with a simulated BME280 (CPython and MicroPython): the facts a check
# judges, secrets masked, the driver's chip id and plausibility flag, and the atomic write and
# read-back of configure.
import json
import os
import sys

import machine
from bme280_sim import BME280Sim
from check import cleanup, raises, tmpdir

import laterne
from laterne import flags, node, service
from laterne.hw import platform

SECRET = "wpa-secret-77"
BOARD = {"name": "test-board", "chip": "esp32", "i2c": {"id": 0, "sda": 21, "scl": 22,
         "freq": 100000}, "bme280_address": 0x76, "led": None}


def node_config(**sensor):
    return {"node_id": "lamp-5", "board": "test-board", "sensor": sensor,
            "wifi": [{"ssid": "street", "password": SECRET}],
            "broker": {"host": "mqtt.example.org", "username": "u", "password": "p-secret-1"}}


def board_with(sim=None):
    """A powered-on virtual board with `sim` at 0x76 (nothing on the bus when None)."""
    board = machine.board
    board.devices.clear()
    board.power_on()
    if sim is not None:
        board.attach(0x76, sim(board.clock))
    return board


def facts(root):
    """service.facts on a real Platform, whose clock is the virtual board's, as on the
    virtual board itself (repl_board.py puts that clock in place of `time`)."""
    clock = machine.board.clock
    saved = sys.modules.get("time"), platform.time
    sys.modules["time"] = platform.time = clock
    try:
        return service.facts(platform.Platform(root, clock), root)
    finally:
        sys.modules["time"], platform.time = saved


def configured(root, **sensor):
    service.save_node(root, json.dumps(node_config(**sensor)), json.dumps(BOARD))


def facts_of(sim, configure=True):
    """The facts of a board with `sim` on its bus, configured unless told not."""
    board_with(sim)
    root = tmpdir()
    try:
        if configure:
            configured(root)
        return facts(root)
    finally:
        cleanup(root)


def test_configured_node_with_its_sensor():
    node._current = None  # a Node another test made in this interpreter is not running
    f = facts_of(BME280Sim)  # 21.5 degC, 101325 Pa, 45 %RH
    assert f["fw"] == laterne.VERSION and f["configured"] is True
    assert f["mac"] == "24:0a:c4:00:00:01"  # the virtual board's default unique id
    assert f["board"] == "test-board" and f["config_source"] == "config"
    assert f["config"]["node_id"] == "lamp-5" and f["config"]["wifi"][0]["password"] == "***"
    assert SECRET not in json.dumps(f) and "p-secret-1" not in json.dumps(f)
    assert f["scan"] == [0x76] and f["address"] == 0x76 and f["chip_id"] == 0x60
    t, p, h, fl = f["reading"]
    assert abs(t - 2150) <= 1 and abs(p - 101325) <= 1 and abs(h - 4500) <= 1
    assert fl & flags.IMPLAUSIBLE == 0
    assert f["snapshot"] is None  # no node running in this interpreter
    assert f["spool"] == {"depth": 0, "dropped": 0}


def test_a_reading_outside_the_drivers_range_is_flagged():
    def hot(clock):
        sim = BME280Sim(clock)
        sim.set_environment(78.0, 101325.0, 20.0)  # beyond the driver's 70 degC
        return sim
    f = facts_of(hot)
    assert abs(f["reading"][0] - 7800) <= 1
    assert f["reading"][3] & flags.IMPLAUSIBLE


def test_no_sensor_on_the_bus():
    f = facts_of(None)
    assert f["scan"] == [] and f["chip_id"] is None and "reading" not in f
    assert f["config_source"] == "config"


def test_a_bmp280_is_named_by_its_chip_id():
    f = facts_of(lambda clock: BME280Sim(clock, chip_id=0x58))
    assert f["chip_id"] == 0x58 and "BMP280" in f["reading_err"]


def test_a_board_never_configured_says_so():
    f = facts_of(BME280Sim, configure=False)
    assert f["configured"] is False and "board" not in f and "config" not in f
    assert "scan" not in f and f["mac"] == "24:0a:c4:00:00:01"


def test_save_node_writes_both_files_atomically_and_reads_them_back():
    root = tmpdir()
    try:
        configured(root)
        back = service.read_node(root)
        names = sorted(os.listdir(root))
        with open(root + "config.json") as f:
            on_flash = json.load(f)
        with open(root + "config.bak") as f:
            backup = json.load(f)
    finally:
        cleanup(root)
    assert names == ["board.json", "config.bak", "config.json", "config.ok"]  # no .new left behind
    assert back["board"] == BOARD and back["source"] == "config" and back["errors"] == []
    assert back["config"] == on_flash == backup
    assert back["config"]["wifi"][0]["password"] == SECRET  # the board keeps the real one


def test_a_refused_config_writes_nothing():
    root = tmpdir()
    bad = dict(node_config(), batch_size=0)
    try:
        e = raises(ValueError, service.save_node, root, json.dumps(bad), json.dumps(BOARD))
        names = os.listdir(root)
    finally:
        cleanup(root)
    assert "batch_size" in str(e) and names == []
