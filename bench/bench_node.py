# Node figures against mosquitto on loopback, all measured in this run:
# - drain_readings_per_s / wire_bytes_per_reading: a virtual node with 10,080 spooled readings
#   (a week at one per minute) delivers them all, acknowledged, through a byte-counting proxy;
# - the same two for a naive baseline (one reading per QoS 1 message, stop-and-wait) run with
#   the same MQTT client on MicroPython, and the ratios;
# - node_heap_peak_bytes: peak live MicroPython heap of a node over a simulated day.
import subprocess
import sys
import tempfile
from pathlib import Path

from host_tools import paths
from host_tools.broker import Broker

sys.path.insert(0, str(paths.REPO / "tests" / "kit"))
from virtual_fleet import Collector, Fleet  # noqa: E402
from mqtt_helpers import Proxy  # noqa: E402

BACKLOG = 10080
NAIVE_N = 500

NAIVE = r"""
import sys, time
from laterne import mqttclient, net
port, n = int(sys.argv[1]), int(sys.argv[2])
c = mqttclient.MQTTClient("naive", lambda: net.open_socket("127.0.0.1", port, 5000), time,
                          keepalive_s=60, max_inflight=1)
c.connect()
t0 = time.ticks_ms()
for seq in range(1, n + 1):
    msg = ('{"v":1,"node":"naive","cols":["seq","ts","t","p","h","flags"],'
           '"rows":[[%d,%d,1234,101325,5000,0]]}' % (seq, 1700000000 + 60 * seq))
    pid = c.publish("laterne/naive/readings", msg, 1)
    while pid not in c.acked():
        c.poll(1000)
print("ms", time.ticks_diff(time.ticks_ms(), t0))
c.disconnect()
"""


def drain(broker):
    proxy = Proxy(broker.port)
    collector = Collector(broker.port)
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp) / "state", "mqtt://127.0.0.1:%d" % proxy.port, 1,
                      ["--preload", str(BACKLOG), "--exit-when-drained",
                       "--upload-interval", "3600", "--sample-interval", "3600"])
        try:
            collector.wait(lambda: len(collector.seqs("lamp-001")) >= BACKLOG, 600, "backlog")
            first, last = collector.arrivals["lamp-001"]
            fleet.proc.wait(120)  # drained means acknowledged: the node said spool_depth 0
            seconds = last - first
            total = proxy.bytes
        finally:
            fleet.stop()
            collector.stop()
            proxy.close()
    return BACKLOG / seconds, total / BACKLOG


def naive(broker):
    proxy = Proxy(broker.port)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(NAIVE)
        out = subprocess.run([paths.micropython_exe(), f.name, str(proxy.port), str(NAIVE_N)],
                             env=paths.micropython_env(), capture_output=True, text=True,
                             timeout=600, check=True).stdout
        ms = int(out.split("ms")[1])
        return NAIVE_N / (ms / 1000), proxy.bytes / NAIVE_N
    finally:
        proxy.close()


def heap_over_a_day(broker):
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp) / "state", broker.url, 1,
                      ["--time-scale", "1440", "--duration", "60"])
        fleet.proc.wait(180)
        fleet.stop()
        return int((Path(tmp) / "state" / "lamp-001" / "heap_peak").read_text())


def measure():
    with Broker(kind="mosquitto") as broker:
        rate, wire = drain(broker)
        naive_rate, naive_wire = naive(broker)
        heap = heap_over_a_day(broker)
    return {
        "drain_readings_per_s": round(rate, 1),
        "wire_bytes_per_reading": round(wire, 1),
        "naive_drain_readings_per_s": round(naive_rate, 1),
        "naive_wire_bytes_per_reading": round(naive_wire, 1),
        "drain_speedup_vs_naive": round(rate / naive_rate, 1),
        "wire_bytes_ratio_naive_to_batched": round(naive_wire / wire, 1),
        "node_heap_peak_bytes": heap,
    }
