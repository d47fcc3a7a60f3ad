# Derived values checked against published reference tables, never against our own output:
# - dew point: the saturation vapour pressure of water (the table of the Wikipedia article
#   "Vapour pressure of water", kPa): air at T with the vapour pressure of saturation at Td
#   has its dew point at Td;
# - heat index: the NWS heat index chart (NOAA, erh.noaa.gov/bgm/tables/heat_index), whose
#   cells are the Rothfusz regression (NWS: error ±1.3 °F); where NWS adds its high-humidity
#   adjustment the chart shows the plain regression, so ours is the chart plus that published
#   adjustment; the low-humidity adjustment and the simple form below 80 °F against Steadman's
#   apparent-temperature table as NWS printed it (its RH 0..100 % chart);
# - Humidex: the Environment Canada table (dew points 10..13 °C, air 15..43 °C) and its
#   worked examples;
# - pressure tendency: the AMS Glossary definition (net change over the 3 h before).
import pytest

from host_tools.ingest import derived

VAPOUR_KPA = {0: 0.6113, 5: 0.8726, 10: 1.2281, 15: 1.7056, 20: 2.3388, 25: 3.1690, 30: 4.2455,
              35: 5.6267, 40: 7.3814, 45: 9.5898, 50: 12.3440}

NWS_CHART = {  # °F: heat index at RH 40, 45, ... %
    110: [136], 108: [130, 137], 106: [124, 130, 137], 104: [119, 124, 131, 137],
    102: [114, 119, 124, 130, 137], 100: [109, 114, 118, 124, 129, 136],
    98: [105, 109, 113, 117, 123, 128, 134], 96: [101, 104, 108, 112, 116, 121, 126, 132],
    94: [97, 100, 103, 106, 110, 114, 119, 124, 129, 135],
    92: [94, 96, 99, 101, 105, 108, 112, 116, 121, 126, 131],
    90: [91, 93, 95, 97, 100, 103, 106, 109, 113, 117, 122, 127, 132],
    88: [88, 89, 91, 93, 95, 98, 100, 103, 106, 110, 113, 117, 121],
    86: [85, 87, 88, 89, 91, 93, 95, 97, 100, 102, 105, 108, 112],
    84: [83, 84, 85, 86, 88, 89, 90, 92, 94, 96, 98, 100, 103],
    82: [81, 82, 83, 84, 84, 85, 86, 88, 89, 90, 91, 93, 95],
    80: [80, 80, 81, 81, 82, 82, 83, 84, 84, 85, 86, 86, 87],
}
STEADMAN_DRY = {  # °F: apparent temperature at RH 0, 5, 10 %
    110: [99, 102, 105], 105: [95, 97, 100], 100: [91, 93, 95], 95: [87, 88, 90],
    90: [83, 84, 85]}
STEADMAN_MILD = {  # °F: apparent temperature at RH 30, 35, ... 70 %
    75: [73, 73, 74, 74, 75, 75, 76, 76, 77], 70: [67, 67, 68, 68, 69, 69, 70, 70, 70]}


def cells(chart, first_rh):
    for t, row in chart.items():
        for i, value in enumerate(row):
            yield t, first_rh + 5 * i, value


@pytest.mark.parametrize("t,td", [(t, td) for t in VAPOUR_KPA for td in VAPOUR_KPA if td < t])
def test_dew_point_matches_the_vapour_pressure_table(t, td):
    rh = 100.0 * VAPOUR_KPA[td] / VAPOUR_KPA[t]
    assert derived.dew_point_c(t, rh) == pytest.approx(td, abs=0.25)


def test_dew_point_at_saturation_and_without_data():
    assert derived.dew_point_c(17.3, 100) == pytest.approx(17.3, abs=1e-9)
    assert derived.dew_point_c(None, 50) is None and derived.dew_point_c(20, None) is None
    assert derived.dew_point_c(20, 0) is None


@pytest.mark.parametrize("t,rh,chart", list(cells(NWS_CHART, 40)))
def test_heat_index_matches_the_nws_chart(t, rh, chart):
    ours = derived.heat_index_f(t, rh)
    if rh > 85 and t <= 87:  # NWS's high-humidity adjustment, absent from the chart
        adjustment = (rh - 85) / 10.0 * (87 - t) / 5.0
        assert ours - adjustment == pytest.approx(chart, abs=1.3)
        assert ours > chart + adjustment - 1.3
    else:
        assert ours == pytest.approx(chart, abs=1.3)


@pytest.mark.parametrize("t,rh,table", list(cells(STEADMAN_DRY, 0)))
def test_low_humidity_adjustment_matches_steadman(t, rh, table):
    assert derived.heat_index_f(t, rh) == pytest.approx(table, abs=1.0)


@pytest.mark.parametrize("t,rh,table", list(cells(STEADMAN_MILD, 30)))
def test_simple_form_below_80f_matches_steadman(t, rh, table):
    # a linear fit for which NWS states no error bound: within 2 °F of the table
    assert derived.heat_index_f(t, rh) == pytest.approx(table, abs=2.0)


def test_heat_index_in_celsius_and_without_data():
    assert derived.heat_index_c(derived.f_to_c(100), 40) == pytest.approx(
        derived.f_to_c(109), abs=0.75)
    assert derived.heat_index_c(None, 40) is None and derived.heat_index_f(90, None) is None


@pytest.mark.parametrize("dew,add", [(10, 1), (11, 2), (12, 2), (13, 3)])
def test_humidex_matches_the_environment_canada_table(dew, add):
    assert [round(derived.humidex(t, dew)) for t in range(15, 44)] == \
        [t + add for t in range(15, 44)]


def test_humidex_worked_examples():
    assert round(derived.humidex(30, 15)) == 34
    assert round(derived.humidex(30, 25)) == 42
    # Environment Canada: 30 °C at 70 % relative humidity is a humidex of 41
    assert round(derived.humidex(30, derived.dew_point_c(30, 70))) == 41
    assert derived.humidex(30, None) is None


def test_pressure_tendency_is_the_net_change_over_three_hours():
    tend = derived.Tendency()
    t0 = 1750000000
    pressures = [1013.0 - 0.02 * i for i in range(0, 200)]  # falling 1.2 hPa per hour
    results = [tend.add(t0 + 60 * i, p) for i, p in enumerate(pressures)]
    assert all(r is None for r in results[:180 - 10])       # nothing 3 h (±10 min) earlier
    assert results[180] == pytest.approx(-3.6)               # "falling quickly" in 3 h
    assert results[199] == pytest.approx(pressures[199] - pressures[19])


def test_pressure_tendency_needs_a_reading_near_three_hours_before():
    tend = derived.Tendency()
    t0 = 1750000000
    assert tend.add(t0, 1000.0) is None
    assert tend.add(t0 + 3 * 3600 + 601, 1002.0) is None    # 10 min slack exceeded
    assert tend.add(t0 + 3 * 3600 + 3601, 1001.5) is None
    assert tend.add(t0 + 6 * 3600 + 700, 1003.0) == pytest.approx(1.0)
    assert tend.add(None, 1000.0) is None and tend.add(t0 + 7 * 3600, None) is None
    assert tend.add(t0 + 3 * 3600, 1000.0) is None             # out of time order: starts over
    assert tend.add(t0 + 6 * 3600, 1004.0) == pytest.approx(4.0)
