# Register-level BME280 simulator for the virtual board (MicroPython and CPython).
# Models what a driver can observe over I2C: chip id, soft reset with its NVM copy
# (im_update), calibration, ctrl_hum latched by the next ctrl_meas write, sleep / forced /
# normal mode, the measuring bit for the datasheet's typical conversion time on the board
# clock, shadowed data registers and the IIR filter, plus fault injection. The data registers
# come from inverting the datasheet's floating-point compensation (section 8.1, independent
# of the driver's integer code) for the environment set with set_environment(), then
# polished within a few LSBs against the integer reference so the reported values land
# within 0.01 degC / 1 Pa / 0.01 %RH of it.
import errno

# Datasheet temperature/pressure example calibration (T1..P9) and a typical humidity set.
DEFAULT_CAL = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
               75, 362, 0, 313, 50, 30)

_STANDBY_US = (500, 62500, 125000, 250000, 500000, 1000000, 10000, 20000)
_IIR = (1, 2, 4, 8, 16, 16, 16, 16)
_OS = (0, 1, 2, 4, 8, 16, 16, 16)
_SKIP20 = 0x80000
_SKIP16 = 0x8000


def encode_calibration(cal):
    """The 26 bytes at 0x88 and the 7 bytes at 0xE1 holding calibration `cal` (18 ints)."""
    b88 = bytearray(26)
    for i in range(12):
        v = cal[i] & 0xFFFF
        b88[2 * i] = v & 0xFF
        b88[2 * i + 1] = v >> 8
    b88[25] = cal[12] & 0xFF
    h2, h3, h4, h5, h6 = cal[13], cal[14], cal[15], cal[16], cal[17]
    be1 = bytearray((h2 & 0xFF, (h2 >> 8) & 0xFF, h3 & 0xFF, (h4 >> 4) & 0xFF,
                     (h4 & 0x0F) | ((h5 & 0x0F) << 4), (h5 >> 4) & 0xFF, h6 & 0xFF))
    return bytes(b88), bytes(be1)


# -- the datasheet's double-precision compensation, used forward to invert it ---------------
def _t_float(cal, adc_t):
    t1, t2, t3 = cal[0], cal[1], cal[2]
    a = (adc_t / 16384.0 - t1 / 1024.0) * t2
    b = adc_t / 131072.0 - t1 / 8192.0
    b = b * b * t3
    return a + b  # t_fine as a float; degC = t_fine / 5120


def _p_float(cal, tf, adc_p):
    v1 = tf / 2.0 - 64000.0
    v2 = v1 * v1 * cal[8] / 32768.0
    v2 = v2 + v1 * cal[7] * 2.0
    v2 = v2 / 4.0 + cal[6] * 65536.0
    v1 = (cal[5] * v1 * v1 / 524288.0 + cal[4] * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * cal[3]
    if v1 == 0.0:
        return 0.0
    p = 1048576.0 - adc_p
    p = (p - v2 / 4096.0) * 6250.0 / v1
    return p + (cal[11] * p * p / 2147483648.0 + p * cal[10] / 32768.0 + cal[9]) / 16.0


def _h_float(cal, tf, adc_h):
    h1, h2, h3, h4, h5, h6 = cal[12], cal[13], cal[14], cal[15], cal[16], cal[17]
    x = tf - 76800.0
    x = (adc_h - (h4 * 64.0 + h5 / 16384.0 * x)) * (
        h2 / 65536.0 * (1.0 + h6 / 67108864.0 * x * (1.0 + h3 / 67108864.0 * x)))
    return x * (1.0 - h1 * x / 524288.0)


def _search(f, target, hi):
    """The raw value in 0..hi whose f() is closest to target (f monotonic either way)."""
    lo = 0
    rising = f(hi) >= f(lo)
    a, b = lo, hi
    while b - a > 1:
        mid = (a + b) >> 1
        if (f(mid) < target) == rising:
            a = mid
        else:
            b = mid
    return a if abs(f(a) - target) <= abs(f(b) - target) else b


def _polish(f, target, start, hi, reach=8):
    """The raw value within `reach` of start whose integer result is closest to target."""
    best, err = start, abs(f(start) - target)
    for a in range(max(0, start - reach), min(hi, start + reach) + 1):
        e = abs(f(a) - target)
        if e < err:
            best, err = a, e
    return best


def _iir(prev, x, c):
    """One step of the IIR filter with coefficient c (the first sample passes through)."""
    return x if prev is None else (prev * (c - 1) + x) // c


class BME280Sim:
    """A BME280 behind an I2C address. Attach with machine.board.attach(0x76, sim)."""

    def __init__(self, clock=None, calibration=DEFAULT_CAL, chip_id=0x60):
        if clock is None:
            import vclock
            clock = vclock.VClock()
        self.clock = clock
        self.chip_id = chip_id
        self.reset_us = 2000          # NVM copy after reset (im_update set)
        self.status_lag_us = 100      # measuring reads 0 this long after a trigger
        self.extra_us = 0             # added to the typical conversion time
        # faults
        self.fault_nack = False       # every transaction NACKs (OSError ENODEV)
        self.nack_next = 0            # the next n transactions NACK
        self.fault_skip = ""          # channels reading as skipped: any of "t", "p", "h"
        self.fault_stuck_measuring = False
        self.fault_stuck_im_update = False
        self.measurements = 0         # conversions completed
        self.transactions = 0
        self.regs = bytearray(256)
        self._pointer = 0
        self.raw = (_SKIP20, _SKIP20, _SKIP16)
        self.environment = None
        self.set_calibration(calibration)
        self.brownout()
        self.set_environment(21.5, 101325.0, 45.0)

    # -- configuration of the simulated world -------------------------------------------------
    def set_calibration(self, cal):
        self.calibration = tuple(cal)
        b88, be1 = encode_calibration(cal)
        self.regs[0x88:0x88 + 26] = b88
        self.regs[0xE1:0xE1 + 7] = be1

    def set_environment(self, temp_c, pressure_pa, humidity_pct):
        """Raw values that the datasheet compensation turns into this environment."""
        try:  # the firmware's integer reference, used only to polish the last few LSBs
            from laterne import bme280 as _ref  # looked up here: the board holds no firmware
        except ImportError:
            _ref = None
        cal = self.calibration
        self.environment = (temp_c, pressure_pa, humidity_pct)
        adc_t = _search(lambda a: _t_float(cal, a) / 5120.0, temp_c, 0xFFFFF)
        tf = int(_t_float(cal, adc_t))
        if _ref is not None:
            adc_t = _polish(lambda a: _ref.temperature(_ref.t_fine(cal, a)),
                            temp_c * 100, adc_t, 0xFFFFF)
            tf = _ref.t_fine(cal, adc_t)
        adc_p = _search(lambda a: _p_float(cal, tf, a), pressure_pa, 0xFFFFF)
        adc_h = _search(lambda a: _h_float(cal, tf, a), humidity_pct, 0xFFFF)
        if _ref is not None:  # judged in the driver's wire units (Pa, 0.01 %RH), rounded
            adc_p = _polish(lambda a: (_ref.pressure(cal, tf, a) + 128) >> 8, pressure_pa,
                            adc_p, 0xFFFFF)
            adc_h = _polish(lambda a: (_ref.humidity(cal, tf, a) * 100 + 512) >> 10,
                            humidity_pct * 100, adc_h, 0xFFFF)
        self.raw = (adc_t, adc_p, adc_h)

    def now(self):
        c = self.clock
        return c.now_us() if hasattr(c, "now_us") else c.ticks_us()

    def brownout(self):
        """Power glitch: configuration and data registers back to reset values."""
        self._reset()

    def _reset(self):
        r = self.regs
        r[0xF2] = r[0xF4] = r[0xF5] = 0
        self._os_h = 0
        self._busy = False
        self._normal = False
        self._filt_t = self._filt_p = None
        self._im_until = self.now() + self.reset_us
        self._store(_SKIP20, _SKIP20, _SKIP16)

    # -- I2C device interface (called by machine.I2C) ------------------------------------
    def _transaction(self):
        self.transactions += 1
        if self.fault_nack or self.nack_next > 0:
            if self.nack_next > 0:
                self.nack_next -= 1
            raise OSError(errno.ENODEV)
        self._update()

    def readfrom_mem_into(self, reg, buf):
        self._transaction()
        for i in range(len(buf)):
            buf[i] = self._get((reg + i) & 0xFF)

    def writeto_mem(self, reg, data):
        # The BME280 has no auto-increment for writes: further bytes are (register, value).
        self._transaction()
        n = len(data)
        if n:
            self._set(reg, data[0])
        i = 1
        while i + 1 < n:
            self._set(data[i], data[i + 1])
            i += 2

    def readfrom_into(self, buf):
        self._transaction()
        for i in range(len(buf)):
            buf[i] = self._get((self._pointer + i) & 0xFF)

    def writeto(self, data):
        self._transaction()
        if len(data):
            self._pointer = data[0]
            if len(data) > 1:
                self.writeto_mem(data[0], memoryview(data)[1:])
                self.transactions -= 1

    # -- registers -------------------------------------------------------------------------
    def _get(self, reg):
        if reg == 0xD0:
            return self.chip_id
        if reg == 0xF3:
            return self.status()
        if reg == 0xE0:
            return 0
        if 0x88 <= reg <= 0xA1 or 0xE1 <= reg <= 0xF0:
            if self._im_update():
                return 0  # calibration read during the NVM copy: zeros, as seen in the field
            if reg >= 0xE1 and self.chip_id != 0x60:
                return 0
        if reg == 0xF2 and self.chip_id != 0x60:
            return 0
        return self.regs[reg]

    def _set(self, reg, value):
        value &= 0xFF
        if reg == 0xE0:
            if value == 0xB6:
                self._reset()
        elif reg == 0xF2:
            if self.chip_id == 0x60:
                self.regs[0xF2] = value & 0x07
        elif reg == 0xF4:
            self.regs[0xF4] = value
            self._os_h = _OS[self.regs[0xF2] & 0x07] if self.chip_id == 0x60 else 0
            mode = value & 0x03
            self._normal = mode == 0x03
            if mode == 0:
                self._busy = False
            elif not self._busy:
                self._start(self.now())
        elif reg == 0xF5:
            self.regs[0xF5] = value & 0xFD

    def _im_update(self):
        return self.fault_stuck_im_update or self.now() < self._im_until

    def status(self):
        now = self.now()
        s = 0x01 if self._im_update() else 0
        if self.fault_stuck_measuring or (self._busy and now >= self._start_at + self.status_lag_us):
            s |= 0x08
        return s

    def duration_us(self):
        """Typical conversion time (datasheet appendix 9.1) plus extra_us."""
        ctrl = self.regs[0xF4]
        os_t, os_p, os_h = _OS[ctrl >> 5], _OS[(ctrl >> 2) & 7], self._os_h
        us = 1000 + 2000 * os_t + self.extra_us
        if os_p:
            us += 2000 * os_p + 500
        if os_h:
            us += 2000 * os_h + 500
        return us

    def _start(self, now):
        self._busy = True
        self._start_at = now
        self._end_at = now + self.duration_us()

    def _update(self):
        """Complete the conversion in progress when its time has come (lazily, on access)."""
        if not self._busy or self.fault_stuck_measuring:
            return
        now = self.now()
        if now < self._end_at:
            return
        self._latch()
        if self._normal:
            tsb = _STANDBY_US[self.regs[0xF5] >> 5]
            period = self.duration_us() + tsb
            cycles = (now - self._end_at) // period  # further whole cycles: same environment
            if cycles:
                self._latch()  # the IIR filter steps once for these, not once per cycle
                self.measurements += cycles - 1
            self._start_at = self._end_at + cycles * period + tsb
            self._end_at = self._start_at + self.duration_us()
        else:
            self._busy = False
            self.regs[0xF4] &= 0xFC  # forced mode returns to sleep

    def _latch(self):
        self.measurements += 1
        ctrl = self.regs[0xF4]
        adc_t, adc_p, adc_h = self.raw
        skip = self.fault_skip
        c = _IIR[(self.regs[0xF5] >> 2) & 7]  # 1: filter off
        if ctrl >> 5 == 0 or "t" in skip:
            adc_t = _SKIP20
        elif c > 1:
            adc_t = self._filt_t = _iir(self._filt_t, adc_t, c)
        if (ctrl >> 2) & 7 == 0 or "p" in skip:
            adc_p = _SKIP20
        elif c > 1:
            adc_p = self._filt_p = _iir(self._filt_p, adc_p, c)
        if self._os_h == 0 or "h" in skip or self.chip_id != 0x60:
            adc_h = _SKIP16
        self._store(adc_t, adc_p, adc_h)

    def _store(self, adc_t, adc_p, adc_h):
        r = self.regs
        r[0xF7] = adc_p >> 12
        r[0xF8] = (adc_p >> 4) & 0xFF
        r[0xF9] = (adc_p & 0x0F) << 4
        r[0xFA] = adc_t >> 12
        r[0xFB] = (adc_t >> 4) & 0xFF
        r[0xFC] = (adc_t & 0x0F) << 4
        r[0xFD] = adc_h >> 8
        r[0xFE] = adc_h & 0xFF
