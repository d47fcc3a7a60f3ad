# Reading flag bits: one definition for the driver, the spool and the payload; their names on
# the wire are in docs/mqtt.md.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

T_SKIPPED = const(0x001)      # temperature channel read 0x80000 (value is 0)
P_SKIPPED = const(0x002)      # pressure channel read 0x80000 (value is 0)
H_SKIPPED = const(0x004)      # humidity channel read 0x8000, or no humidity sensor (value is 0)
CLAMPED = const(0x008)        # a compensated value hit its datasheet limit and was clamped
IMPLAUSIBLE = const(0x010)    # a value is outside the plausible outdoor range
REINIT = const(0x020)         # the sensor was re-initialised just before this reading
TIME_RELATIVE = const(0x040)  # stored: ts is seconds since boot `boot`; on the wire: ts is null
TIME_FIXED = const(0x080)     # ts was reconstructed after the clock became known
SATURATED = const(0x100)      # humidity at 100 %RH (condensation, or a failing sensor)

# On the wire TIME_RELATIVE is published under this name: the time of the reading is unknown.
TIME_UNKNOWN = TIME_RELATIVE
