# `select` for a time-scaled virtual board: poll timeouts are given in virtual milliseconds
# (the firmware's clock) and waited for in host time divided by the scale, so a node whose
# clock runs 30x faster also waits for its sockets 30x shorter.
import select as _host


class _Poll:
    def __init__(self, scale):
        self._poll = _host.poll()
        self._scale = scale

    def register(self, obj, *mask):
        return self._poll.register(obj, *mask)

    def unregister(self, obj):
        return self._poll.unregister(obj)

    def modify(self, obj, mask):
        return self._poll.modify(obj, mask)

    def poll(self, timeout=-1):
        return self._poll.poll(self._host_ms(timeout))

    def ipoll(self, timeout=-1, flags=0):
        return self._poll.ipoll(self._host_ms(timeout), flags)

    def _host_ms(self, timeout):
        if timeout is None or timeout <= 0:
            return timeout
        return max(1, int(timeout / self._scale))


class ScaledSelect:
    POLLIN = _host.POLLIN
    POLLOUT = _host.POLLOUT
    POLLERR = _host.POLLERR
    POLLHUP = _host.POLLHUP

    def __init__(self, scale):
        self.scale = scale

    def poll(self):
        return _Poll(self.scale)
