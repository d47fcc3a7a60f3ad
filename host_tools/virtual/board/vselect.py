# `select` for a time-scaled virtual board: poll timeouts are given in virtual milliseconds
# (the firmware's clock) and waited for in host time divided by the scale, so a node whose
# clock runs 30x faster also waits for its sockets 30x shorter.
import select as _host
import time as _host_time


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


class _Select:
    """Stands in for the `select` module: its constants, and poll objects of a kind."""
    POLLIN = _host.POLLIN
    POLLOUT = _host.POLLOUT
    POLLERR = _host.POLLERR
    POLLHUP = _host.POLLHUP

    def __init__(self, kind, arg):
        self._kind = kind
        self._arg = arg

    def poll(self):
        return self._kind(self._arg)


def ScaledSelect(scale):
    return _Select(_Poll, scale)


# `select` and `socket` for a virtual board whose clock jumps (VClock(scale=None)) over idle
# waits: a poll that finds nothing to read lets the whole timeout pass in virtual time at once,
# unless a registered socket owes an answer (it sent bytes and none came back since: then the
# poll waits up to ANSWER_MS of real time for it) or received bytes in the last TAIL_MS (the
# rest of a burst, e.g. eight PUBACKs). A week of a node that mostly waits takes minutes.
ANSWER_MS = 500
TAIL_MS = 3


class _SkipSocket:
    """A socket that remembers whether an answer is owed and when bytes last arrived."""

    def __init__(self, sock):
        self.sock = sock
        self.owed = False
        self.rx_ms = _host_time.ticks_ms()

    def settimeout(self, seconds):
        self.sock.settimeout(seconds)

    def setblocking(self, flag):
        self.sock.setblocking(flag)

    def connect(self, addr):
        self.sock.connect(addr)

    def write(self, data):
        n = self.sock.write(data)
        if n:
            self.owed = True
        return n

    def send(self, data):
        self.owed = True
        return self.sock.send(data)

    def _got(self, n):
        if n:
            self.owed = False
            self.rx_ms = _host_time.ticks_ms()

    def readinto(self, buf):
        n = self.sock.readinto(buf)
        self._got(n)
        return n

    def recv(self, n):
        data = self.sock.recv(n)
        self._got(len(data))
        return data

    def close(self):
        self.sock.close()


class SkipSockets:
    """Stands in for the `socket` module: the sockets of `base` (the host's module, or another
    stand-in for it) wrapped so that SkipSelect knows when an answer is owed."""

    def __init__(self, base):
        self.AF_INET = base.AF_INET
        self.SOCK_STREAM = base.SOCK_STREAM
        self.SOCK_DGRAM = base.SOCK_DGRAM
        self.getaddrinfo = base.getaddrinfo
        self._base = base

    def socket(self, family=2, kind=1, proto=0):
        return _SkipSocket(self._base.socket(family, kind, proto))


class _SkipPoll:
    def __init__(self, clock):
        self._poll = _host.poll()
        self._clock = clock
        self._socks = []

    def register(self, obj, *mask):
        self._poll.register(obj.sock, *mask)
        if obj not in self._socks:
            self._socks.append(obj)

    def unregister(self, obj):
        self._poll.unregister(obj.sock)
        if obj in self._socks:
            self._socks.remove(obj)

    def modify(self, obj, mask):
        self._poll.modify(obj.sock, mask)

    def poll(self, timeout=-1):
        if timeout is None or timeout < 0:
            return self._poll.poll(-1)  # waiting for ever: only an event ends it
        ready = self._poll.poll(0)
        if ready or timeout == 0:
            return ready
        real = 0
        now = _host_time.ticks_ms()
        for s in self._socks:
            if s.owed:
                real = max(real, ANSWER_MS)
            else:
                real = max(real, TAIL_MS - _host_time.ticks_diff(now, s.rx_ms))
        real = min(real, timeout)
        if real > 0:
            ready = self._poll.poll(real)
            if ready:
                self._clock.advance_us(_host_time.ticks_diff(_host_time.ticks_ms(), now) * 1000)
                return ready
            for s in self._socks:
                s.owed = False  # no answer came: waiting more would only stall the simulation
        self._clock.advance_us(timeout * 1000)
        return []


def SkipSelect(clock):
    return _Select(_SkipPoll, clock)
