# Values the city's portal shows citizens, derived on the host from stored raw readings (never
# on the node): dew point (Magnus formula over water, Sonntag/WMO constants), the NWS heat
# index (Rothfusz regression with its two adjustments, Steadman's simple form below 80 °F),
# Humidex (Masterton & Richardson 1979) and the 3-hour pressure tendency (AMS Glossary: the net
# change over the three hours before the reading). None in, None out.
import bisect
import math

MAGNUS_B, MAGNUS_C = 17.62, 243.12      # over water, -45..60 °C
TENDENCY_S = 3 * 3600
TENDENCY_SLACK_S = 600                  # the reading 3 h earlier may be this far off


def c_to_f(c):
    return c * 9.0 / 5.0 + 32.0


def f_to_c(f):
    return (f - 32.0) * 5.0 / 9.0


def dew_point_c(t_c, rh):
    """Dew point in °C from temperature (°C) and relative humidity (%)."""
    if t_c is None or rh is None or rh <= 0:
        return None
    gamma = math.log(min(rh, 100.0) / 100.0) + MAGNUS_B * t_c / (MAGNUS_C + t_c)
    return MAGNUS_C * gamma / (MAGNUS_B - gamma)


def heat_index_f(t_f, rh):
    """NWS heat index in °F from temperature (°F) and relative humidity (%)."""
    if t_f is None or rh is None:
        return None
    simple = 0.5 * (t_f + 61.0 + (t_f - 68.0) * 1.2 + rh * 0.094)
    if (simple + t_f) / 2.0 < 80.0:
        return simple
    t, r = t_f, rh
    hi = (-42.379 + 2.04901523 * t + 10.14333127 * r - 0.22475541 * t * r
          - 0.00683783 * t * t - 0.05481717 * r * r + 0.00122874 * t * t * r
          + 0.00085282 * t * r * r - 0.00000199 * t * t * r * r)
    if r < 13.0 and 80.0 <= t <= 112.0:
        hi -= (13.0 - r) / 4.0 * math.sqrt((17.0 - abs(t - 95.0)) / 17.0)
    elif r > 85.0 and 80.0 <= t <= 87.0:
        hi += (r - 85.0) / 10.0 * (87.0 - t) / 5.0
    return hi


def heat_index_c(t_c, rh):
    if t_c is None or rh is None:
        return None
    return f_to_c(heat_index_f(c_to_f(t_c), rh))


def humidex(t_c, dew_c):
    """Humidex from temperature and dew point in °C."""
    if t_c is None or dew_c is None:
        return None
    e = 6.11 * math.exp(5417.7530 * (1.0 / 273.16 - 1.0 / (273.15 + dew_c)))
    return t_c + 0.5555 * (e - 10.0)


class Tendency:
    """3-hour pressure tendency of one node's readings, fed in time order: the pressure now
    minus the pressure of the reading closest to three hours earlier (within the slack)."""

    def __init__(self):
        self.times = []
        self.pressures = []

    def add(self, ts, p_hpa):
        """Returns the tendency in hPa, or None when there is no reading 3 h before."""
        if ts is None or p_hpa is None:
            return None
        if self.times and ts < self.times[-1]:
            self.times, self.pressures = [], []  # out of order: start over
        target = ts - TENDENCY_S
        drop = bisect.bisect_left(self.times, target - TENDENCY_SLACK_S)
        if drop:
            del self.times[:drop], self.pressures[:drop]
        best = None
        i = bisect.bisect_left(self.times, target)
        for j in (i - 1, i):
            if 0 <= j < len(self.times) and abs(self.times[j] - target) <= TENDENCY_SLACK_S:
                if best is None or abs(self.times[j] - target) < abs(self.times[best] - target):
                    best = j
        result = None if best is None else p_hpa - self.pressures[best]
        self.times.append(ts)
        self.pressures.append(p_hpa)
        return result
