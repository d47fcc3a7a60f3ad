# `socket` for the virtual board: the host's socket module, except that a name lookup takes
# `network.env.dns_ms` virtual milliseconds. On the ESP32 getaddrinfo blocks in lwIP (about 7 s
# per DNS server that does not answer) and no socket timeout bounds it (modsocket.c).
import socket as _host

import network


def getaddrinfo(host, port, *args):
    if network.env.dns_ms and network.env.clock is not None:
        network.env.clock.sleep_ms(network.env.dns_ms)  # a sleep runs the watchdog hook too
    return _host.getaddrinfo(host, port, *args)


def __getattr__(name):  # everything else is the host's
    return getattr(_host, name)
