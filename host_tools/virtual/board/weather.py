# A plausible street-level weather curve for simulated sensors: a day/night temperature cycle,
# humidity moving against it, slow pressure fronts, and a per-node offset. Pure function of
# Unix time, so every run and every restart of a node agrees with itself.
import math


def environment(unix, seed=0):
    """(temp_c, pressure_pa, humidity_pct) at Unix time `unix` for node number `seed`."""
    day = unix / 86400.0
    phase = 2 * math.pi * (day - 0.375)          # warmest mid-afternoon, coldest before dawn
    offset = ((seed * 7919) % 100) / 50.0 - 1.0  # -1 .. +1 K between nodes
    wobble = math.sin(unix / 1700.0 + seed) * 0.3
    temp = 11.0 + 6.5 * math.sin(phase) + offset + wobble
    pressure = 101325.0 + 900.0 * math.sin(2 * math.pi * day / 4.3 + seed * 0.1)
    humidity = 68.0 - 22.0 * math.sin(phase) + math.sin(unix / 900.0 + seed) * 1.5
    return temp, pressure, max(5.0, min(99.0, humidity))
