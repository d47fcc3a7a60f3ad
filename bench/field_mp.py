# Board side of bench_field.py: micropython field_mp.py FIRMWARE_DIR TMP_DIR; prints JSON.
import gc
import json
import os
import sys

sys.path.insert(0, sys.argv[1] + "/lib")
import bme280_sim  # noqa: E402
import machine  # noqa: E402
import network  # noqa: E402
import vclock  # noqa: E402

gc.collect()
before = gc.mem_alloc()
from laterne import config, node  # noqa: E402
from laterne.hw import platform  # noqa: E402
gc.collect()
imported = gc.mem_alloc() - before

root = sys.argv[2] + "/fs/"
os.mkdir(root[:-1])
clock = vclock.VClock()
machine.board.power_on(clock=clock)
network.env.clock = clock
with open(root + "board.json", "w") as f:
    f.write('{"i2c": {"id": 0, "sda": 21, "scl": 22, "freq": 400000}, "bme280_address": 118}')
machine.board.attach(0x76, bme280_sim.BME280Sim(clock))
hw = platform.Platform(root, clock)
gc.collect()
gc.disable()
a = gc.mem_alloc()
hw.boot_guard(3, 600, 3600)
guard = gc.mem_alloc() - a
gc.enable()

cfg, _ = config.validate({"node_id": "bench", "wifi": [{"ssid": "x", "password": ""}],
                          "broker": {"host": "127.0.0.1"}, "spool_bytes": 65536})
n = node.Node(hw, node.safe_mode_config(cfg), "config", root, log=lambda m: None)
passes = [0]
windows = []
real_sleep = clock.sleep_ms


def sleep_ms(ms):  # the loop's sleep: measure what one pass allocates up to the next
    gc.enable()
    if passes[0]:
        windows.append(gc.mem_alloc() - passes[1])
    real_sleep(ms)
    if clock.now_us() > 86400 * 1000000:
        raise StopIteration
    gc.collect()
    gc.disable()
    passes[0] += 1
    passes[1:] = [gc.mem_alloc()]


passes.append(0)
clock.sleep_ms = sleep_ms
try:
    n.run()
except StopIteration:
    pass
gc.enable()
windows.sort()
print(json.dumps({"import": imported, "guard": guard, "idle": windows[len(windows) // 2],
                  "passes": passes[0]}))
