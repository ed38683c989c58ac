"""Walmart store sales (Kaggle "Walmart Recruiting - Store Sales Forecasting", 2014) mapped into
the data contract.

Files (under ``data.source_dir``): ``walmart_weekly/train.csv.gz`` (Store, Dept, Date,
Weekly_Sales, IsHoliday; 45 stores x departments = 3,331 series, 2010-02-05 .. 2012-10-26),
``walmart_weekly/stores.csv`` (Store, Type, Size; old-Mac ``\\r`` line ends) and
``walmart_weekly/features.csv.gz`` (per store and week, incl. the test weeks up to 2013-07-26).
Frequency ``1w``: dates are the Fridays that end each sales week and are kept as they are.

The data is weekly **dollar** sales, not units: ``units_sold`` holds dollars and ``price`` is
1.0, so every money figure the fill rules derive (cost, salvage, budget) is per dollar of sales.

Mapping rules:

- Series: ``sku_id`` = ``f"D{Dept:02d}"``, ``warehouse_id`` = ``f"S{Store:02d}"``; the store's
  region is its ``Type`` (A, B, C) from stores.csv, the only store grouping the data has.
- Sales: ``units_sold`` = ``Weekly_Sales``. Negative weeks (returns exceeding sales; 1,285 rows)
  follow ``data.negative_sales``: ``clip`` sets them to 0 and logs the count, ``error`` raises.
  Weeks a store-department did not report stay absent (no zeros are invented).
  ``on_promotion`` = False: the MarkDown columns of features.csv are store-wide, anonymised and
  missing before Nov 2011, so they cannot flag one department's promotion. ``in_stock`` = True
  (unknown).
- Products: departments are anonymised: ``category`` = ``subcategory`` = the department id,
  ``title`` = "Walmart department NN", ``unit_price`` = 1.0 (a dollar of sales), not perishable.
- Calendar: one row per (week, store type) over the weeks of train.csv and features.csv (which
  run 39 weeks past the last sale). ``is_holiday`` = ``IsHoliday`` of either file or a week in
  :data:`HOLIDAY_WEEKS`, the competition's list of holiday weeks (Super Bowl, Labor Day,
  Thanksgiving, Christmas), which names the event; ``snap`` = False (no SNAP data). A flagged
  week missing from that list raises :class:`DataQualityError`.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import DataConfig
from inventory_scale.data.sources.base import (
    ITEMS_SCHEMA,
    STORES_SCHEMA,
    SourceDef,
    SourceFrames,
    clip_negative,
    keep_first_series,
    padded_id,
    require_unique,
)
from inventory_scale.errors import DataQualityError, format_keys

log = logging.getLogger(__name__)

TRAIN_FILE = "walmart_weekly/train.csv.gz"
STORES_FILE = "walmart_weekly/stores.csv"
FEATURES_FILE = "walmart_weekly/features.csv.gz"

HOLIDAY_WEEKS: dict[tuple[str, str], tuple[str, ...]] = {
    ("Super Bowl", "sporting"): ("2010-02-12", "2011-02-11", "2012-02-10", "2013-02-08"),
    ("Labor Day", "national"): ("2010-09-10", "2011-09-09", "2012-09-07", "2013-09-06"),
    ("Thanksgiving", "national"): ("2010-11-26", "2011-11-25", "2012-11-23", "2013-11-29"),
    ("Christmas", "national"): ("2010-12-31", "2011-12-30", "2012-12-28", "2013-12-27"),
}
"""Holiday weeks as listed in the competition description, by (event name, event type)."""

_TRAIN_RAW = {
    "Store": pl.Int64,
    "Dept": pl.Int64,
    "Date": pl.String,
    "Weekly_Sales": pl.Float64,
    "IsHoliday": pl.Boolean,
}
_WEEKS_RAW = {"Date": pl.String, "IsHoliday": pl.Boolean}


def _read_train(cfg: DataConfig, path: Path) -> pl.DataFrame:
    """Raw rows of the kept series with contract keys added, negatives handled."""
    lf = (
        pl.scan_csv(path, schema_overrides=_TRAIN_RAW)
        .select(list(_TRAIN_RAW))
        .with_columns(
            padded_id("D", "Dept").alias(S.SKU_ID),
            padded_id("S", "Store").alias(S.WAREHOUSE_ID),
            pl.col("Date").str.to_date("%Y-%m-%d").alias(S.DATE),
        )
    )
    raw = keep_first_series(lf, cfg.max_series).sort(S.SKU_ID, S.WAREHOUSE_ID, S.DATE).collect()
    require_unique(raw, ("Store", "Dept", "Date"), str(path))
    return clip_negative(
        raw, column="Weekly_Sales", keys=("Store", "Dept", "Date"), file=str(path), policy=cfg.negative_sales
    )


def _stores(path: Path, warehouses: pl.Series) -> pl.DataFrame:
    """warehouse_id -> region (store Type) for the kept stores."""
    text = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    table = pl.read_csv(io.BytesIO(text), schema_overrides={"Store": pl.Int64, "Type": pl.String})
    stores = table.select(padded_id("S", "Store").alias(S.WAREHOUSE_ID), pl.col("Type").alias(S.REGION))
    kept = pl.DataFrame(warehouses.unique().sort()).join(stores, on=S.WAREHOUSE_ID, how="left")
    missing = kept.filter(pl.col(S.REGION).is_null())[S.WAREHOUSE_ID]
    if missing.len():
        raise DataQualityError(
            f"{path}: {missing.len()} store(s) of the sales file have no row (no Type): "
            f"{format_keys(missing.to_list())}"
        )
    return kept.select([pl.col(c).cast(t) for c, t in STORES_SCHEMA.items()])


def _items(sales: pl.DataFrame) -> pl.DataFrame:
    """One row per department; anonymised, priced at one dollar."""
    frame = (
        sales.select(S.SKU_ID)
        .unique()
        .sort(S.SKU_ID)
        .with_columns(
            pl.col(S.SKU_ID).alias(S.CATEGORY),
            pl.col(S.SKU_ID).alias(S.SUBCATEGORY),
            pl.format("Walmart department {}", pl.col(S.SKU_ID).str.slice(1)).alias(S.TITLE),
            pl.lit(
                "Anonymised Walmart department (Kaggle store sales forecasting); "
                "its sales are weekly dollars, not units."
            ).alias(S.DESCRIPTION),
            pl.lit(1.0).alias(S.UNIT_PRICE),
            pl.lit(None, pl.Int32).alias(S.SHELF_LIFE_DAYS),
        )
    )
    return frame.select([pl.col(c).cast(t) for c, t in ITEMS_SCHEMA.items()])


def _calendar(train: pl.DataFrame, features: Path, regions: list[str]) -> pl.DataFrame:
    """One row per (week, store type) with the competition's holiday weeks named."""
    events = pl.DataFrame(
        [
            {S.DATE: day, S.EVENT_NAME: name, S.EVENT_TYPE: kind}
            for (name, kind), days in HOLIDAY_WEEKS.items()
            for day in days
        ]
    ).with_columns(pl.col(S.DATE).str.to_date("%Y-%m-%d"))
    feature_weeks = (
        pl.scan_csv(features, schema_overrides=_WEEKS_RAW, null_values="NA")
        .select(pl.col("Date").str.to_date("%Y-%m-%d").alias(S.DATE), "IsHoliday")
        .collect()
    )
    weeks = (
        pl.concat([train.select(S.DATE, "IsHoliday"), feature_weeks])
        .group_by(S.DATE)
        .agg(pl.col("IsHoliday").any())
        .join(events, on=S.DATE, how="left")
    )
    unnamed = weeks.filter(pl.col("IsHoliday") & pl.col(S.EVENT_NAME).is_null())[S.DATE].sort()
    if unnamed.len():
        raise DataQualityError(
            f"{features}: {unnamed.len()} week(s) flagged IsHoliday are not holiday weeks of the "
            f"competition list: {format_keys(unnamed.to_list())}"
        )
    frame = (
        weeks.with_columns(
            (pl.col("IsHoliday") | pl.col(S.EVENT_NAME).is_not_null()).alias(S.IS_HOLIDAY),
            pl.lit(False).alias(S.SNAP),
        )
        .join(pl.DataFrame({S.REGION: regions}), how="cross")
        .sort(S.DATE, S.REGION)
    )
    return S.conform(frame, S.CALENDAR)


def read(cfg: DataConfig, source_dir: Path) -> SourceFrames:
    """Map the Walmart weekly store-department sales into contract frames (rules above).

    Args:
        cfg: data config (``max_series``, ``negative_sales``).
        source_dir: the shared data folder holding ``walmart_weekly/``.
    """
    raw = _read_train(cfg, source_dir / TRAIN_FILE)
    sales = S.conform(
        raw.with_columns(
            pl.col("Weekly_Sales").alias(S.UNITS_SOLD),
            pl.lit(1.0).alias(S.PRICE),
            pl.lit(False).alias(S.ON_PROMOTION),
            pl.lit(True).alias(S.IN_STOCK),
        ),
        S.SALES,
    )
    stores = _stores(source_dir / STORES_FILE, sales[S.WAREHOUSE_ID])
    regions = sorted(stores[S.REGION].unique().to_list())
    return SourceFrames(
        sales=sales,
        items=_items(sales),
        stores=stores,
        calendar=_calendar(raw, source_dir / FEATURES_FILE, regions),
    )


SOURCE = SourceDef(
    name="walmart_weekly",
    folder="walmart_weekly",
    files=(TRAIN_FILE, STORES_FILE, FEATURES_FILE),
    freq="1w",
    read=read,
)
