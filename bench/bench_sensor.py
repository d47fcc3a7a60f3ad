# BME280 driver figures, measured on the MicroPython unix port against the simulator on the
# virtual board's I2C bus (the I2C stand-in charges 400 kHz bus time to the virtual clock).
#   sensor_ms_to_data_x1           virtual ms from the forced-mode trigger to the end of the
#                                  data burst, x1/x1/x1 (datasheet maximum conversion: 9.3 ms)
#   sensor_ms_read_x1              virtual ms of a whole read() (config check included)
#   sensor_heap_bytes_per_sample   heap allocated per steady-state read(), everything included
#   sensor_io_heap_bytes_per_sample   of that, the I/O path: trigger, wait, poll, burst read
# The unix port has 63-bit small ints; on the ESP32 (31-bit) compensation allocates more.
# CPython side: measure() runs this very file under MicroPython, which prints the figures.
import sys

SAMPLES = 200


class TimingBus:
    """machine.I2C with the virtual time of the trigger and of the end of the data burst."""

    def __init__(self, bus, clock):
        self.bus = bus
        self.clock = clock
        self.trigger_us = self.data_us = 0

    def readfrom_mem_into(self, addr, reg, buf):
        self.bus.readfrom_mem_into(addr, reg, buf)
        if reg == 0xF7:
            self.data_us = self.clock.now_us()

    def writeto_mem(self, addr, reg, buf):
        self.bus.writeto_mem(addr, reg, buf)
        if reg == 0xF4 and buf[0] & 3:
            self.trigger_us = self.clock.now_us()


def _mp_main():
    import gc
    import json

    import machine
    from bme280_sim import BME280Sim
    from laterne.bme280 import BME280

    board = machine.board
    clock = board.clock
    board.attach(0x76, BME280Sim(clock))
    bus = TimingBus(machine.I2C(0, freq=400000), clock)
    dev = BME280(bus, clock=clock)
    dev.init()
    dev.read()

    to_data = whole = 0
    for _ in range(SAMPLES):
        start = clock.now_us()
        dev.read()
        whole += clock.now_us() - start
        to_data += bus.data_us - bus.trigger_us

    dev.i2c = machine.I2C(0, freq=400000)  # heap figures without the timing wrapper
    measure = dev._measure
    read = dev.read
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(SAMPLES):
        read()
    total = gc.mem_alloc() - before
    gc.collect()
    before = gc.mem_alloc()
    for _ in range(SAMPLES):
        measure()
    io = gc.mem_alloc() - before
    gc.enable()
    print(json.dumps({
        "sensor_ms_to_data_x1": to_data / SAMPLES / 1000,
        "sensor_ms_read_x1": whole / SAMPLES / 1000,
        "sensor_heap_bytes_per_sample": total / SAMPLES,
        "sensor_io_heap_bytes_per_sample": io / SAMPLES,
    }))


def measure():
    import json
    import subprocess

    from host_tools.paths import micropython_env, micropython_exe

    proc = subprocess.run([micropython_exe(), "-X", "heapsize=4M", __file__],
                          env=micropython_env(), capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("bench_sensor on MicroPython failed:\n" + proc.stdout + proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__" and sys.implementation.name == "micropython":
    _mp_main()
