# The virtual board's machine.Timer, as the loader's trial deadline uses it: a callback when
# the board clock passes the period (checked as the firmware sleeps, like the ESP32 port runs
# it between bytecodes), once or periodically; an exception in it is printed and dropped, a
# reset in it resets the board; a reset or deinit() stops it.
import machine
from check import raises


def fresh():
    machine.board.devices.clear()
    machine.board.power_on()
    return machine.board.clock


def test_one_shot_fires_once_after_its_period():
    clock = fresh()
    calls = []
    machine.Timer(0).init(mode=machine.Timer.ONE_SHOT, period=5000, callback=calls.append)
    clock.sleep_ms(4000)
    assert calls == []
    clock.sleep_ms(1500)
    clock.sleep_ms(10000)
    assert len(calls) == 1


def test_periodic_repeats_and_deinit_stops_it():
    clock = fresh()
    calls = []
    t = machine.Timer(1, mode=machine.Timer.PERIODIC, period=1000, callback=calls.append)
    for _ in range(3):
        clock.sleep_ms(1000)
    assert len(calls) == 3
    t.deinit()
    clock.sleep_ms(5000)
    assert len(calls) == 3


def test_an_exception_is_dropped_but_a_reset_resets():
    clock = fresh()

    def broken(t):
        raise ValueError("bug in a callback")
    machine.Timer(0).init(mode=machine.Timer.ONE_SHOT, period=10, callback=broken)
    clock.sleep_ms(20)  # printed, not raised
    machine.Timer(0).init(mode=machine.Timer.ONE_SHOT, period=10, callback=lambda t: machine.reset())
    e = raises(machine.BoardReset, clock.sleep_ms, 20)
    assert e.cause == machine.HARD_RESET


def test_a_reset_stops_the_timers():
    clock = fresh()
    calls = []
    machine.Timer(0).init(mode=machine.Timer.ONE_SHOT, period=10, callback=calls.append)
    machine.board.after_reset(machine.SOFT_RESET)
    clock.sleep_ms(50)
    assert calls == []
