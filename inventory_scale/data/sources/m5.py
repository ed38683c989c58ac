"""M5 (Walmart, MOFC 2020) daily item-store unit sales mapped into the data contract.

Files (under ``data.source_dir``): ``m5/m5_tiny_daily_28items_x_10stores.csv.gz`` (long format,
28 items x 10 stores = 280 series, 2011-01-29 .. 2016-04-24) and ``m5/m5_calendar.csv`` (the
official calendar d_1 .. d_1969 with events and SNAP flags per state). Frequency ``1d``.

Mapping rules:

- Series: ``sku_id`` = ``item_id``, ``warehouse_id`` = ``store_id``; the store's region is its
  ``state_id`` (CA, TX, WI).
- Launch: ``sell_price`` is empty before an item is sold in a store, so the rows of a series
  before its first priced date are dropped (they are "not yet listed", not zero demand). The
  product's ``launch_date`` is its first priced date over the kept stores. A price missing after
  launch (none in the shipped file) would carry the last known price forward.
- Sales: ``units_sold`` = ``sales``, ``price`` = ``sell_price``; ``in_stock`` = True because M5
  does not record stockouts (stockout zeros are indistinguishable from no demand).
- Promotions: M5 has no promotion flag. A day counts as ``on_promotion`` when its price is more
  than :data:`PROMO_DROP` (5%) below the highest price of the same item-store over the trailing
  :data:`PROMO_WINDOW` (56 days, today included): a temporary markdown, not a permanent change
  of list price once the window has moved on. On the shipped file this flags 1.6% of rows.
- Products: ``category`` = ``cat_id``, ``subcategory`` = ``dept_id``. M5 publishes no product
  names, so ``title`` and ``description`` are built from the ids (and say so); ``unit_price`` is
  the median ``sell_price`` of the item over its kept rows. ``shelf_life_days`` is
  :data:`FOODS_SHELF_LIFE_DAYS` (30) for category FOODS (perishable groceries; M5 gives no shelf
  lives, 30 days is a conservative grocery figure) and null (not perishable) for the rest.
- Calendar: one row per (date, state) over the whole official calendar (it runs 56 days past
  the last sale, so forecasts have calendar rows). ``event_name`` = ``event_name_1|event_name_2``
  and ``event_type`` = the two types in lower case, joined the same way (null when no event);
  ``is_holiday`` = at least one event of type :data:`HOLIDAY_EVENT_TYPES` (national: federal
  holidays incl. Christmas, Thanksgiving, New Year; religious: Lent start, Ramadan start,
  Orthodox Christmas / Easter, Pesach, Purim, Chanukah, Eid). Easter, Halloween and the other
  "cultural" and "sporting" events (SuperBowl, NBA finals) are events but not holidays;
  ``snap`` = ``snap_<state>``.
"""

from __future__ import annotations

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
    join_events,
    keep_first_series,
    require_unique,
)
from inventory_scale.errors import SchemaError

log = logging.getLogger(__name__)

SALES_FILE = "m5/m5_tiny_daily_28items_x_10stores.csv.gz"
CALENDAR_FILE = "m5/m5_calendar.csv"

FOODS_CATEGORY = "FOODS"
FOODS_SHELF_LIFE_DAYS = 30
PROMO_WINDOW = "56d"
PROMO_DROP = 0.05
HOLIDAY_EVENT_TYPES = ("national", "religious")

_SALES_RAW = {
    "id": pl.String,
    "item_id": pl.String,
    "dept_id": pl.String,
    "cat_id": pl.String,
    "store_id": pl.String,
    "state_id": pl.String,
    "date": pl.String,
    "sales": pl.Float64,
    "sell_price": pl.Float64,
}
_CALENDAR_RAW = {
    "date": pl.String,
    "event_name_1": pl.String,
    "event_type_1": pl.String,
    "event_name_2": pl.String,
    "event_type_2": pl.String,
}


def _read_sales(cfg: DataConfig, path: Path) -> pl.DataFrame:
    """Raw rows of the kept series, launch-trimmed, with contract keys added."""
    lf = (
        pl.scan_csv(path, schema_overrides=_SALES_RAW)
        .select(list(_SALES_RAW))
        .with_columns(
            pl.col("item_id").alias(S.SKU_ID),
            pl.col("store_id").alias(S.WAREHOUSE_ID),
            pl.col("date").str.to_date("%Y-%m-%d").alias(S.DATE),
        )
    )
    raw = keep_first_series(lf, cfg.max_series).sort(S.SKU_ID, S.WAREHOUSE_ID, S.DATE).collect()
    require_unique(raw, (S.SKU_ID, S.WAREHOUSE_ID, S.DATE), str(path))
    raw = clip_negative(raw, column="sales", keys=("id", "date"), file=str(path), policy=cfg.negative_sales)
    series = list(S.SERIES_KEY)
    launch = pl.col(S.DATE).filter(pl.col("sell_price").is_not_null()).min().over(series)
    kept = raw.filter(pl.col(S.DATE) >= launch).with_columns(pl.col("sell_price").forward_fill().over(series))
    n_series = raw.select(pl.struct(series).n_unique()).item()
    n_kept = kept.select(pl.struct(series).n_unique()).item() if kept.height else 0
    log.info(
        "%s: dropped %d pre-launch row(s); %d of %d series never priced and dropped",
        path,
        raw.height - kept.height,
        n_series - n_kept,
        n_series,
    )
    return kept


def _sales(kept: pl.DataFrame) -> pl.DataFrame:
    """The contract's sales table, with the price-drop promotion rule."""
    rolling_max = pl.col("sell_price").rolling_max_by(S.DATE, window_size=PROMO_WINDOW)
    frame = kept.select(
        S.SKU_ID,
        S.WAREHOUSE_ID,
        S.DATE,
        pl.col("sales").alias(S.UNITS_SOLD),
        pl.col("sell_price").alias(S.PRICE),
        (pl.col("sell_price") < (1.0 - PROMO_DROP) * rolling_max.over(list(S.SERIES_KEY))).alias(
            S.ON_PROMOTION
        ),
        pl.lit(True).alias(S.IN_STOCK),
    )
    return S.conform(frame, S.SALES)


def _items(kept: pl.DataFrame) -> pl.DataFrame:
    """One row per item: ids as category / subcategory, id-built text, median price."""
    frame = (
        kept.group_by(S.SKU_ID, maintain_order=True)
        .agg(
            pl.col("cat_id").first().alias(S.CATEGORY),
            pl.col("dept_id").first().alias(S.SUBCATEGORY),
            pl.col("sell_price").median().alias(S.UNIT_PRICE),
        )
        .with_columns(
            pl.format("{} item {}", pl.col(S.CATEGORY).str.to_titlecase(), pl.col(S.SKU_ID)).alias(S.TITLE),
            pl.format(
                "M5 item {} of department {} in category {}. M5 publishes no product names; "
                "this text is built from the item's ids.",
                pl.col(S.SKU_ID),
                pl.col(S.SUBCATEGORY),
                pl.col(S.CATEGORY),
            ).alias(S.DESCRIPTION),
            pl.when(pl.col(S.CATEGORY) == FOODS_CATEGORY)
            .then(pl.lit(FOODS_SHELF_LIFE_DAYS))
            .otherwise(None)
            .alias(S.SHELF_LIFE_DAYS),
        )
    )
    return frame.select([pl.col(c).cast(t) for c, t in ITEMS_SCHEMA.items()])


def _calendar(path: Path, regions: list[str]) -> pl.DataFrame:
    """One row per (date, state) with joined events, the holiday rule and the state's SNAP flag."""
    snap_cols = [f"snap_{r}" for r in regions]
    header = pl.scan_csv(path).collect_schema().names()
    missing = [c for c in snap_cols if c not in header]
    if missing:
        raise SchemaError(f"{path}: missing SNAP column(s) {missing} for the stores' states")
    holiday_type = pl.col("event_type_1").str.to_lowercase().is_in(HOLIDAY_EVENT_TYPES).fill_null(
        False
    ) | pl.col("event_type_2").str.to_lowercase().is_in(HOLIDAY_EVENT_TYPES).fill_null(False)
    frame = (
        pl.scan_csv(path, schema_overrides={**_CALENDAR_RAW, **dict.fromkeys(snap_cols, pl.Int64)})
        .select(
            pl.col("date").str.to_date("%Y-%m-%d").alias(S.DATE),
            join_events("event_name_1", "event_name_2").alias(S.EVENT_NAME),
            join_events("event_type_1", "event_type_2", lower=True).alias(S.EVENT_TYPE),
            holiday_type.alias(S.IS_HOLIDAY),
            *snap_cols,
        )
        .unpivot(on=snap_cols, index=[S.DATE, S.EVENT_NAME, S.EVENT_TYPE, S.IS_HOLIDAY])
        .with_columns(
            pl.col("variable").str.strip_prefix("snap_").alias(S.REGION),
            (pl.col("value") == 1).alias(S.SNAP),
        )
        .sort(S.DATE, S.REGION)
        .collect()
    )
    return S.conform(frame, S.CALENDAR)


def read(cfg: DataConfig, source_dir: Path) -> SourceFrames:
    """Map the M5 daily subset and calendar into contract frames (rules in the module docstring).

    Args:
        cfg: data config (``max_series``, ``negative_sales``).
        source_dir: the shared data folder holding ``m5/``.
    """
    kept = _read_sales(cfg, source_dir / SALES_FILE)
    stores = (
        kept.group_by(S.WAREHOUSE_ID, maintain_order=True)
        .agg(pl.col("state_id").first().alias(S.REGION))
        .select([pl.col(c).cast(t) for c, t in STORES_SCHEMA.items()])
    )
    regions = sorted(stores[S.REGION].unique().to_list())
    return SourceFrames(
        sales=_sales(kept),
        items=_items(kept),
        stores=stores,
        calendar=_calendar(source_dir / CALENDAR_FILE, regions),
    )


SOURCE = SourceDef(name="m5", folder="m5", files=(SALES_FILE, CALENDAR_FILE), freq="1d", read=read)
