"""Dense feature frames: grid per frequency, calendar encodings, event distances, prices, flags, vocab."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.data.features import (
    EVENT_CAP,
    TIME_FEATURES,
    UNKNOWN,
    build_features,
    build_vocab,
    encode_static,
    event_names,
    events_of,
    named_event_features,
    offset_date,
    time_features,
)
from inventory_scale.errors import ConfigError, DataQualityError, SchemaError

D = dt.date


def sales_frame(rows: list[tuple[str, str, dt.date, float, float | None, bool, bool]]) -> pl.DataFrame:
    """(sku, warehouse, date, units, price, promo, in_stock) rows with the contract schema."""
    return pl.DataFrame(rows, schema=S.SALES.schema, orient="row")


def calendar_frame(dates: list[dt.date], region: str, events: dict[dt.date, str]) -> pl.DataFrame:
    """One calendar row per date for ``region``; ``events`` are holidays, SNAP on the 1st."""
    rows = [
        (d, region, events.get(d), "holiday" if d in events else None, d in events, d.day == 1) for d in dates
    ]
    return pl.DataFrame(rows, schema=S.CALENDAR.schema, orient="row")


def days(start: dt.date, stop: dt.date) -> list[dt.date]:
    return pl.date_range(start, stop, eager=True).to_list()


PRODUCTS = pl.DataFrame({S.SKU_ID: ["A", "B"], S.CATEGORY: ["food", "toys"]})
WAREHOUSES = pl.DataFrame({S.WAREHOUSE_ID: ["W1", "W2"], S.REGION: ["US", "EU"]})


@pytest.fixture
def daily() -> pl.DataFrame:
    """Series (A, W1): 2023-12-20 .. 12-24, one missing day, one stockout, prices 10/10/-/12/8."""
    return sales_frame(
        [
            ("A", "W1", D(2023, 12, 20), 1.0, 10.0, False, True),
            ("A", "W1", D(2023, 12, 21), 2.0, 10.0, True, True),
            # 12-22 missing
            ("A", "W1", D(2023, 12, 23), 3.0, 12.0, False, False),  # stockout
            ("A", "W1", D(2023, 12, 24), 4.0, 8.0, False, True),
        ]
    )


def test_daily_grid_targets_prices_and_flags(daily: pl.DataFrame) -> None:
    cal = calendar_frame(days(D(2023, 12, 1), D(2024, 1, 10)), "US", {D(2023, 12, 25): "Christmas"})
    out = build_features(daily, PRODUCTS, WAREHOUSES, cal, freq="1d", end=D(2023, 12, 27))
    assert out.columns == [
        S.SKU_ID,
        S.WAREHOUSE_ID,
        S.CATEGORY,
        S.SUBCATEGORY,
        S.DATE,
        S.UNITS_SOLD,
        S.OBSERVED,
        S.PRICE,
        *TIME_FEATURES,
    ]
    assert out[S.DATE].to_list() == days(D(2023, 12, 20), D(2023, 12, 27))
    assert out[S.CATEGORY].unique().to_list() == ["food"]
    assert out[S.UNITS_SOLD].to_list() == [1, 2, 0, 3, 4, 0, 0, 0]
    assert out[S.OBSERVED].to_list() == [1, 1, 0, 0, 1, 0, 0, 0]  # missing day, stockout, horizon
    # price carried forward over the gap and the horizon; reference = median(10, 10, 12, 8) = 10
    assert out[S.PRICE].to_list() == [10, 10, 10, 12, 8, 8, 8, 8]
    np.testing.assert_allclose(
        out[S.RELATIVE_PRICE].to_numpy(), [1, 1, 1, 1.2, 0.8, 0.8, 0.8, 0.8], rtol=1e-6
    )
    assert out[S.ON_PROMOTION].to_list() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert out[S.IN_STOCK].to_list() == [1, 1, 1, 0, 1, 1, 1, 1]
    np.testing.assert_allclose(out[S.LOG_AGE].to_numpy(), np.log1p(np.arange(8)) / math.log1p(365), rtol=1e-6)
    assert all(out[c].dtype == pl.Float32 for c in (S.UNITS_SOLD, S.OBSERVED, *TIME_FEATURES))


def test_days_to_and_after_christmas_exact(daily: pl.DataFrame) -> None:
    events = {D(2023, 12, 25): "Christmas", D(2024, 1, 1): "New Year"}
    cal = pl.concat(
        [
            calendar_frame(days(D(2023, 12, 1), D(2024, 1, 10)), "US", events),
            calendar_frame(days(D(2023, 12, 1), D(2024, 1, 10)), "EU", {}),
        ]
    )
    two = pl.concat([daily, daily.with_columns(pl.lit("W2").alias(S.WAREHOUSE_ID))])
    out = build_features(two, PRODUCTS, WAREHOUSES, cal, freq="1d", end=D(2023, 12, 27))
    us = out.filter(pl.col(S.WAREHOUSE_ID) == "W1")
    cap = EVENT_CAP["1d"]
    # 12-20 .. 12-27: Christmas is 5 .. 0 days ahead, then New Year (01-01) 6, 5 days ahead
    np.testing.assert_allclose(
        us[S.DAYS_TO_EVENT].to_numpy(), np.array([5, 4, 3, 2, 1, 0, 6, 5]) / cap, rtol=1e-6
    )
    # no event before Christmas in the calendar: capped (1.0); then 0, 1, 2 days after it
    np.testing.assert_allclose(
        us[S.DAYS_AFTER_EVENT].to_numpy(), [1, 1, 1, 1, 1, 0, 1 / cap, 2 / cap], rtol=1e-6
    )
    assert us[S.IS_HOLIDAY].to_list() == [0, 0, 0, 0, 0, 1, 0, 0]
    eu = out.filter(pl.col(S.WAREHOUSE_ID) == "W2")  # region without events: capped everywhere
    assert eu[S.DAYS_TO_EVENT].to_list() == [1.0] * 8
    assert eu[S.IS_HOLIDAY].to_list() == [0.0] * 8


def test_named_event_distances_by_hand(daily: pl.DataFrame) -> None:
    # New Year twice (a combined "A|B" day as M5 writes them), Christmas once; EU has no events
    events = {D(2023, 12, 25): "Christmas", D(2023, 12, 22): "New Year", D(2024, 1, 1): "New Year|Boxing"}
    cal = pl.concat(
        [
            calendar_frame(days(D(2023, 12, 1), D(2024, 1, 10)), "US", events),
            calendar_frame(days(D(2023, 12, 1), D(2024, 1, 10)), "EU", {}),
        ]
    )
    names = event_names(cal)
    assert names == ("Boxing", "Christmas", "New Year")
    named = named_event_features(["Christmas", "New Year"])
    assert named == (
        "to_event:Christmas",
        "after_event:Christmas",
        "to_event:New Year",
        "after_event:New Year",
    )
    assert events_of([*TIME_FEATURES, *named, "last_year_demand"]) == ("Christmas", "New Year")
    two = pl.concat([daily, daily.with_columns(pl.lit("W2").alias(S.WAREHOUSE_ID))])
    out = build_features(
        two, PRODUCTS, WAREHOUSES, cal, freq="1d", end=D(2023, 12, 27), events=["Christmas", "New Year"]
    )
    assert out.columns[-4:] == list(named)
    us = out.filter(pl.col(S.WAREHOUSE_ID) == "W1")  # 12-20 .. 12-27
    cap = EVENT_CAP["1d"]
    np.testing.assert_allclose(us[named[0]].to_numpy(), np.array([5, 4, 3, 2, 1, 0, 30, 30]) / cap, rtol=1e-6)
    np.testing.assert_allclose(
        us[named[1]].to_numpy(), np.array([30, 30, 30, 30, 30, 0, 1, 2]) / cap, rtol=1e-6
    )
    # New Year on 12-22 and (as part of "New Year|Boxing") on 01-01
    np.testing.assert_allclose(us[named[2]].to_numpy(), np.array([2, 1, 0, 9, 8, 7, 6, 5]) / cap, rtol=1e-6)
    np.testing.assert_allclose(us[named[3]].to_numpy(), np.array([30, 30, 0, 1, 2, 3, 4, 5]) / cap, rtol=1e-6)
    # the nearest-event features are unchanged by the named ones
    base = build_features(two, PRODUCTS, WAREHOUSES, cal, freq="1d", end=D(2023, 12, 27))
    assert out.select(base.columns).equals(base)
    eu = out.filter(pl.col(S.WAREHOUSE_ID) == "W2")
    assert all(eu[c].to_list() == [1.0] * 8 for c in named)


def test_calendar_encodings_on_known_dates() -> None:
    sales = sales_frame([("A", "W1", D(2024, 1, 1), 1.0, 5.0, False, True)])
    cal = calendar_frame(days(D(2024, 1, 1), D(2024, 1, 10)), "US", {})
    out = build_features(sales, PRODUCTS, WAREHOUSES, cal, freq="1d", end=D(2024, 1, 8))
    # 2024-01-01 is a Monday (ISO week 1); 2024-01-07 a Sunday; 01-08 Monday of week 2
    np.testing.assert_allclose(
        out[S.DAY_OF_WEEK].to_numpy(), np.array([0, 1, 2, 3, 4, 5, 6, 0]) / 6 - 0.5, atol=1e-6
    )
    np.testing.assert_allclose(out[S.WEEK_OF_YEAR].to_numpy(), [-0.5] * 7 + [1 / 52 - 0.5], atol=1e-6)
    assert out[S.MONTH_OF_YEAR].to_list() == [-0.5] * 8
    assert out[S.SNAP].to_list() == [1.0] + [0.0] * 7  # SNAP on the 1st
    dec = build_features(
        sales_frame([("A", "W1", D(2024, 12, 30), 1.0, 5.0, False, True)]),
        PRODUCTS,
        WAREHOUSES,
        cal,
        freq="1d",
        end=D(2024, 12, 30),
    )
    assert dec[S.MONTH_OF_YEAR].item() == 0.5
    assert dec[S.SNAP].item() == 0.0  # no calendar row: 0


def test_weekly_grid_dates_and_event_distance_in_weeks() -> None:
    fridays = [D(2024, 1, 5) + dt.timedelta(weeks=k) for k in range(10)]
    sales = sales_frame([("A", "W1", d, 1.0, 2.0, False, True) for d in fridays[:3]])
    cal = calendar_frame(fridays, "US", {D(2024, 1, 26): "Sale"})
    out = build_features(sales, PRODUCTS, WAREHOUSES, cal, freq="1w", end=D(2024, 2, 4))
    assert out[S.DATE].to_list() == fridays[:5]  # 01-05 .. 02-02 (02-09 is past the end)
    assert S.DAY_OF_WEEK not in out.columns and time_features("1w") == TIME_FEATURES[1:]
    cap = EVENT_CAP["1w"]
    np.testing.assert_allclose(out[S.DAYS_TO_EVENT].to_numpy(), [3 / cap, 2 / cap, 1 / cap, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(out[S.DAYS_AFTER_EVENT].to_numpy(), [1, 1, 1, 0, 1 / cap], rtol=1e-6)
    assert out[S.OBSERVED].to_list() == [1, 1, 1, 0, 0]


def test_monthly_grid_dates_and_month_feature() -> None:
    sales = sales_frame([("A", "W1", D(2024, m, 1), 1.0, 2.0, False, True) for m in (1, 2, 3)])
    cal = calendar_frame([D(2024, m, 1) for m in range(1, 13)], "US", {D(2024, 6, 1): "Midyear"})
    out = build_features(sales, PRODUCTS, WAREHOUSES, cal, freq="1mo", end=D(2024, 6, 15))
    assert out[S.DATE].to_list() == [D(2024, m, 1) for m in range(1, 7)]
    np.testing.assert_allclose(out[S.MONTH_OF_YEAR].to_numpy(), np.arange(6) / 11 - 0.5, atol=1e-6)
    np.testing.assert_allclose(
        out[S.DAYS_TO_EVENT].to_numpy(), np.array([5, 4, 3, 2, 1, 0]) / EVENT_CAP["1mo"], rtol=1e-6
    )
    np.testing.assert_allclose(out[S.LOG_AGE].to_numpy(), np.log1p(np.arange(6)) / math.log1p(12), rtol=1e-6)


def test_unknown_price_and_product_give_defaults() -> None:
    sales = sales_frame(
        [
            ("Z", "W9", D(2024, 1, 1), 1.0, None, False, True),
            ("Z", "W9", D(2024, 1, 2), 1.0, None, False, True),
        ]
    )
    cal = calendar_frame(days(D(2024, 1, 1), D(2024, 1, 5)), "US", {D(2024, 1, 2): "x"})
    out = build_features(sales, PRODUCTS, WAREHOUSES, cal, freq="1d", end=D(2024, 1, 3))
    assert out[S.RELATIVE_PRICE].to_list() == [1.0] * 3
    assert out[S.CATEGORY].to_list() == [None] * 3
    assert out[S.DAYS_TO_EVENT].to_list() == [1.0] * 3  # warehouse W9 has no region


def test_bad_inputs_raise_named_errors(daily: pl.DataFrame) -> None:
    cal = calendar_frame(days(D(2023, 12, 1), D(2023, 12, 31)), "US", {})
    with pytest.raises(DataQualityError, match=r"occur more than once: \(A, W1, 2023-12-20\)"):
        build_features(
            pl.concat([daily, daily.head(1)]), PRODUCTS, WAREHOUSES, cal, freq="1d", end=D(2023, 12, 27)
        )
    weekly = sales_frame(
        [
            ("A", "W1", D(2024, 1, 5), 1.0, 1.0, False, True),
            ("A", "W1", D(2024, 1, 10), 1.0, 1.0, False, True),
        ]
    )
    with pytest.raises(DataQualityError, match=r"not on the '1w' grid.*\(A, W1, 2024-01-10\)"):
        build_features(weekly, PRODUCTS, WAREHOUSES, cal, freq="1w", end=D(2024, 2, 1))
    with pytest.raises(SchemaError, match=r"table 'sales' lacks column.*in_stock"):
        build_features(daily.drop(S.IN_STOCK), PRODUCTS, WAREHOUSES, cal, freq="1d", end=D(2023, 12, 27))
    with pytest.raises(SchemaError, match=r"table 'warehouses' lacks column.*region"):
        build_features(daily, PRODUCTS, WAREHOUSES.drop(S.REGION), cal, freq="1d", end=D(2023, 12, 27))
    with pytest.raises(ConfigError, match=r"data\.freq"):
        build_features(daily, PRODUCTS, WAREHOUSES, cal, freq="2h", end=D(2023, 12, 27))


def test_vocab_maps_unseen_values_to_zero() -> None:
    train = pl.DataFrame(
        {S.CATEGORY: ["toys", "food", None], S.WAREHOUSE_ID: ["W2", "W1", "W1"], S.SKU_ID: ["a", "b", "a"]}
    )
    vocab = build_vocab(train)
    assert vocab == {
        S.CATEGORY: [UNKNOWN, "food", "toys"],
        S.WAREHOUSE_ID: [UNKNOWN, "W1", "W2"],
        S.SKU_ID: [UNKNOWN, "a", "b"],
    }
    later = pl.DataFrame(
        {
            S.CATEGORY: ["toys", "garden", None],
            S.WAREHOUSE_ID: ["W3", "W1", "W2"],
            S.SKU_ID: ["b", "new", "a"],
        }
    )
    assert encode_static(later, vocab).tolist() == [[2, 0, 2], [0, 1, 0], [0, 2, 1]]
    with pytest.raises(SchemaError, match="vocab"):
        encode_static(later, {S.CATEGORY: ["food"], S.WAREHOUSE_ID: [UNKNOWN], S.SKU_ID: [UNKNOWN]})


def test_offset_date_by_frequency() -> None:
    assert offset_date(D(2024, 1, 31), "1d", 3) == D(2024, 2, 3)
    assert offset_date(D(2024, 1, 31), "1w", 2) == D(2024, 2, 14)
    assert offset_date(D(2024, 1, 31), "1mo", 1) == D(2024, 2, 29)
