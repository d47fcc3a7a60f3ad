# BME280 (and, by configuration, BMP280) driver: register protocol, forced-mode sampling,
# the datasheet's integer compensation and run-time recovery. Pure logic: the I2C bus and
# the clock are passed in. Units, flags and rounding choices: docs/bme280.md.
from laterne import flags as F

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_REG_CAL1 = const(0x88)     # 26 bytes: T1..P9, reserved, H1
_REG_CHIP_ID = const(0xD0)
_REG_RESET = const(0xE0)
_REG_CAL2 = const(0xE1)     # 7 bytes: H2..H6
_REG_CTRL_HUM = const(0xF2)
_REG_STATUS = const(0xF3)
_REG_CTRL_MEAS = const(0xF4)
_REG_CONFIG = const(0xF5)
_REG_DATA = const(0xF7)     # 8 bytes: press(3) temp(3) hum(2)
_RESET_WORD = const(0xB6)
_MEASURING = const(0x08)
_IM_UPDATE = const(0x01)
_FORCED = const(0x01)
_SKIP20 = const(0x80000)    # a skipped temperature / pressure channel
_SKIP16 = const(0x8000)     # a skipped humidity channel

CHIP_BME280 = const(0x60)
CHIP_BMP280 = (0x58, 0x56, 0x57)
ADDRESSES = (0x76, 0x77)

# Register codes for the oversampling factors and IIR coefficients a user configures.
OVERSAMPLING = (0, 1, 2, 4, 8, 16)
IIR = (0, 2, 4, 8, 16)

_STARTUP_US = const(2000)        # datasheet start-up time after a soft reset
_IM_UPDATE_TIMEOUT_US = const(20000)
_POLL_US = const(250)
_POLL_SLACK_US = const(10000)    # measuring may stay set this much beyond the maximum
_REPROBE_AFTER = const(2)        # consecutive I2C errors before bus recovery and re-probe

# Plausible outdoor range of the reported values (wire units); outside: IMPLAUSIBLE.
T_RANGE = (-4500, 7000)          # 0.01 degC
P_RANGE = (50000, 110000)        # Pa (street level from the Dead Sea to La Paz)
H_MAX_Q10 = const(102400)        # 100 %RH in %RH/1024: the datasheet clamp


class SensorError(Exception):
    state = "error"


class SensorMissing(SensorError):
    state = "missing"


class WrongChip(SensorError):
    state = "wrong_chip"

    def __init__(self, message, chip_id):
        super().__init__(message)
        self.chip_id = chip_id


class SensorTimeout(SensorError):
    state = "timeout"


# -- calibration and compensation (datasheet BST-BME280-DS002, section 4.2.3) -----------------

def _u16(b, i):
    return b[i] | (b[i + 1] << 8)


def _s16(b, i):
    v = b[i] | (b[i + 1] << 8)
    return v - 0x10000 if v & 0x8000 else v


def _s8(v):
    return v - 0x100 if v & 0x80 else v


def parse_calibration(b88, be1):
    """(T1, T2, T3, P1..P9, H1..H6) from the 26 bytes at 0x88 and the 7 bytes at 0xE1."""
    if len(b88) < 26 or len(be1) < 7:
        raise ValueError("calibration needs 26 bytes from 0x88 and 7 from 0xE1")
    cal = [_u16(b88, 0), _s16(b88, 2), _s16(b88, 4), _u16(b88, 6)]
    for i in range(8, 24, 2):
        cal.append(_s16(b88, i))
    e4, e5, e6 = be1[3], be1[4], be1[5]
    cal.extend((b88[25], _s16(be1, 0), be1[2],
                _s8(e4) * 16 + (e5 & 0x0F),     # H4: signed 12 bit, E4 holds bits 11..4
                _s8(e6) * 16 + (e5 >> 4),       # H5: signed 12 bit, E6 holds bits 11..4
                _s8(be1[6])))
    return tuple(cal)


# The datasheet code is C on int32/int64. Python integers do not overflow, so each value is
# wrapped to its C type where the result is observed (before a right shift, a division, a
# comparison, a return); +, - and * commute with the wrap. Fast path: nothing to wrap.
def _s32(x):
    if -0x80000000 <= x <= 0x7FFFFFFF:
        return x
    x &= 0xFFFFFFFF
    return x - 0x100000000 if x & 0x80000000 else x


def _s64(x):
    if -0x8000000000000000 <= x <= 0x7FFFFFFFFFFFFFFF:
        return x
    x &= 0xFFFFFFFFFFFFFFFF
    return x - 0x10000000000000000 if x & 0x8000000000000000 else x


def _cdiv(a, b):
    """C99 division: truncates toward zero (Python's // floors)."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def t_fine(cal, adc_t):
    """The datasheet's fine temperature (int32) from the 20-bit raw value."""
    t1 = cal[0]
    v1 = _s32(((adc_t >> 3) - (t1 << 1)) * cal[1]) >> 11
    d = (adc_t >> 4) - t1
    v2 = _s32((_s32(d * d) >> 12) * cal[2]) >> 14
    return _s32(v1 + v2)


def temperature(tf):
    """0.01 degC from t_fine."""
    return _s32(tf * 5 + 128) >> 8


def pressure(cal, tf, adc_p):
    """Pa/256 (Q24.8, uint32) from the datasheet's 64-bit formula; 0 when P1 makes it undefined."""
    v1 = tf - 128000
    v2 = _s64(v1 * v1 * cal[8] + ((v1 * cal[7]) << 17) + (cal[6] << 35))
    v1 = _s64((_s64(v1 * v1 * cal[5]) >> 8) + ((v1 * cal[4]) << 12))
    v1 = _s64(((1 << 47) + v1) * cal[3]) >> 33
    if v1 == 0:
        return 0
    p = 1048576 - adc_p
    p = _s64(_cdiv(_s64(((p << 31) - v2) * 3125), v1))
    v1 = _s64(cal[11] * (p >> 13) * (p >> 13)) >> 25
    v2 = _s64(cal[10] * p) >> 19
    return ((_s64(p + v1 + v2) >> 8) + (cal[9] << 4)) & 0xFFFFFFFF


def humidity(cal, tf, adc_h):
    """%RH/1024 (Q22.10, 0..102400) from the datasheet's int32 formula."""
    h1, h2, h3, h4, h5, h6 = cal[12], cal[13], cal[14], cal[15], cal[16], cal[17]
    v = _s32(tf - 76800)
    a = _s32((adc_h << 14) - (h4 << 20) - h5 * v + 16384) >> 15
    b = _s32(v * h6) >> 10
    c = (_s32(v * h3) >> 11) + 32768
    b = _s32(b * c) >> 10
    b = _s32((b + 2097152) * h2 + 8192) >> 14
    v = _s32(a * b)
    a = _s32((v >> 15) * (v >> 15)) >> 7
    v = _s32(v - (_s32(a * h1) >> 4))
    if v < 0:
        v = 0
    elif v > 419430400:
        v = 419430400
    return v >> 12


def compensate(cal, adc_t, adc_p, adc_h):
    """(T 0.01 degC, P Pa/256, H %RH/1024): the datasheet integer reference, bit for bit."""
    tf = t_fine(cal, adc_t)
    return temperature(tf), pressure(cal, tf, adc_p), humidity(cal, tf, adc_h)


def max_measure_us(os_t, os_p, os_h):
    """Datasheet maximum measurement time (appendix 9.1) for oversampling factors."""
    us = 1250 + 2300 * os_t
    if os_p:
        us += 2300 * os_p + 575
    if os_h:
        us += 2300 * os_h + 575
    return us


def _code(value, allowed, what):
    for i in range(len(allowed)):
        if allowed[i] == value:
            return i
    raise ValueError("%s must be one of %s, not %r" % (what, allowed, value))


# -- the driver ---------------------------------------------------------------------------------

class BME280:
    """A BME280 on an I2C bus, sampled in forced mode. read() -> (t, p, h, flags)."""

    def __init__(self, i2c, address=None, clock=None, osrs_t=1, osrs_p=1, osrs_h=1, iir=0,
                 temp_offset=0, humidity=True):
        if address is not None and address not in ADDRESSES:
            raise ValueError("address must be 0x76, 0x77 or None (auto), not %r" % (address,))
        if clock is None:
            import time as clock
            if not hasattr(clock, "ticks_us"):
                raise ValueError("pass clock= (MicroPython time API) outside MicroPython")
        self.i2c = i2c
        self.clock = clock
        self.humidity = humidity
        self._fixed_address = address
        self.address = address
        self.chip_id = None
        self.cal = None
        self.state = "error"      # until init() succeeds
        self.errors = 0
        self.reinits = 0
        self.last_error = None
        self._has_h = False
        self._ready = False
        self._dirty = False
        self._inited_once = False
        self._streak = 0
        self._b1 = bytearray(1)
        self._w1 = bytearray(1)
        self._b4 = bytearray(4)
        self._b8 = bytearray(8)
        self.os_t = self.os_p = self.os_h = 1
        self.iir = self.temp_offset = 0
        self.configure({"osrs_t": osrs_t, "osrs_p": osrs_p, "osrs_h": osrs_h, "iir": iir,
                        "temp_offset_centi": temp_offset})

    # -- configuration --------------------------------------------------------------------
    def configure(self, scfg):
        """Apply sensor settings (config keys osrs_t/p/h, iir, temp_offset_centi); the
        registers are written before the next sample."""
        os_t = scfg.get("osrs_t", self.os_t)
        os_p = scfg.get("osrs_p", self.os_p)
        os_h = scfg.get("osrs_h", self.os_h)
        iir = scfg.get("iir", self.iir)
        offset = scfg.get("temp_offset_centi", self.temp_offset)
        ct = _code(os_t, OVERSAMPLING, "osrs_t")
        cp = _code(os_p, OVERSAMPLING, "osrs_p")
        ch = _code(os_h, OVERSAMPLING, "osrs_h")
        ci = _code(iir, IIR, "iir")
        if not isinstance(offset, int):
            raise ValueError("temp_offset must be an int in 0.01 degC, not %r" % (offset,))
        self.os_t, self.os_p, self.os_h, self.iir, self.temp_offset = os_t, os_p, os_h, iir, offset
        self._ch = ch
        self._meas = (ct << 5) | (cp << 2)
        self._config = ci << 2
        self._set_wait()
        self._dirty = True

    def _set_wait(self):
        # before the probe a BME280 is assumed; a BMP280 has no humidity conversion
        with_h = self.humidity and (self._has_h or self.chip_id is None)
        self.wait_us = max_measure_us(self.os_t, self.os_p, self.os_h if with_h else 0)

    # -- bus helpers (preallocated buffers, positional arguments: no heap use) ---------------
    def _read_reg(self, reg):
        self.i2c.readfrom_mem_into(self.address, reg, self._b1)
        return self._b1[0]

    def _write_reg(self, reg, value):
        self._w1[0] = value
        self.i2c.writeto_mem(self.address, reg, self._w1)

    def _sleep_us(self, us):
        if us >= 1000:
            self.clock.sleep_ms(us // 1000)
            us %= 1000
        if us:
            self.clock.sleep_us(us)

    # -- init -------------------------------------------------------------------------------
    def init(self):
        """Probe, soft reset, read calibration, write the configuration. Raises SensorError."""
        try:
            self._init()
        except SensorError as e:
            self._fault(e)
            raise
        except OSError as e:
            err = SensorError("I2C error during init at 0x%02x: %s" % (self.address or 0, e))
            self._fault(err)
            raise err

    def _init(self):
        self._ready = False
        self._probe()
        self._write_reg(_REG_RESET, _RESET_WORD)
        self._sleep_us(_STARTUP_US)
        clock = self.clock
        start = clock.ticks_us()
        # Calibration read while the NVM copy runs comes back as zeros (seen in the field).
        while self._read_reg(_REG_STATUS) & _IM_UPDATE:
            if clock.ticks_diff(clock.ticks_us(), start) > _IM_UPDATE_TIMEOUT_US:
                raise SensorTimeout("im_update still set %d ms after soft reset"
                                    % (_IM_UPDATE_TIMEOUT_US // 1000))
            self._sleep_us(_POLL_US)
        b88 = bytearray(26)
        be1 = bytearray(7)
        self.i2c.readfrom_mem_into(self.address, _REG_CAL1, b88)
        if self._has_h:
            self.i2c.readfrom_mem_into(self.address, _REG_CAL2, be1)
        cal = parse_calibration(b88, be1)
        if cal[0] == 0 or cal[3] == 0:
            raise SensorError("calibration reads T1=%d P1=%d: NVM not loaded or chip damaged"
                              % (cal[0], cal[3]))
        self.cal = cal
        self._write_config()
        self._set_wait()
        self._ready = True
        self._inited_once = True
        self.state = "ok"

    def _probe(self):
        wrong = None
        addrs = (self._fixed_address,) if self._fixed_address else ADDRESSES
        for addr in addrs:
            try:
                self.i2c.readfrom_mem_into(addr, _REG_CHIP_ID, self._b1)
            except OSError:
                continue
            chip = self._b1[0]
            if chip == CHIP_BME280 or (not self.humidity and chip in CHIP_BMP280):
                self.address, self.chip_id = addr, chip
                self._has_h = chip == CHIP_BME280
                return
            wrong = wrong or (addr, chip)
        if wrong is None:
            where = " or ".join("0x%02x" % a for a in addrs)
            raise SensorMissing("no sensor answers at %s: check wiring, power and address" % where)
        addr, chip = wrong
        self.address, self.chip_id = addr, chip
        if chip in CHIP_BMP280:
            msg = ("chip id 0x%02x: this is a BMP280, not a BME280 (no humidity); "
                   "configure sensor model bmp280 to use it" % chip)
        elif self.humidity:
            msg = "chip id 0x%02x: not a BME280 (expected 0x60) at 0x%02x" % (chip, addr)
        else:
            msg = "chip id 0x%02x: neither a BME280 nor a BMP280 at 0x%02x" % (chip, addr)
        raise WrongChip(msg, chip)

    def _write_config(self):
        # ctrl_hum first: it takes effect with the following ctrl_meas write. config is
        # written explicitly because the chip keeps it across an MCU-only reset.
        if self._has_h:
            self._write_reg(_REG_CTRL_HUM, self._ch if self.humidity else 0)
        self._write_reg(_REG_CTRL_MEAS, self._meas)
        self._write_reg(_REG_CONFIG, self._config)
        self._dirty = False

    def _config_intact(self):
        """ctrl_hum, status, ctrl_meas, config read back (one transaction) match the setup."""
        b = self._b4
        self.i2c.readfrom_mem_into(self.address, _REG_CTRL_HUM, b)
        if self._has_h and (b[0] & 0x07) != (self._ch if self.humidity else 0):
            return False
        return (b[2] & 0xFF) == self._meas and (b[3] & 0x1D) == self._config

    # -- sampling ---------------------------------------------------------------------------
    def read(self):
        """One fresh reading (t 0.01 degC, p Pa, h 0.01 %RH, flags) or SensorError."""
        err = None
        for _ in range(3):  # retried; after repeated I2C errors: bus recovery and re-probe
            try:
                result = self._attempt()
                self._streak = 0
                self.state = "ok"
                return result
            except (WrongChip, SensorMissing) as e:
                self._fault(e)
                raise
            except SensorError as e:
                self._fault(e)
                self._ready = False  # a soft reset may free a stuck conversion
                err = e
            except OSError as e:
                err = SensorError("I2C error at 0x%02x: errno %s"
                                  % (self.address or 0, e.args[0] if e.args else e))
                self._fault(err)
                self._streak += 1
                if self._streak >= _REPROBE_AFTER:
                    self._ready = False
                    recover = getattr(self.i2c, "recover", None)
                    if recover is not None:
                        try:
                            recover()
                        except Exception as e2:  # recovery is best effort
                            self.last_error = "bus recovery failed: %s" % e2
        raise err

    def _attempt(self):
        flags = 0
        if not self._ready:
            again = self._inited_once
            self._init()
            if again:
                flags = F.REINIT
                self.reinits += 1
        elif self._dirty:
            self._write_config()
        elif not self._config_intact():
            self.last_error = "configuration lost (registers read back wrong): re-initialised"
            self.reinits += 1
            flags = F.REINIT
            self._init()
        self._measure()
        return self._convert(flags)

    def _measure(self):
        clock = self.clock
        self._write_reg(_REG_CTRL_MEAS, self._meas | _FORCED)
        start = clock.ticks_us()
        # measuring may still read 0 right after the trigger: wait the maximum first.
        self._sleep_us(self.wait_us)
        limit = self.wait_us + _POLL_SLACK_US
        while self._read_reg(_REG_STATUS) & _MEASURING:
            if clock.ticks_diff(clock.ticks_us(), start) > limit:
                raise SensorTimeout("measuring bit still set %d ms after the trigger"
                                    % (limit // 1000))
            self._sleep_us(_POLL_US)
        self.i2c.readfrom_mem_into(self.address, _REG_DATA, self._b8)

    def raw(self):
        """(adc_t, adc_p, adc_h) of the last burst read."""
        b = self._b8
        return ((b[3] << 12) | (b[4] << 4) | (b[5] >> 4),
                (b[0] << 12) | (b[1] << 4) | (b[2] >> 4),
                (b[6] << 8) | b[7])

    def _convert(self, flags):
        b = self._b8  # decoded inline as in raw(): no result tuple per sample
        adc_p = (b[0] << 12) | (b[1] << 4) | (b[2] >> 4)
        adc_t = (b[3] << 12) | (b[4] << 4) | (b[5] >> 4)
        adc_h = (b[6] << 8) | b[7]
        cal = self.cal
        p = h = 0
        if adc_t == _SKIP20:
            # pressure and humidity compensation need t_fine: without it they are unknown too
            flags |= F.T_SKIPPED | F.P_SKIPPED | F.H_SKIPPED
            return 0, 0, 0, flags
        tf = t_fine(cal, adc_t)
        t = temperature(tf) + self.temp_offset
        if t < T_RANGE[0] or t > T_RANGE[1]:
            flags |= F.IMPLAUSIBLE
        if adc_p == _SKIP20:
            flags |= F.P_SKIPPED
        else:
            q = pressure(cal, tf, adc_p)
            p = (q + 128) >> 8
            if p < P_RANGE[0] or p > P_RANGE[1]:
                flags |= F.IMPLAUSIBLE
        if not (self.humidity and self._has_h) or adc_h == _SKIP16:
            flags |= F.H_SKIPPED
        else:
            q = humidity(cal, tf, adc_h)
            h = (q * 100 + 512) >> 10
            if q == 0 or q == H_MAX_Q10:
                flags |= F.CLAMPED
            if q == 0:
                flags |= F.IMPLAUSIBLE
            if h >= 10000:
                flags |= F.SATURATED
        return t, p, h, flags

    def _fault(self, e):
        self.errors += 1
        self.state = e.state
        self.last_error = str(e)
