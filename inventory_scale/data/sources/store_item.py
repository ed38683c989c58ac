"""Kaggle "Store Item Demand Forecasting Challenge" (2018) daily sales mapped into the data contract.

File (under ``data.source_dir``): ``store_item_demand/train.csv.gz`` (date, store, item, sales;
10 stores x 50 items = 500 series, 1,826 days 2013-01-01 .. 2017-12-31). Frequency ``1d``.
The data is clean and probably simulated (one zero in 913,000 rows, no stockouts): a smoke
benchmark, not evidence about real demand.

Mapping rules:

- Series: ``sku_id`` = ``f"I{item:02d}"``, ``warehouse_id`` = ``f"S{store:02d}"``; stores and
  items are anonymised and no geography is given, so every store is in region ``ALL``.
- Sales: ``units_sold`` = ``sales`` (negatives would follow ``data.negative_sales``; there are
  none). No prices are published: ``price`` = 1.0 and ``unit_price`` = 1.0, so costs, salvage
  and budgets are relative to a unit price of one. ``on_promotion`` = False and ``in_stock`` =
  True (neither is recorded).
- Products: ``category`` = ``subcategory`` = ``"unknown"``, ``title`` = "Store-item demand item
  NN", not perishable.
- Calendar: no events are published: one row per day in region ``ALL`` from the first sale to
  ``data.horizon`` days past the last, with null event name/type, ``is_holiday`` = False and
  ``snap`` = False.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import DataConfig
from inventory_scale.data.sources.base import (
    ITEMS_SCHEMA,
    SINGLE_REGION,
    STORES_SCHEMA,
    SourceDef,
    SourceFrames,
    clip_negative,
    keep_first_series,
    padded_id,
    plain_calendar,
    require_unique,
)

TRAIN_FILE = "store_item_demand/train.csv.gz"
UNKNOWN_CATEGORY = "unknown"

_RAW = {"date": pl.String, "store": pl.Int64, "item": pl.Int64, "sales": pl.Float64}


def read(cfg: DataConfig, source_dir: Path) -> SourceFrames:
    """Map the store-item daily sales into contract frames (rules in the module docstring).

    Args:
        cfg: data config (``max_series``, ``negative_sales``, ``horizon``).
        source_dir: the shared data folder holding ``store_item_demand/``.
    """
    path = source_dir / TRAIN_FILE
    lf = (
        pl.scan_csv(path, schema_overrides=_RAW)
        .select(list(_RAW))
        .with_columns(
            padded_id("I", "item").alias(S.SKU_ID),
            padded_id("S", "store").alias(S.WAREHOUSE_ID),
            pl.col("date").str.to_date("%Y-%m-%d").alias(S.DATE),
        )
    )
    raw = keep_first_series(lf, cfg.max_series).sort(S.SKU_ID, S.WAREHOUSE_ID, S.DATE).collect()
    require_unique(raw, ("store", "item", "date"), str(path))
    raw = clip_negative(
        raw, column="sales", keys=("store", "item", "date"), file=str(path), policy=cfg.negative_sales
    )
    sales = S.conform(
        raw.with_columns(
            pl.col("sales").alias(S.UNITS_SOLD),
            pl.lit(1.0).alias(S.PRICE),
            pl.lit(False).alias(S.ON_PROMOTION),
            pl.lit(True).alias(S.IN_STOCK),
        ),
        S.SALES,
    )
    items = (
        sales.select(S.SKU_ID)
        .unique()
        .sort(S.SKU_ID)
        .with_columns(
            pl.lit(UNKNOWN_CATEGORY).alias(S.CATEGORY),
            pl.lit(UNKNOWN_CATEGORY).alias(S.SUBCATEGORY),
            pl.format("Store-item demand item {}", pl.col(S.SKU_ID).str.slice(1)).alias(S.TITLE),
            pl.lit(
                "Anonymised item of the Kaggle store-item demand data; no name, category or price "
                "is published."
            ).alias(S.DESCRIPTION),
            pl.lit(1.0).alias(S.UNIT_PRICE),
            pl.lit(None, pl.Int32).alias(S.SHELF_LIFE_DAYS),
        )
        .select([pl.col(c).cast(t) for c, t in ITEMS_SCHEMA.items()])
    )
    stores = (
        sales.select(S.WAREHOUSE_ID)
        .unique()
        .sort(S.WAREHOUSE_ID)
        .with_columns(pl.lit(SINGLE_REGION).alias(S.REGION))
        .select([pl.col(c).cast(t) for c, t in STORES_SCHEMA.items()])
    )
    first, last = sales.select(pl.col(S.DATE).min().alias("first"), pl.col(S.DATE).max().alias("last")).row(0)
    calendar = plain_calendar(first, last, SOURCE.freq, cfg.horizon, [SINGLE_REGION])
    return SourceFrames(sales=sales, items=items, stores=stores, calendar=calendar)


SOURCE = SourceDef(name="store_item", folder="store_item_demand", files=(TRAIN_FILE,), freq="1d", read=read)
