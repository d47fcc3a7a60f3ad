# RTC user memory stand-in for spool tests and benches (CPython and MicroPython): what was
# written is kept until lose() (a power-on). The firmware reaches the chip's through
# laterne.hw.platform.RtcRegion; on the virtual board, through the machine stand-in.


class RamRtc:
    def __init__(self):
        self.mem = b""

    def read(self):
        return self.mem

    def write(self, data):
        self.mem = bytes(data)

    def lose(self):
        self.mem = b""
