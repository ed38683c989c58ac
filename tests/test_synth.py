"""Synthetic marketplace generator: schemas, row counts, determinism and the demand realism that the
forecaster and the optimizer rely on (seasons, events, promotions, censoring, launches, stock)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.config import DataConfig
from inventory_scale.data import catalog, events, io
from inventory_scale.data.synth import generate_marketplace
from inventory_scale.errors import ConfigError

START = dt.date(2024, 1, 1)
DAYS = 400
END = START + dt.timedelta(days=DAYS - 1)
SMALL = DataConfig(n_skus=40, n_warehouses=2, days=DAYS, start_date=str(START), chunk_series=1000)
MEDIUM = DataConfig(n_skus=400, n_warehouses=3, days=DAYS, start_date=str(START))


def _load(root: str) -> dict[str, pl.DataFrame]:
    return {name: io.read_table(root, spec).sort(spec.key) for name, spec in S.ALL_TABLES.items()}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int], dict[str, pl.DataFrame]]:
    root = str(tmp_path_factory.mktemp("small"))
    rows = generate_marketplace(SMALL, root, seed=7)
    return root, rows, _load(root)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pl.DataFrame]:
    root = str(tmp_path_factory.mktemp("medium"))
    generate_marketplace(MEDIUM, root, seed=1)
    t = _load(root)
    daily = t["sales"].join(t["truth"], on=list(S.SALES.key), how="inner", validate="1:1")
    t["daily"] = daily.join(t["products"].select(S.SKU_ID, S.CATEGORY, S.TITLE), on=S.SKU_ID)
    return t


def test_tables_have_exact_schemas_keys_and_nulls(
    small: tuple[str, dict[str, int], dict[str, pl.DataFrame]],
) -> None:
    root, _, tables = small
    for name, spec in S.ALL_TABLES.items():
        assert io.scan_table(root, spec).collect_schema() == spec.schema, name
        files = io.table_files(root, spec)
        raw = pl.read_parquet_schema(files[0])
        expected = {c: t for c, t in spec.schema.items() if c != spec.partition_by}
        assert dict(raw) == expected, name
        frame = tables[name]
        assert frame.select(spec.key).is_duplicated().sum() == 0, name
        for col in set(spec.columns) - spec.nullable:
            assert frame[col].null_count() == 0, (name, col)
    parts = {Path(f).parent.name for f in io.table_files(root, S.SALES)}
    assert parts == {"warehouse_id=W001", "warehouse_id=W002"}


def test_row_counts_follow_launch_and_discontinuation(
    small: tuple[str, dict[str, int], dict[str, pl.DataFrame]],
) -> None:
    _, rows, t = small
    assert rows == {name: t[name].height for name in rows}
    assert set(rows) == set(S.ALL_TABLES)
    assert (rows["products"], rows["warehouses"], rows["inventory"]) == (40, 2, 80)
    assert rows["calendar"] == DAYS * len(events.REGIONS)
    assert rows["sales"] == rows["truth"]
    span = (
        t["sales"]
        .group_by(S.SKU_ID, S.WAREHOUSE_ID)
        .agg(pl.len().alias("n"), pl.col(S.DATE).min().alias("first"), pl.col(S.DATE).max().alias("last"))
        .join(t["products"].select(S.SKU_ID, S.LAUNCH_DATE), on=S.SKU_ID)
    )
    assert span.height == 80  # every series has rows
    first = span["first"].to_list()
    expected_first = [max(START, d) for d in span[S.LAUNCH_DATE].to_list()]
    assert first == expected_first
    contiguous = [(b - a).days + 1 for a, b in zip(span["first"], span["last"], strict=True)]
    assert span["n"].to_list() == contiguous  # no gaps inside a series
    pre = sum((f - START).days for f in first)
    post = sum((END - last).days for last in span["last"].to_list())
    assert rows["sales"] == 80 * DAYS - pre - post


def test_same_seed_identical_and_chunking_does_not_matter(
    small: tuple[str, dict[str, int], dict[str, pl.DataFrame]], tmp_path: Path
) -> None:
    _, _, ref = small
    chunked = DataConfig(**{**SMALL.__dict__, "chunk_series": 7})
    rows = generate_marketplace(chunked, str(tmp_path / "a"), seed=7)
    assert len(io.table_files(str(tmp_path / "a"), S.SALES)) >= 10  # really written in many parts
    again = _load(str(tmp_path / "a"))
    for name in S.ALL_TABLES:
        assert again[name].equals(ref[name]), name
    assert rows["sales"] == ref["sales"].height
    generate_marketplace(SMALL, str(tmp_path / "b"), seed=8)
    other = _load(str(tmp_path / "b"))
    assert not other["sales"].equals(ref["sales"])
    assert not other["products"].equals(ref["products"])


def test_stockouts_censor_sales(medium: dict[str, pl.DataFrame]) -> None:
    d = medium["daily"]
    assert (d[S.UNITS_SOLD] <= d[S.DEMAND]).all()
    in_stock = d.filter(pl.col(S.IN_STOCK))
    assert (in_stock[S.UNITS_SOLD] == in_stock[S.DEMAND]).all()
    out = d.filter(~pl.col(S.IN_STOCK))
    assert 0.005 < out.height / d.height < 0.15
    with_demand = out.filter(pl.col(S.DEMAND) > 0)
    assert with_demand.height > 100
    assert (with_demand[S.UNITS_SOLD] < with_demand[S.DEMAND]).all()
    assert float(with_demand[S.UNITS_SOLD].sum()) < 0.3 * float(with_demand[S.DEMAND].sum())
    assert (d[S.UNITS_SOLD] == d[S.UNITS_SOLD].round()).all() and (d[S.UNITS_SOLD] >= 0).all()


def _event_ratio(
    d: pl.DataFrame, warehouse: str, day: dt.date, categories: tuple[str, ...]
) -> tuple[float, float]:
    """Event-day demand / the weeks around it, and the last pre-event week / the weeks before it.

    Each series' demand_mean is scaled by its own mean over the +-4 weeks first, so a few
    high-volume SKUs do not dominate the average.
    """
    offset = (pl.col(S.DATE) - pl.lit(day)).dt.total_days()
    key = [S.SKU_ID, S.WAREHOUSE_ID]
    window = d.filter(
        pl.col(S.WAREHOUSE_ID) == warehouse, pl.col(S.CATEGORY).is_in(categories), offset.abs() <= 28
    ).with_columns(offset.alias("offset"), pl.col(S.DEMAND_MEAN) / pl.col(S.DEMAND_MEAN).mean().over(key))

    def mean(rows: pl.Expr) -> float:
        return float(window.filter(rows)[S.DEMAND_MEAN].mean())  # type: ignore[arg-type]

    off = pl.col("offset")
    return mean(off == 0) / mean(off.abs() >= 14), mean(off.is_between(-7, -1)) / mean(off <= -14)


def test_shopping_events_spike_after_a_dip(medium: dict[str, pl.DataFrame]) -> None:
    d, responsive = medium["daily"], ("electronics", "clothing", "beauty")
    spike, dip = _event_ratio(d, "W003", dt.date(2024, 11, 11), responsive)  # east_asia: 11.11
    assert spike > 3.0 and dip < 0.9
    spike, dip = _event_ratio(d, "W001", dt.date(2024, 11, 29), responsive)  # north_america: Black Friday
    assert spike > 2.5 and dip < 0.9
    spike, _ = _event_ratio(d, "W003", dt.date(2024, 6, 18), responsive)  # 618
    assert spike > 2.5
    spike, _ = _event_ratio(d, "W001", dt.date(2024, 11, 11), ("food",))  # barely observed there
    assert spike < 1.3


def _season_ratio(d: pl.DataFrame, warehouse: str, pattern: str) -> float:
    month = pl.col(S.DATE).dt.month()
    x = d.filter(pl.col(S.WAREHOUSE_ID) == warehouse, pl.col(S.TITLE).str.contains(pattern))
    winter = x.filter(month.is_in([12, 1, 2]))[S.DEMAND_MEAN].mean()
    summer = x.filter(month.is_in([6, 7, 8]))[S.DEMAND_MEAN].mean()
    assert isinstance(winter, float) and isinstance(summer, float)
    return winter / summer


def test_title_words_carry_seasons_shifted_in_the_south(medium: dict[str, pl.DataFrame]) -> None:
    d = medium["daily"]
    assert d.filter(pl.col(S.TITLE).str.contains("Winter"))[S.SKU_ID].n_unique() >= 5
    assert d.filter(pl.col(S.TITLE).str.contains("Swimsuit|Summer|Beach"))[S.SKU_ID].n_unique() >= 5
    assert _season_ratio(d, "W001", "Winter") > 2.0  # north_america
    assert _season_ratio(d, "W001", "Swimsuit|Summer|Beach") < 0.5
    assert _season_ratio(d, "W002", "Winter") < 0.5  # oceania: seasons flipped
    assert _season_ratio(d, "W002", "Swimsuit|Summer|Beach") > 2.0
    xmas = d.filter(pl.col(S.TITLE).str.contains("Christmas"), pl.col(S.DATE).dt.month().is_in([11, 12]))
    assert xmas.height > 0  # Christmas is calendar-bound: December peak in both hemispheres
    for wh in ("W001", "W002"):
        dec = d.filter(pl.col(S.WAREHOUSE_ID) == wh, pl.col(S.TITLE).str.contains("Christmas"))
        by_month = dec.group_by(pl.col(S.DATE).dt.month().alias("m")).agg(pl.col(S.DEMAND_MEAN).mean())
        assert by_month.sort(S.DEMAND_MEAN)["m"][-1] in (11, 12)


def test_weekly_pattern_differs_by_category(medium: dict[str, pl.DataFrame]) -> None:
    key = [S.SKU_ID, S.WAREHOUSE_ID]
    scaled = pl.col(S.DEMAND_MEAN) / pl.col(S.DEMAND_MEAN).mean().over(key)
    by_day = (
        medium["daily"]
        .with_columns(scaled)
        .group_by(S.CATEGORY, pl.col(S.DATE).dt.weekday().alias("weekday"))
        .agg(pl.col(S.DEMAND_MEAN).mean())
        .rows_by_key([S.CATEGORY, "weekday"], unique=True)
    )
    monday, saturday = 1, 6
    assert by_day[("food", saturday)][0] > 1.15 * by_day[("food", monday)][0]  # groceries: weekend
    assert (
        by_day[("electronics", monday)][0] > 1.2 * by_day[("electronics", saturday)][0]
    )  # gadgets: weekdays


def test_promotions_cut_prices_and_raise_demand(medium: dict[str, pl.DataFrame]) -> None:
    d = medium["daily"]
    assert 0.01 < d[S.ON_PROMOTION].mean() < 0.3  # type: ignore[operator]
    per_series = (
        d.group_by(S.SKU_ID, S.WAREHOUSE_ID)
        .agg(
            pl.col(S.DEMAND_MEAN).filter(pl.col(S.ON_PROMOTION)).mean().alias("promo"),
            pl.col(S.DEMAND_MEAN).filter(~pl.col(S.ON_PROMOTION)).mean().alias("base"),
            pl.col(S.PRICE).filter(pl.col(S.ON_PROMOTION)).median().alias("promo_price"),
            pl.col(S.PRICE).filter(~pl.col(S.ON_PROMOTION)).median().alias("base_price"),
        )
        .drop_nulls()
    )
    assert per_series.height > 200
    assert (per_series["promo"] / per_series["base"]).median() > 1.3  # type: ignore[operator]
    assert (per_series["promo_price"] < per_series["base_price"]).mean() > 0.95  # type: ignore[operator]


def test_inventory_and_inbound_are_consistent(medium: dict[str, pl.DataFrame]) -> None:
    inv, inb, prod = medium["inventory"], medium["inbound"], medium["products"]
    assert inv.height == 400 * 3
    sums = inb.group_by(S.SKU_ID, S.WAREHOUSE_ID).agg(pl.col(S.QUANTITY).sum())
    joined = inv.join(sums, on=[S.SKU_ID, S.WAREHOUSE_ID], how="left").with_columns(
        pl.col(S.QUANTITY).fill_null(0)
    )
    assert (joined[S.ON_ORDER] == joined[S.QUANTITY]).all()
    assert inb.height > 200 and (inb[S.ARRIVAL_DATE] > END).all() and (inb[S.QUANTITY] > 0).all()
    packs = inb.join(prod.select(S.SKU_ID, S.CASE_PACK, S.MOQ), on=S.SKU_ID)
    assert ((packs[S.QUANTITY] % packs[S.CASE_PACK]) == 0).all() and (packs[S.QUANTITY] >= packs[S.MOQ]).all()
    assert (inv[S.LEAD_TIME_DAYS] > 0).all() and inv[S.LEAD_TIME_DAYS].n_unique() > 20
    by_wh = inv.group_by(S.WAREHOUSE_ID).agg(pl.col(S.LEAD_TIME_DAYS).mean()).sort(S.WAREHOUSE_ID)
    assert by_wh[S.LEAD_TIME_DAYS].max() > 1.3 * by_wh[S.LEAD_TIME_DAYS].min()  # type: ignore[operator]
    assert (inv[S.ON_HAND] >= 0).all() and (inv[S.LEAD_TIME_STD_DAYS] >= 0).all()
    assert (inv[S.REVIEW_PERIOD_DAYS] > 0).all() and (inv[S.STOCKOUT_PENALTY] > 0).all()
    last = medium["daily"].filter(pl.col(S.DATE) == END, ~pl.col(S.IN_STOCK)).select(S.SKU_ID, S.WAREHOUSE_ID)
    assert (inv.join(last, on=[S.SKU_ID, S.WAREHOUSE_ID])[S.ON_HAND] == 0).all()  # out of stock at the end


def test_warehouses_are_sized_to_recent_demand(medium: dict[str, pl.DataFrame]) -> None:
    wh, d, prod = medium["warehouses"], medium["daily"], medium["products"]
    assert wh[S.REGION].to_list() == ["north_america", "oceania", "east_asia"]
    alive = d.filter(pl.col(S.DATE) == END).select(S.SKU_ID).unique()
    recent = (
        d.filter(pl.col(S.DATE) > END - dt.timedelta(days=28))
        .join(alive, on=S.SKU_ID)
        .join(prod.select(S.SKU_ID, S.UNIT_COST), on=S.SKU_ID)
        .group_by(S.WAREHOUSE_ID)
        .agg((pl.col(S.DEMAND_MEAN).cast(pl.Float64) * pl.col(S.UNIT_COST)).sum() / 28)
        .sort(S.WAREHOUSE_ID)
    )
    expected = recent[S.DEMAND_MEAN].to_numpy() * MEDIUM.budget_cover_days
    np.testing.assert_allclose(wh[S.BUDGET].to_numpy(), expected, rtol=1e-3)
    assert (wh[S.CAPACITY_M3] > 0).all()


def test_launches_start_rows_at_launch_date(medium: dict[str, pl.DataFrame]) -> None:
    prod, sales = medium["products"], medium["sales"]
    late = prod.filter(pl.col(S.LAUNCH_DATE) > START)
    assert 20 <= late.height <= 120  # ~15% of 400
    first = sales.group_by(S.SKU_ID, S.WAREHOUSE_ID).agg(pl.col(S.DATE).min()).join(prod, on=S.SKU_ID)
    launched = first.filter(pl.col(S.LAUNCH_DATE) > START)
    assert launched.height == 3 * late.height and (launched[S.DATE] == launched[S.LAUNCH_DATE]).all()
    assert (first.filter(pl.col(S.LAUNCH_DATE) <= START)[S.DATE] == START).all()
    last = sales.group_by(S.SKU_ID, S.WAREHOUSE_ID).agg(pl.col(S.DATE).max())
    ended = last.filter(pl.col(S.DATE) < END)
    assert ended[S.SKU_ID].n_unique() >= 5  # discontinued SKUs exist ...
    assert ended.height == 3 * ended[S.SKU_ID].n_unique()  # ... and stop in every warehouse
    assert ended.group_by(S.SKU_ID).agg(pl.col(S.DATE).n_unique())[S.DATE].max() == 1  # on the same day


def test_intermittent_series_are_mostly_zero(medium: dict[str, pl.DataFrame]) -> None:
    per_series = (
        medium["daily"]
        .group_by(S.SKU_ID, S.WAREHOUSE_ID)
        .agg(
            pl.col(S.DEMAND_MEAN).mean().alias("rate"),
            (pl.col(S.UNITS_SOLD) == 0).mean().alias("zeros"),
            pl.len().alias("n"),
        )
    )
    slow = per_series.filter(pl.col("rate") < 0.25, pl.col("n") >= 100)
    assert slow.height > 0.15 * per_series.height
    assert (slow["zeros"] > 0.5).all()
    assert per_series.filter(pl.col("rate") > 5)["zeros"].mean() < 0.2  # type: ignore[operator]


def test_products_attributes(medium: dict[str, pl.DataFrame]) -> None:
    p = medium["products"]
    perishable = p[S.CATEGORY].is_in(list(catalog.PERISHABLE_CATEGORIES))
    assert perishable.sum() > 20
    assert (p.filter(perishable)[S.SHELF_LIFE_DAYS] > 0).all()
    assert p.filter(~perishable)[S.SHELF_LIFE_DAYS].null_count() == (~perishable).sum()
    assert (p[S.UNIT_COST] < p[S.UNIT_PRICE]).mean() > 0.95  # type: ignore[operator]
    assert (p[S.SALVAGE_VALUE] < p[S.UNIT_COST]).all() and (p[S.SALVAGE_VALUE] >= 0).all()
    assert (p[S.CASE_PACK] >= 1).all() and (p[S.MOQ] % p[S.CASE_PACK] == 0).all()
    assert (p[S.VOLUME_M3] > 0).all() and p[S.TITLE].n_unique() > 300
    assert p[S.CATEGORY].n_unique() == len(catalog.CATEGORIES)
    assert 0 < p[S.DESCRIPTION].null_count() < 0.15 * p.height


def test_title_words_match_hidden_profiles() -> None:
    cat = catalog.sample_catalog(DataConfig(n_skus=3000), START, np.random.default_rng(0))
    titles = cat.products[S.TITLE].to_list()
    for word, profile in (
        ("Winter", "winter"),
        ("Summer", "summer"),
        ("Christmas", "christmas"),
        ("Swimsuit", "summer"),
    ):
        hits = [i for i, t in enumerate(titles) if word in t]
        assert len(hits) > 10
        assert {catalog.PROFILES[cat.profile[i]].name for i in hits} == {profile}


def test_calendar_events(small: tuple[str, dict[str, int], dict[str, pl.DataFrame]]) -> None:
    cal = small[2]["calendar"]
    assert cal.height == DAYS * len(events.REGIONS) and set(cal[S.REGION]) == set(events.REGION_NAMES)

    def name(day: str, region: str) -> str | None:
        row = cal.filter(pl.col(S.DATE) == dt.date.fromisoformat(day), pl.col(S.REGION) == region)
        return row[S.EVENT_NAME].item()

    assert name("2024-02-10", "east_asia") == "Chinese New Year"
    assert name("2025-01-29", "east_asia") == "Chinese New Year"
    assert name("2024-11-11", "east_asia") == "Singles' Day 11.11"
    assert name("2024-06-18", "east_asia") == "618 Mid-Year Festival"
    assert name("2024-11-29", "north_america") == "Black Friday"
    assert name("2024-12-02", "north_america") == "Cyber Monday"
    assert name("2024-07-09", "north_america") == name("2024-07-10", "north_america") == "Mid-July Mega Sale"
    assert name("2024-12-25", "europe") == "Christmas" and name("2024-03-05", "europe") is None
    assert set(cal[S.EVENT_TYPE].drop_nulls()) == set(S.EVENT_TYPES)
    hol = cal.filter(pl.col(S.IS_HOLIDAY))
    assert hol.filter(pl.col(S.DATE) == dt.date(2024, 12, 25))[S.REGION].to_list() == sorted(
        ["europe", "north_america", "oceania", "south_america"]
    )
    snap = cal.filter(pl.col(S.SNAP))
    assert set(snap[S.REGION]) == {"north_america", "south_america"}
    assert set(snap.filter(pl.col(S.REGION) == "north_america")[S.DATE].dt.day()) == set(range(1, 11))


def test_lunar_new_year_table_and_horizon_check(tmp_path: Path) -> None:
    known = {
        2015: "2015-02-19",
        2020: "2020-01-25",
        2023: "2023-01-22",
        2033: "2033-01-31",
        2040: "2040-02-12",
    }
    for year, day in known.items():
        assert events.lunar_new_year(year) == dt.date.fromisoformat(day)
    assert all(dt.date(y, 1, 21) <= events.lunar_new_year(y) <= dt.date(y, 2, 20) for y in range(2000, 2050))
    assert events.easter(2024) == dt.date(2024, 3, 31) and events.easter(2025) == dt.date(2025, 4, 20)
    with pytest.raises(ConfigError, match="lunar-new-year"):
        events.lunar_new_year(1999)
    with pytest.raises(ConfigError, match=r"data\.start_date"):
        generate_marketplace(
            DataConfig(n_skus=2, n_warehouses=1, days=30, start_date="1990-01-01"), str(tmp_path), 0
        )
    assert not (tmp_path / "sales").exists()
