# Reconnect delays: exponential backoff with full jitter. Each attempt waits a uniformly random
# time in [0, min(max_s, base_s * 2**n)], so a fleet that lost its broker together spreads its
# reconnects out instead of coming back in lock-step. `rand` returns a float in [0, 1) and is
# seeded per node (unique id), never shared.


class Backoff:
    def __init__(self, base_s, max_s, rand):
        if base_s <= 0 or max_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= max_s")
        self.base_s = base_s
        self.max_s = max_s
        self.rand = rand
        self.attempt = 0

    def ceiling(self):
        """The upper bound of the next delay."""
        # doubling stops once it passes max_s: no huge ints after many failures
        cap = self.base_s
        for _ in range(self.attempt):
            cap *= 2
            if cap >= self.max_s:
                return self.max_s
        return min(cap, self.max_s)

    def next_delay(self):
        """Seconds to wait before the next attempt (a float; 0 is possible)."""
        cap = self.ceiling()
        self.attempt += 1
        r = self.rand()
        if not 0 <= r < 1:
            r = 0.5  # a broken random source must not produce a negative or huge wait
        return cap * r

    def reset(self):
        """The link came up: the next failure starts from base_s again."""
        self.attempt = 0
