"""Dataset validation: one test per rule, fail mode writes nothing, quarantine and gap filling."""

from __future__ import annotations

import calendar
import datetime as dt
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from inventory_scale import schema as S
from inventory_scale.config import ValidateConfig
from inventory_scale.data import io
from inventory_scale.data.planned import check_planned
from inventory_scale.data.validate import ValidationReport, validate_dataset
from inventory_scale.errors import ConfigError, DataQualityError, SchemaError

START = dt.date(2024, 1, 1)
DAYS = 60
SKUS = ("A1", "A2", "A3")
WAREHOUSES = ("W1", "W2")
FAIL = ValidateConfig()
QUARANTINE = ValidateConfig(mode="quarantine")

Frames = dict[str, pl.DataFrame]


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


def build_frames(dates: list[dt.date] | None = None) -> Frames:
    """A valid dataset: 3 SKUs x 2 warehouses x 60 daily dates (or the given dates)."""
    dates = dates or [day(i) for i in range(DAYS)]
    sales = [
        (sku, wh, d, float((k + i) % 5), 10.0 + k, i % 10 == 0, i % 17 != 0)
        for k, sku in enumerate(SKUS)
        for wh in WAREHOUSES
        for i, d in enumerate(dates)
    ]
    products = [
        (
            sku,
            "toys",
            "blocks",
            f"title {sku}",
            None if k else "desc",
            4.0 + k,
            10.0 + k,
            1.0,
            [None, 30, None][k],
            6,
            1,
            0.01,
            START,
        )
        for k, sku in enumerate(SKUS)
    ]
    inventory = [(sku, wh, 20.0, 5.0, 7.0, 2.0, 7, 0.2, 1.5) for sku in SKUS for wh in WAREHOUSES]
    calendar = [(d, reg, None, None, False, False) for d in dates for reg in ("EU", "US")]
    return {
        S.SALES.name: pl.DataFrame(sales, schema=S.SALES.schema, orient="row"),
        S.PRODUCTS.name: pl.DataFrame(products, schema=S.PRODUCTS.schema, orient="row"),
        S.WAREHOUSES.name: pl.DataFrame(
            [("W1", "EU", 1e4, 5e4), ("W2", "US", 2e4, 6e4)], schema=S.WAREHOUSES.schema, orient="row"
        ),
        S.INVENTORY.name: pl.DataFrame(inventory, schema=S.INVENTORY.schema, orient="row"),
        S.INBOUND.name: pl.DataFrame(
            [("A1", "W1", day(DAYS + 3), 12.0)], schema=S.INBOUND.schema, orient="row"
        ),
        S.CALENDAR.name: pl.DataFrame(calendar, schema=S.CALENDAR.schema, orient="row"),
    }


def write(root: Path, frames: Frames) -> Path:
    for name, frame in frames.items():
        io.write_table(frame, str(root), S.table_spec(name))
    return root


@pytest.fixture
def frames() -> Frames:
    return build_frames()


@pytest.fixture
def root(tmp_path: Path, frames: Frames) -> Path:
    return write(tmp_path / "data", frames)


def sales_file(root: Path, wh: str) -> str:
    return str(root / S.SALES.name / f"{S.WAREHOUSE_ID}={wh}" / "part-00000.parquet")


def table_file(root: Path, spec: S.TableSpec) -> str:
    return str(root / spec.name / "part-00000.parquet")


def update(frame: pl.DataFrame, where: pl.Expr, **values: object) -> pl.DataFrame:
    """Set columns to values on the rows matching ``where``."""
    return frame.with_columns(
        [
            pl.when(where).then(pl.lit(v, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c)
            for c, v in values.items()
        ]
    )


def series(sku: str, wh: str) -> pl.Expr:
    return (pl.col(S.SKU_ID) == sku) & (pl.col(S.WAREHOUSE_ID) == wh)


def at(sku: str, wh: str, i: int) -> pl.Expr:
    return series(sku, wh) & (pl.col(S.DATE) == day(i))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))
    }


def fails(
    root: Path,
    exc: type[Exception],
    *parts: str,
    cfg: ValidateConfig = FAIL,
    freq: str | None = None,
    cutoff: dt.date | None = None,
) -> str:
    """Validate, expect ``exc`` whose message holds every part, and check nothing was written."""
    before = snapshot(root)
    with pytest.raises(exc) as info:
        validate_dataset(str(root), cfg, freq=freq, cutoff=cutoff)
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    assert snapshot(root) == before
    return message


def read(root: Path, spec: S.TableSpec) -> pl.DataFrame:
    return io.read_table(str(root), spec).sort(spec.key)


def read_rejected(root: Path, spec: S.TableSpec) -> pl.DataFrame:
    return pl.read_parquet(root / "rejected" / spec.name).sort([*spec.key, S.REJECT_REASON])


# --- a clean dataset ------------------------------------------------------------------------------


def test_clean_dataset_validates_and_writes_nothing(root: Path) -> None:
    before = snapshot(root)
    report = validate_dataset(str(root), FAIL, freq="1d", cutoff=day(DAYS - 1))
    assert report.ok
    assert report.rows == {
        "sales": 360,
        "products": 3,
        "warehouses": 2,
        "inventory": 6,
        "inbound": 1,
        "calendar": 120,
    }
    assert report.tables == ["sales", "products", "warehouses", "inventory", "inbound", "calendar"]
    assert (report.frequency, report.series, report.warnings, report.quarantined) == ("1d", 6, [], {})
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True
    assert snapshot(root) == before


def test_truth_is_schema_checked_when_present(root: Path, frames: Frames) -> None:
    truth = frames["sales"].select(
        S.SKU_ID, S.WAREHOUSE_ID, S.DATE, pl.col(S.UNITS_SOLD).alias(S.DEMAND_MEAN)
    )
    io.write_table(truth.with_columns(pl.col(S.DEMAND_MEAN).alias(S.DEMAND)), str(root), S.TRUTH)
    assert validate_dataset(str(root), FAIL).rows["truth"] == 360
    pq.write_table(truth.to_arrow(), sales_file(root, "W1").replace("sales", "truth"))
    fails(root, SchemaError, "truth", "warehouse_id=W1", f"column '{S.DEMAND}': missing")


def test_unsorted_unpartitioned_sales_under_a_root_with_equals_sign(tmp_path: Path, frames: Frames) -> None:
    root = write(tmp_path / "run=1" / "data", {k: v for k, v in frames.items() if k != "sales"})
    (root / "sales").mkdir()
    pq.write_table(
        frames["sales"].sample(fraction=1.0, shuffle=True, seed=1).to_arrow(), root / "sales" / "all.parquet"
    )
    report = validate_dataset(str(root), FAIL)
    assert report.ok and report.rows["sales"] == 360 and report.frequency == "1d"


def test_integer_and_float_widths_may_differ(root: Path, frames: Frames) -> None:
    wide = frames["products"].with_columns(
        pl.col(S.SHELF_LIFE_DAYS, S.CASE_PACK).cast(pl.Int64), pl.col(S.UNIT_COST).cast(pl.Float64)
    )
    pq.write_table(wide.to_arrow(), table_file(root, S.PRODUCTS))
    narrow = frames["warehouses"].with_columns(pl.col(S.BUDGET).cast(pl.Float32))
    pq.write_table(narrow.to_arrow(), table_file(root, S.WAREHOUSES))
    assert validate_dataset(str(root), FAIL).ok


# --- 1, 2, 14: schema -----------------------------------------------------------------------------


def test_missing_column_names_file_and_column(root: Path, frames: Frames) -> None:
    w2 = frames["sales"].filter(pl.col(S.WAREHOUSE_ID) == "W2").drop(S.WAREHOUSE_ID, S.PRICE)
    pq.write_table(w2.to_arrow(), sales_file(root, "W2"))
    fails(root, SchemaError, sales_file(root, "W2"), f"column '{S.PRICE}': missing from the file")


def test_wrong_dtype_names_file_column_expected_and_found(root: Path, frames: Frames) -> None:
    bad = frames["products"].with_columns(pl.col(S.UNIT_COST).cast(pl.String))
    pq.write_table(bad.to_arrow(), table_file(root, S.PRODUCTS))
    msg = fails(root, SchemaError, table_file(root, S.PRODUCTS), f"column '{S.UNIT_COST}': wrong dtype")
    assert "expected Float32" in msg and "found large_string" in msg


def test_date_written_as_timestamp_is_a_wrong_dtype(root: Path, frames: Frames) -> None:
    bad = frames["calendar"].with_columns(pl.col(S.DATE).cast(pl.Datetime("us")))
    pq.write_table(bad.to_arrow(), table_file(root, S.CALENDAR))
    fails(
        root,
        SchemaError,
        table_file(root, S.CALENDAR),
        f"column '{S.DATE}'",
        "expected Date",
        "timestamp[us]",
    )


@pytest.mark.parametrize("content", [b"this is not parquet", b"PAR1\x00\x00garbage"])
def test_corrupt_or_non_parquet_file_is_named(root: Path, content: bytes) -> None:
    bad = Path(sales_file(root, "W1")).with_name("part-00001.parquet")
    bad.write_bytes(content)
    fails(root, SchemaError, str(bad), "not a readable Parquet file")


def test_value_too_wide_for_the_spec_names_the_file(root: Path, frames: Frames) -> None:
    wide = frames["products"].with_columns(pl.col(S.SHELF_LIFE_DAYS).cast(pl.Int64).fill_null(2**40))
    pq.write_table(wide.to_arrow(), table_file(root, S.PRODUCTS))
    fails(root, SchemaError, table_file(root, S.PRODUCTS), "cannot read the table", S.SHELF_LIFE_DAYS)


def test_extra_columns_warn_and_quarantine_drops_them(root: Path, frames: Frames) -> None:
    extra = update(frames["products"], pl.col(S.SKU_ID) == "A1", **{S.MOQ: -1}).with_columns(
        pl.lit(1).alias("x")
    )
    pq.write_table(extra.to_arrow(), table_file(root, S.PRODUCTS))
    report = validate_dataset(str(root), QUARANTINE)
    assert report.warnings == [f"products ({root / 'products'}): extra columns ignored: x"]
    assert read(root, S.PRODUCTS).columns == S.PRODUCTS.columns
    assert read_rejected(root, S.PRODUCTS).get_column(S.REJECT_REASON).to_list() == ["negative:moq"]


# --- 13: empty dataset ----------------------------------------------------------------------------


def test_empty_dataset_fails(tmp_path: Path, frames: Frames) -> None:
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", DataQualityError, "empty dataset")
    root = write(tmp_path / "data", {**frames, "sales": frames["sales"].head(0)})  # an empty folder
    fails(root, DataQualityError, "empty dataset", str(root / "sales"))
    pq.write_table(frames["sales"].head(0).to_arrow(), root / "sales" / "part-00000.parquet")
    fails(root, DataQualityError, "empty dataset", "the sales table has no rows")


def test_missing_table_fails(root: Path) -> None:
    io.remove(str(root / S.INVENTORY.name))
    fails(root, SchemaError, str(root / S.INVENTORY.name), "table folder missing")


# --- 3, 4, 9, 11, 12: value rules -----------------------------------------------------------------


def test_negative_units_sold_names_file_column_count_and_keys(root: Path, frames: Frames) -> None:
    bad = update(
        frames["sales"], (pl.col(S.WAREHOUSE_ID) == "W1") & (pl.col(S.DATE) < day(7)), **{S.UNITS_SOLD: -1.0}
    )
    write(root, {"sales": bad})
    msg = fails(
        root, DataQualityError, sales_file(root, "W1"), f"column '{S.UNITS_SOLD}'", "21 rows are negative"
    )
    assert "keys (sku_id, warehouse_id, date): (A1, W1, 2024-01-01)" in msg and msg.endswith(", ...")


def test_null_key_and_null_value(root: Path, frames: Frames) -> None:
    bad = update(frames["sales"], at("A2", "W2", 3), **{S.SKU_ID: None})
    bad = update(bad, at("A3", "W2", 4), **{S.PRICE: None})
    write(root, {"sales": bad})
    msg = fails(
        root,
        DataQualityError,
        sales_file(root, "W2"),
        f"column '{S.SKU_ID}': 1 row is null",
        "(None, W2, 2024-01-04)",
    )
    assert (
        f"column '{S.PRICE}': 1 row is null or NaN; keys (sku_id, warehouse_id, date): (A3, W2, 2024-01-05)"
        in msg
    )


def test_negative_prices_and_costs(root: Path, frames: Frames) -> None:
    write(root, {"sales": update(frames["sales"], at("A1", "W2", 9), **{S.PRICE: -2.0})})
    fails(
        root,
        DataQualityError,
        sales_file(root, "W2"),
        f"column '{S.PRICE}': 1 row is negative",
        "(A1, W2, 2024-01-10)",
    )


@pytest.mark.parametrize("column", [S.UNIT_COST, S.UNIT_PRICE, S.SALVAGE_VALUE])
def test_negative_product_money_columns(root: Path, frames: Frames, column: str) -> None:
    write(root, {"products": update(frames["products"], pl.col(S.SKU_ID) == "A2", **{column: -0.5})})
    fails(
        root,
        DataQualityError,
        table_file(root, S.PRODUCTS),
        f"column '{column}': 1 row is negative",
        "keys (sku_id): A2",
    )


@pytest.mark.parametrize("lead_time", [0.0, -3.0])
def test_non_positive_lead_time(root: Path, frames: Frames, lead_time: float) -> None:
    write(
        root,
        {"inventory": update(frames["inventory"], pl.col(S.SKU_ID) == "A1", **{S.LEAD_TIME_DAYS: lead_time})},
    )
    fails(
        root,
        DataQualityError,
        table_file(root, S.INVENTORY),
        f"column '{S.LEAD_TIME_DAYS}': 2 rows are zero or negative",
        "keys (sku_id, warehouse_id): (A1, W1), (A1, W2)",
    )


def test_non_positive_shelf_life_fails_but_null_is_fine(root: Path, frames: Frames) -> None:
    assert frames["products"].get_column(S.SHELF_LIFE_DAYS).null_count() == 2  # the fixture validates clean
    write(root, {"products": update(frames["products"], pl.col(S.SKU_ID) == "A2", **{S.SHELF_LIFE_DAYS: 0})})
    fails(
        root,
        DataQualityError,
        table_file(root, S.PRODUCTS),
        f"column '{S.SHELF_LIFE_DAYS}': 1 row is zero or negative",
        "A2",
    )


def test_price_below_cost_is_a_warning(root: Path, frames: Frames) -> None:
    write(root, {"products": update(frames["products"], pl.col(S.SKU_ID) == "A3", **{S.UNIT_PRICE: 3.0})})
    report = validate_dataset(str(root), FAIL)
    assert report.ok
    assert report.warnings == [
        f"products ({table_file(root, S.PRODUCTS)}): column 'unit_price': "
        "1 row is below unit_cost (sold at a loss); keys (sku_id): A3"
    ]


# --- 5: duplicates --------------------------------------------------------------------------------


@pytest.mark.parametrize("adjacent", [False, True])
def test_duplicate_sales_key(root: Path, frames: Frames, adjacent: bool) -> None:
    sales, twice = frames["sales"], at("A1", "W1", 9) | at("A2", "W1", 9)
    if adjacent:  # the file stays sorted, but not strictly
        sales = pl.concat([sales, sales.filter(twice)]).sort(S.SALES.key)
    else:
        sales = pl.concat([sales, sales.filter(twice)])
    write(root, {"sales": sales})
    fails(
        root,
        DataQualityError,
        sales_file(root, "W1"),
        "column 'sku_id, warehouse_id, date': 2 rows are duplicated",
        "(A1, W1, 2024-01-10), (A2, W1, 2024-01-10)",
    )


def test_duplicate_sales_key_across_files(root: Path, frames: Frames) -> None:
    extra = frames["sales"].filter(at("A3", "W2", 0)).drop(S.WAREHOUSE_ID)
    other = Path(sales_file(root, "W2")).with_name("part-00001.parquet")
    pq.write_table(extra.to_arrow(), other)
    fails(root, DataQualityError, str(other), "1 row is duplicated", "(A3, W2, 2024-01-01)")


@pytest.mark.parametrize("spec", [S.PRODUCTS, S.WAREHOUSES, S.INVENTORY, S.CALENDAR])
def test_duplicate_keys_in_other_tables(root: Path, frames: Frames, spec: S.TableSpec) -> None:
    frame = frames[spec.name]
    write(root, {spec.name: pl.concat([frame, frame.tail(1)])})
    key = frame.tail(1).select(spec.key).row(0)
    shown = str(key[0]) if len(key) == 1 else "(" + ", ".join(map(str, key)) + ")"
    fails(root, DataQualityError, table_file(root, spec), "1 row is duplicated", shown)


# --- 7, 8: references -----------------------------------------------------------------------------


def test_sales_for_unknown_sku(root: Path, frames: Frames) -> None:
    ghost = frames["sales"].filter(pl.col(S.SKU_ID) == "A1").with_columns(pl.lit("ZZ").alias(S.SKU_ID))
    write(root, {"sales": pl.concat([frames["sales"], ghost])})
    msg = fails(
        root,
        DataQualityError,
        "sales (",
        f"column '{S.SKU_ID}': 120 rows are not in products",
        "(ZZ, W1, 2024-01-01)",
    )
    assert sales_file(root, "W1") in msg or sales_file(root, "W2") in msg


def test_inventory_for_unknown_warehouse(root: Path, frames: Frames) -> None:
    write(root, {"inventory": update(frames["inventory"], series("A2", "W2"), **{S.WAREHOUSE_ID: "W9"})})
    fails(
        root,
        DataQualityError,
        table_file(root, S.INVENTORY),
        f"column '{S.WAREHOUSE_ID}': 1 row is not in warehouses",
        "(A2, W9)",
    )


# --- 16: cutoff -----------------------------------------------------------------------------------


def test_sales_after_cutoff(root: Path) -> None:
    fails(
        root,
        DataQualityError,
        "sales (",
        f"column '{S.DATE}': 12 rows are after the cutoff 2024-02-27",
        "(A1, W1, 2024-02-28)",
        cutoff=day(DAYS - 3),
    )


# --- 6: gaps --------------------------------------------------------------------------------------


def with_gap(frames: Frames) -> pl.DataFrame:
    """Sales with days 10-12 missing from (A2, W1) and day 30 from (A3, W2)."""
    gone = at("A3", "W2", 30)
    for i in (10, 11, 12):
        gone = gone | at("A2", "W1", i)
    return frames["sales"].filter(~gone)


def test_gaps_fail_naming_series_and_count(root: Path, frames: Frames) -> None:
    write(root, {"sales": with_gap(frames)})
    fails(
        root,
        DataQualityError,
        sales_file(root, "W1"),
        f"column '{S.DATE}': 4 dates are missing",
        "in 2 series",
        "(A2, W1): 3 missing, (A3, W2): 1 missing",
    )


def test_fill_gaps_inserts_rows_and_rewrites_sales(root: Path, frames: Frames) -> None:
    write(root, {"sales": with_gap(frames)})
    report = validate_dataset(str(root), ValidateConfig(fill_gaps=True))
    assert (report.gaps_filled, report.gap_series, report.ok, report.rewritten) == (4, 2, False, ["sales"])
    after = read(root, S.SALES)
    assert after.height == 360
    filled = after.join(with_gap(frames), on=list(S.SALES.key), how="anti").sort(S.SALES.key)
    rows = [("A2", "W1", day(i), 11.0) for i in (10, 11, 12)] + [("A3", "W2", day(30), 12.0)]
    expected = pl.DataFrame(
        [(sku, wh, d, 0.0, price, False, True) for sku, wh, d, price in rows],
        schema=S.SALES.schema,
        orient="row",
    )
    assert filled.select(S.SALES.columns).equals(expected)
    assert validate_dataset(str(root), FAIL).ok


def test_fill_gaps_in_a_month_end_table(tmp_path: Path) -> None:
    frames = build_frames([dt.date(2023, m, calendar.monthrange(2023, m)[1]) for m in range(1, 13)])
    frames["sales"] = frames["sales"].filter(pl.col(S.DATE) != dt.date(2023, 2, 28))
    root = write(tmp_path / "data", frames)
    report = validate_dataset(str(root), ValidateConfig(fill_gaps=True), freq="1mo")
    assert (report.frequency, report.gaps_filled) == ("1mo", 6)
    assert read(root, S.SALES).filter(pl.col(S.DATE) == dt.date(2023, 2, 28)).height == 6


# --- 15: frequencies ------------------------------------------------------------------------------


@pytest.mark.parametrize(("step", "freq"), [(7, "1w"), (None, "1mo")])
def test_weekly_and_monthly_tables_validate(tmp_path: Path, step: int | None, freq: str) -> None:
    dates = [day(7 * i) for i in range(20)] if step else [dt.date(2023, m, 1) for m in range(1, 13)]
    report = validate_dataset(str(write(tmp_path / "d", build_frames(dates))), FAIL, freq=freq)
    assert report.ok and report.frequency == freq


def test_mixed_frequencies_fail_with_counts_and_examples(root: Path, frames: Frames) -> None:
    weekly = (pl.col(S.SKU_ID) == "A3") & (pl.col(S.WAREHOUSE_ID) == "W2")
    sales = frames["sales"].filter(~weekly | ((pl.col(S.DATE) - START).dt.total_days() % 7 == 0))
    write(root, {"sales": sales})
    for cfg in (FAIL, ValidateConfig(mode="quarantine", fill_gaps=True)):  # table-level: quarantine fails too
        fails(
            root,
            DataQualityError,
            str(root / "sales"),
            "mix frequencies",
            "1d: 5 series",
            "1w: 1 series, e.g. (A3, W2)",
            cfg=cfg,
        )


def test_frequency_other_than_expected_fails(root: Path) -> None:
    fails(root, DataQualityError, "table frequency is 1d, expected 1w", "6 series", freq="1w")
    with pytest.raises(ConfigError, match="freq"):
        validate_dataset(str(root), FAIL, freq="1h")


# --- fail mode writes nothing ---------------------------------------------------------------------

CORRUPTIONS: dict[str, Callable[[Frames], Frames]] = {
    "negative": lambda f: {"sales": update(f["sales"], at("A1", "W1", 5), **{S.UNITS_SOLD: -1.0})},
    "unknown warehouse": lambda f: {
        "inventory": update(f["inventory"], pl.col(S.SKU_ID) == "A1", **{S.WAREHOUSE_ID: "W7"})
    },
    "gap": lambda f: {"sales": with_gap(f)},
}


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_failed_validation_leaves_the_dataset_untouched(root: Path, frames: Frames, name: str) -> None:
    write(root, CORRUPTIONS[name](frames))
    fails(root, DataQualityError)


# --- quarantine -----------------------------------------------------------------------------------


def test_quarantine_moves_bad_rows_and_the_result_validates(root: Path, frames: Frames) -> None:
    sales = update(frames["sales"], at("A1", "W1", DAYS - 1), **{S.UNITS_SOLD: -4.0})  # last date: no gap
    ghost = (
        frames["sales"]
        .filter(at("A1", "W2", 0) | at("A1", "W2", 1))
        .with_columns(pl.lit("ZZ").alias(S.SKU_ID))
    )
    sales = pl.concat([sales, ghost, sales.filter(at("A2", "W2", 5))])  # + a duplicate row
    products = update(
        frames["products"], pl.col(S.SKU_ID) == "A3", **{S.UNIT_COST: -1.0}
    )  # cascades to sales
    inventory = update(frames["inventory"], series("A2", "W1"), **{S.WAREHOUSE_ID: "W9"})
    write(root, {"sales": sales, "products": products, "inventory": inventory})

    report = validate_dataset(str(root), QUARANTINE, cutoff=day(DAYS - 1))
    assert report.quarantined == {
        "products": {"negative:unit_cost": 1},
        "sales": {"duplicate:key": 1, "negative:units_sold": 1, "unknown:sku_id": 122},
        "inventory": {"unknown:sku_id": 2, "unknown:warehouse_id": 1},
    }
    assert not report.ok and set(report.rewritten) == {
        "rejected/products",
        "rejected/sales",
        "rejected/inventory",
        "products",
        "sales",
        "inventory",
    }
    rejected = read_rejected(root, S.SALES)
    assert rejected.columns == [*S.SALES.columns, S.REJECT_REASON]
    assert rejected.filter(pl.col(S.REJECT_REASON) == "negative:units_sold").select(S.SALES.key).rows() == [
        ("A1", "W1", day(DAYS - 1))
    ]
    assert rejected.filter(pl.col(S.REJECT_REASON) == "duplicate:key").select(S.SALES.key).rows() == [
        ("A2", "W2", day(5))
    ]
    assert set(rejected.filter(pl.col(S.REJECT_REASON) == "unknown:sku_id").get_column(S.SKU_ID)) == {
        "A3",
        "ZZ",
    }
    assert read_rejected(root, S.INVENTORY).select(S.SKU_ID, S.WAREHOUSE_ID, S.REJECT_REASON).rows() == [
        ("A2", "W9", "unknown:warehouse_id"), ("A3", "W1", "unknown:sku_id"), ("A3", "W2", "unknown:sku_id")
    ]  # fmt: skip
    kept = read(root, S.SALES)
    expected = frames["sales"].filter(~at("A1", "W1", DAYS - 1) & (pl.col(S.SKU_ID) != "A3"))
    assert kept.equals(expected.sort(S.SALES.key))
    assert read(root, S.PRODUCTS).get_column(S.SKU_ID).to_list() == ["A1", "A2"]
    assert read(root, S.INVENTORY).height == 3
    again = validate_dataset(str(root), FAIL, cutoff=day(DAYS - 1))
    assert again.ok and again.rows["sales"] == 239


def test_quarantine_gap_needs_fill_gaps(root: Path, frames: Frames) -> None:
    write(root, {"sales": update(frames["sales"], at("A2", "W1", 20), **{S.UNITS_SOLD: -1.0})})
    fails(root, DataQualityError, "(A2, W1): 1 missing", "1 row(s) would be quarantined", cfg=QUARANTINE)
    report = validate_dataset(str(root), ValidateConfig(mode="quarantine", fill_gaps=True))
    assert report.quarantined == {"sales": {"negative:units_sold": 1}} and report.gaps_filled == 1
    row = read(root, S.SALES).filter(at("A2", "W1", 20))
    assert row.select(S.UNITS_SOLD, S.PRICE, S.ON_PROMOTION, S.IN_STOCK).row(0) == (0.0, 11.0, False, True)
    assert read_rejected(root, S.SALES).get_column(S.UNITS_SOLD).to_list() == [-1.0]
    assert validate_dataset(str(root), FAIL).ok


def test_quarantine_keeps_earlier_rejects(root: Path, frames: Frames) -> None:
    for i in (DAYS - 1, DAYS - 2):  # each run rejects the then-last date of (A1, W1)
        write(root, {"sales": update(read(root, S.SALES), at("A1", "W1", i), **{S.PRICE: -1.0})})
        validate_dataset(str(root), QUARANTINE)
    assert read_rejected(root, S.SALES).get_column(S.DATE).to_list() == [day(DAYS - 2), day(DAYS - 1)]


def test_quarantine_that_would_empty_sales_fails(root: Path) -> None:
    fails(
        root, DataQualityError, "empty dataset: no sales row passes the rules", cfg=QUARANTINE, cutoff=day(-1)
    )


def test_quarantine_still_fails_on_table_level_problems(root: Path, frames: Frames) -> None:
    pq.write_table(frames["products"].drop(S.MOQ).to_arrow(), table_file(root, S.PRODUCTS))
    fails(root, SchemaError, f"column '{S.MOQ}': missing", cfg=QUARANTINE)


# --- optional planned_prices ----------------------------------------------------------------------

PLAN_DAYS = 7


def build_plan() -> pl.DataFrame:
    """Planned rows for every series on the 7 days after the sales: days 0, 3, 6 have a null price
    (keep the last one), days 2 and 5 a null on_promotion."""
    rows = [
        (sku, wh, day(DAYS + i), None if i % 3 == 0 else 9.0 + k, [True, False, None][i % 3])
        for k, sku in enumerate(SKUS)
        for wh in WAREHOUSES
        for i in range(PLAN_DAYS)
    ]
    return pl.DataFrame(rows, schema=S.PLANNED_PRICES.schema, orient="row")


def planned_at(sku: str, wh: str, i: int) -> pl.Expr:
    return at(sku, wh, DAYS + i)


def broken_plan() -> pl.DataFrame:
    """The plan with a zero and a negative price, a repeated key (price 99) and an unknown SKU."""
    plan = update(build_plan(), planned_at("A1", "W1", 1), **{S.PRICE: 0.0})
    plan = update(plan, planned_at("A2", "W2", 2), **{S.PRICE: -1.0})
    repeat = plan.filter(planned_at("A3", "W1", 4)).with_columns(pl.lit(99.0, pl.Float32).alias(S.PRICE))
    ghost = pl.DataFrame(
        [("ZZ", "W1", day(DAYS + 1), 5.0, None)], schema=S.PLANNED_PRICES.schema, orient="row"
    )
    return pl.concat([plan, repeat, ghost])


def test_clean_planned_prices_validate_and_stay_unchanged(root: Path) -> None:
    plan = build_plan()
    assert plan.get_column(S.PRICE).null_count() == 18 and plan.get_column(S.ON_PROMOTION).null_count() == 12
    write(root, {S.PLANNED_PRICES.name: plan})
    before = snapshot(root)
    for cfg in (FAIL, QUARANTINE):  # future dates: the sales cutoff rule does not apply
        report = validate_dataset(str(root), cfg, freq="1d", cutoff=day(DAYS - 1))
        assert report.ok and (report.quarantined, report.rewritten, report.warnings) == ({}, [], [])
        assert report.rows[S.PLANNED_PRICES.name] == 42 and S.PLANNED_PRICES.name in report.tables
    assert snapshot(root) == before
    assert read(root, S.PLANNED_PRICES).equals(plan.sort(S.PLANNED_PRICES.key))


def test_null_price_is_accepted_but_nan_is_not(root: Path) -> None:
    only_nulls = update(build_plan(), pl.lit(True), **{S.PRICE: None, S.ON_PROMOTION: None})
    write(root, {S.PLANNED_PRICES.name: only_nulls})
    report = validate_dataset(str(root), FAIL)
    assert report.ok and report.rows[S.PLANNED_PRICES.name] == 42
    check_planned(read(root, S.PLANNED_PRICES), str(root / S.PLANNED_PRICES.name))  # read agrees
    write(
        root,
        {S.PLANNED_PRICES.name: update(only_nulls, planned_at("A2", "W1", 3), **{S.PRICE: float("nan")})},
    )
    fails(
        root,
        DataQualityError,
        f"planned_prices ({table_file(root, S.PLANNED_PRICES)}): column '{S.PRICE}': 1 row is NaN",
        "(A2, W1, 2024-03-04)",
    )


def test_planned_prices_broken_rules_fail_in_one_error(root: Path) -> None:
    write(root, {S.PLANNED_PRICES.name: broken_plan()})
    where = f"planned_prices ({table_file(root, S.PLANNED_PRICES)})"
    keys = "keys (sku_id, warehouse_id, date)"
    msg = fails(
        root,
        DataQualityError,
        "3 rule(s) broken",
        f"{where}: column '{S.PRICE}': 2 rows are zero or negative; {keys}: "
        "(A1, W1, 2024-03-02), (A2, W2, 2024-03-03)",
        f"{where}: column '{S.SKU_ID}': 1 row is not in products; {keys}: (ZZ, W1, 2024-03-02)",
        f"{where}: column 'sku_id, warehouse_id, date': 1 row is duplicated (an earlier row has the same "
        f"key); {keys}: (A3, W1, 2024-03-05)",
        cutoff=day(DAYS - 1),
    )
    assert "cutoff" not in msg and "sales (" not in msg


def test_planned_prices_quarantine_moves_exactly_the_bad_rows(root: Path) -> None:
    write(root, {S.PLANNED_PRICES.name: broken_plan()})
    report = validate_dataset(str(root), QUARANTINE, cutoff=day(DAYS - 1))
    assert report.rows[S.PLANNED_PRICES.name] == 44
    assert report.quarantined == {
        S.PLANNED_PRICES.name: {"duplicate:key": 1, "non_positive:price": 2, "unknown:sku_id": 1}
    }
    assert report.rewritten == ["rejected/planned_prices", "planned_prices"]
    rejected = read_rejected(root, S.PLANNED_PRICES)
    assert rejected.columns == [*S.PLANNED_PRICES.columns, S.REJECT_REASON]
    assert rejected.select(S.SKU_ID, S.WAREHOUSE_ID, S.DATE, S.PRICE, S.REJECT_REASON).rows() == [
        ("A1", "W1", day(DAYS + 1), 0.0, "non_positive:price"),
        ("A2", "W2", day(DAYS + 2), -1.0, "non_positive:price"),
        ("A3", "W1", day(DAYS + 4), 99.0, "duplicate:key"),
        ("ZZ", "W1", day(DAYS + 1), 5.0, "unknown:sku_id"),
    ]
    kept = read(root, S.PLANNED_PRICES)
    expected = build_plan().filter(~planned_at("A1", "W1", 1) & ~planned_at("A2", "W2", 2))
    assert kept.height == 40 and kept.equals(expected.sort(S.PLANNED_PRICES.key))  # first of the repeat kept
    assert kept.filter(planned_at("A3", "W1", 4)).get_column(S.PRICE).to_list() == [11.0]
    check_planned(kept, str(root / S.PLANNED_PRICES.name))
    assert not (root / "rejected" / S.SALES.name).exists() and read(root, S.SALES).height == 360
    assert validate_dataset(str(root), FAIL, cutoff=day(DAYS - 1)).rows[S.PLANNED_PRICES.name] == 40


def test_planned_prices_of_a_quarantined_product_are_quarantined(root: Path, frames: Frames) -> None:
    products = update(frames["products"], pl.col(S.SKU_ID) == "A1", **{S.CASE_PACK: 0})
    write(root, {"products": products, S.PLANNED_PRICES.name: build_plan()})
    report = validate_dataset(str(root), QUARANTINE)
    assert report.quarantined[S.PLANNED_PRICES.name] == {"unknown:sku_id": 14}
    assert set(read_rejected(root, S.PLANNED_PRICES).get_column(S.SKU_ID)) == {"A1"}
    assert read(root, S.PLANNED_PRICES).equals(build_plan().filter(pl.col(S.SKU_ID) != "A1"))


def test_planned_prices_schema_is_checked_with_width_tolerance(root: Path) -> None:
    wide = build_plan().with_columns(pl.col(S.PRICE).cast(pl.Float64))
    write(root, {S.PLANNED_PRICES.name: build_plan()})
    pq.write_table(wide.to_arrow(), table_file(root, S.PLANNED_PRICES))
    assert validate_dataset(str(root), FAIL).ok
    pq.write_table(wide.drop(S.ON_PROMOTION).to_arrow(), table_file(root, S.PLANNED_PRICES))
    fails(root, SchemaError, table_file(root, S.PLANNED_PRICES), f"column '{S.ON_PROMOTION}': missing")


def test_absent_planned_prices_report_and_write_nothing(root: Path, frames: Frames) -> None:
    (root / S.PLANNED_PRICES.name).mkdir()  # a folder without Parquet files counts as absent
    before = snapshot(root)
    report = validate_dataset(str(root), FAIL, cutoff=day(DAYS - 1))
    assert report.ok and S.PLANNED_PRICES.name not in report.rows and snapshot(root) == before
    write(root, {"sales": update(frames["sales"], at("A1", "W1", DAYS - 1), **{S.PRICE: -1.0})})
    report = validate_dataset(str(root), QUARANTINE)
    assert report.quarantined == {"sales": {"negative:price": 1}} and report.rewritten == [
        "rejected/sales",
        "sales",
    ]
    assert S.PLANNED_PRICES.name not in report.rows
    assert list((root / S.PLANNED_PRICES.name).iterdir()) == []
    assert not (root / "rejected" / S.PLANNED_PRICES.name).exists()


def test_report_is_a_dataclass_with_defaults() -> None:
    report = ValidationReport(root="r", mode="fail")
    assert report.ok and report.to_dict()["tables"] == []


@pytest.fixture
def s3_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A bucket on a local moto server (skipped without moto), credentials in the environment."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1"}
    for k, v in {**env, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(k, v)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="inv")
    try:
        yield "s3://inv/data"
    finally:
        server.stop()


def test_quarantine_on_object_storage(s3_root: str, frames: Frames) -> None:
    bad = update(frames["sales"], at("A2", "W2", DAYS - 1), **{S.PRICE: -1.0})
    for name, frame in {**frames, "sales": bad}.items():
        io.write_table(frame, s3_root, S.table_spec(name))
    with pytest.raises(DataQualityError, match=r"s3://inv/data/sales/warehouse_id=W2/part-00000.parquet"):
        validate_dataset(s3_root, FAIL)
    report = validate_dataset(s3_root, QUARANTINE)
    assert report.quarantined == {"sales": {"negative:price": 1}}
    assert io.read_table(s3_root, S.SALES).height == 359
    assert validate_dataset(s3_root, FAIL).ok
