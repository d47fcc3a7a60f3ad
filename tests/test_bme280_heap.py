# The driver's I/O path (trigger, wait, poll, burst read) allocates nothing per sample on the
# MicroPython unix port; the whole read() allocates only a bounded amount (compensation's
# large integers and the result tuple). Measured by bench/bench_sensor.py's MicroPython run.
import importlib.util

from host_tools.paths import REPO

_spec = importlib.util.spec_from_file_location("bench_sensor", REPO / "bench" / "bench_sensor.py")
bench_sensor = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_sensor)


def test_io_path_allocates_nothing_on_micropython():
    figures = bench_sensor.measure()
    assert figures["sensor_io_heap_bytes_per_sample"] == 0
    assert 0 < figures["sensor_heap_bytes_per_sample"] < 1024
    # waits the 9.3 ms maximum in fine steps: no coarse sleeps on top of it
    assert 9.3 <= figures["sensor_ms_to_data_x1"] < 10.3
