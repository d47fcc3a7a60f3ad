# The datasheet's integer compensation is C. This test compiles it (typed out below from
# BST-BME280-DS002 section 4.2.3, with -fwrapv so int32/int64 overflow wraps as on the ESP32)
# and checks laterne.bme280.compensate against it over hypothesis-generated calibrations and
# raw values. It complements the Python rendering in test_bme280_properties.py.
import ctypes
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from laterne import bme280

C_SOURCE = r"""
#include <stdint.h>
typedef int32_t S32; typedef uint32_t U32; typedef int64_t S64;

void comp(const S32 *c, S32 adc_T, S32 adc_P, S32 adc_H, S32 *out_T, U32 *out_P, U32 *out_H)
{
    S32 dig_T1 = c[0], dig_T2 = c[1], dig_T3 = c[2];
    S32 dig_P1 = c[3], dig_P2 = c[4], dig_P3 = c[5], dig_P4 = c[6], dig_P5 = c[7];
    S32 dig_P6 = c[8], dig_P7 = c[9], dig_P8 = c[10], dig_P9 = c[11];
    S32 dig_H1 = c[12], dig_H2 = c[13], dig_H3 = c[14], dig_H4 = c[15], dig_H5 = c[16];
    S32 dig_H6 = c[17];
    S32 var1, var2, t_fine, v;
    S64 p1, p2, p;

    var1 = ((((adc_T >> 3) - (dig_T1 << 1))) * dig_T2) >> 11;
    var2 = (((((adc_T >> 4) - dig_T1) * ((adc_T >> 4) - dig_T1)) >> 12) * dig_T3) >> 14;
    t_fine = var1 + var2;
    *out_T = (t_fine * 5 + 128) >> 8;

    p1 = ((S64)t_fine) - 128000;
    p2 = p1 * p1 * (S64)dig_P6;
    p2 = p2 + ((p1 * (S64)dig_P5) << 17);
    p2 = p2 + (((S64)dig_P4) << 35);
    p1 = ((p1 * p1 * (S64)dig_P3) >> 8) + ((p1 * (S64)dig_P2) << 12);
    p1 = (((((S64)1) << 47) + p1)) * ((S64)dig_P1) >> 33;
    if (p1 == 0) {
        *out_P = 0;
    } else {
        p = 1048576 - adc_P;
        p = (((p << 31) - p2) * 3125) / p1;
        p1 = (((S64)dig_P9) * (p >> 13) * (p >> 13)) >> 25;
        p2 = (((S64)dig_P8) * p) >> 19;
        p = ((p + p1 + p2) >> 8) + (((S64)dig_P7) << 4);
        *out_P = (U32)p;
    }

    v = (t_fine - ((S32)76800));
    v = (((((adc_H << 14) - (((S32)dig_H4) << 20) - (((S32)dig_H5) * v)) +
           ((S32)16384)) >> 15) * (((((((v * ((S32)dig_H6)) >> 10) *
           (((v * ((S32)dig_H3)) >> 11) + ((S32)32768))) >> 10) + ((S32)2097152)) *
           ((S32)dig_H2) + 8192) >> 14));
    v = (v - (((((v >> 15) * (v >> 15)) >> 7) * ((S32)dig_H1)) >> 4));
    v = (v < 0 ? 0 : v);
    v = (v > 419430400 ? 419430400 : v);
    *out_H = (U32)(v >> 12);
}
"""


@pytest.fixture(scope="module")
def c_comp(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler: the Python rendering in test_bme280_properties.py stands")
    d = tmp_path_factory.mktemp("cref")
    (d / "comp.c").write_text(C_SOURCE)
    subprocess.run([cc, "-O1", "-fwrapv", "-shared", "-fPIC", "-o", str(d / "comp.so"),
                    str(d / "comp.c")], check=True, capture_output=True)
    lib = ctypes.CDLL(str(d / "comp.so"))
    fn = lib.comp
    fn.restype = None

    def run(cal, adc_t, adc_p, adc_h):
        c = (ctypes.c_int32 * 18)(*cal)
        t, p, h = ctypes.c_int32(), ctypes.c_uint32(), ctypes.c_uint32()
        fn(c, ctypes.c_int32(adc_t), ctypes.c_int32(adc_p), ctypes.c_int32(adc_h),
           ctypes.byref(t), ctypes.byref(p), ctypes.byref(h))
        return t.value, p.value, h.value

    return run


s16 = st.integers(-0x8000, 0x7FFF)
u16 = st.integers(0, 0xFFFF)
any_cal = st.tuples(u16, s16, s16, u16, s16, s16, s16, s16, s16, s16, s16, s16,
                    st.integers(0, 255), s16, st.integers(0, 255), st.integers(-2048, 2047),
                    st.integers(-2048, 2047), st.integers(-128, 127))


def test_datasheet_example_in_c(c_comp):
    cal = (27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000,
           75, 362, 0, 313, 50, 30)
    t, p, h = c_comp(cal, 519888, 415148, 30000)
    assert t == 2508 and abs(p / 256 - 100653.27) < 0.1
    assert bme280.compensate(cal, 519888, 415148, 30000) == (t, p, h)


@settings(max_examples=500, deadline=None)
@given(any_cal, st.integers(0, 0xFFFFF), st.integers(0, 0xFFFFF), st.integers(0, 0xFFFF))
def test_compensate_equals_compiled_datasheet_code(c_comp, cal, adc_t, adc_p, adc_h):
    assert bme280.compensate(cal, adc_t, adc_p, adc_h) == c_comp(cal, adc_t, adc_p, adc_h)
