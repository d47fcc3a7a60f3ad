# `laterne sim`'s heap options: the node's budget on the chosen interpreter, the virtual
# board's own share given on top (and to the 32-bit build's first area), bad sizes and a
# missing or stale 32-bit build refused with a message.
import pytest

from host_tools import paths
from host_tools.cli import main
from host_tools.virtual import sim


def test_sizes_are_read_like_heapsize():
    assert sim.parse_size("96k") == 96 * 1024
    assert sim.parse_size("1M") == 1024 * 1024
    assert sim.parse_size(" 65536 ") == 65536
    for bad in ("12k", "lots", "", "9x"):
        with pytest.raises(ValueError):
            sim.parse_size(bad)


def test_the_board_share_comes_on_top_of_the_budget_and_the_first_area():
    interp = sim.Interpreter(mpy32=False, board={"gc_heap": {"first_area_kb": 64,
                                                            "budget_kb": 112}})
    assert (interp.first_area, interp.board_budget) == (64 * 1024, 112 * 1024)
    interp.board_share = 18000
    assert "heapsize=%d" % (96 * 1024 + 18000) in interp.command("state", 96 * 1024)
    interp.mpy32 = True
    env = interp.env()
    assert env["MPY32_FIRST_AREA"] == str(64 * 1024 + 18000) and env["MICROPYPATH"] == ".frozen"
    assert interp.command("state", 96 * 1024)[-3:] == ["-m", "node_runner", "state"]


def test_bad_heap_is_a_message_not_a_traceback(capsys):
    assert main(["sim", "--broker", "mqtt://127.0.0.1:1", "--state", "x", "--heap", "12k"]) != 0
    err = capsys.readouterr().err
    assert "at least 16k" in err and "Traceback" not in err


def test_a_missing_or_stale_32_bit_build_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paths, "MPY32", tmp_path / "micropython")
    assert main(["sim", "--broker", "mqtt://127.0.0.1:1", "--state", "x", "--mpy32"]) != 0
    assert "make mpy32" in capsys.readouterr().err
    (tmp_path / "micropython").write_text("")
    stamp = tmp_path / "frozen.sha256"
    stamp.write_text("0" * 64 + "  machine.py\n")  # built from another machine.py
    monkeypatch.setattr(paths, "MPY32_FROZEN", stamp)
    with pytest.raises(FileNotFoundError, match="older than machine.py"):
        paths.micropython32_exe()
