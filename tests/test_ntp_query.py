# The core SNTP client against a UDP responder on loopback, on CPython and MicroPython.
import socket
import struct
import subprocess
import threading

import pytest

import vclock
from host_tools.paths import micropython_env, micropython_exe
from laterne import timebase

NTP_DELTA = 2208988800


class Responder(threading.Thread):
    """Answers each request with `unix` as transmit time; `mode` bends the answer."""

    def __init__(self, unix, mode="ok"):
        threading.Thread.__init__(self, daemon=True)
        self.unix, self.mode = unix, mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.start()

    def run(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(512)
            except OSError:
                return
            secs = (self.unix + NTP_DELTA) & 0xFFFFFFFF  # era 1 wraps past 2036
            origin = data[40:48]
            stratum = 2
            if self.mode == "garbage":
                self.sock.sendto(b"\x1c\x02", addr)
                continue
            if self.mode == "stranger":
                origin = b"\x00" * 8  # not an answer to this request
            if self.mode == "kiss":
                stratum = 0
            reply = struct.pack("!BBBb11I", 0x24, stratum, 6, -20, 0, 0, 0, secs, 0,
                                *struct.unpack("!II", origin), secs, 0, secs, 0x80000000)
            self.sock.sendto(reply, addr)

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("unix", [1700000000, 2085978496 + 1000])  # now, and past the 2036 wrap
def test_ntp_query_answers_unix_seconds(unix):
    r = Responder(unix)
    try:
        got = timebase.ntp_query("127.0.0.1", vclock.VClock(scale=1), 2000, r.port)
    finally:
        r.close()
    assert got == unix + 1  # the .5 s fraction rounds up


@pytest.mark.parametrize("mode,words", [("stranger", "no answer"), ("garbage", "no answer"),
                                         ("kiss", "not synchronised")])
def test_ntp_query_refuses_bad_answers(mode, words):
    r = Responder(1700000000, mode)
    try:
        with pytest.raises(OSError, match=words):
            timebase.ntp_query("127.0.0.1", vclock.VClock(scale=1), 600, r.port)
    finally:
        r.close()


def test_ntp_query_silent_server_times_out():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        with pytest.raises(OSError):
            timebase.ntp_query("127.0.0.1", vclock.VClock(scale=1), 400, s.getsockname()[1])
    finally:
        s.close()


def test_ntp_query_on_micropython():
    r = Responder(1750000000)
    try:
        code = ("import time\nfrom laterne import timebase\n"
                "print('UNIX', timebase.ntp_query('127.0.0.1', time, 2000, %d))" % r.port)
        proc = subprocess.run([micropython_exe(), "-c", code], env=micropython_env(),
                              capture_output=True, text=True, timeout=30)
    finally:
        r.close()
    assert "UNIX 1750000001" in proc.stdout, proc.stdout + proc.stderr
