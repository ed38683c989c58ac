"""Hyndman's car-parts data (2,674 monthly spare-part series, Jan 1998 .. Mar 2002) mapped into the
data contract.

File (under ``data.source_dir``): ``carparts/carparts_monthly_2674series.csv.gz``, wide: one row
per ``Part`` and one column per month (``Jan-98`` .. ``Mar-02``). Frequency ``1mo``. Very
intermittent (about 75% zeros): the standard test set for intermittent-demand policies.

Mapping rules:

- Melted to long format; ``date`` = the first day of the column's month.
- Series: ``sku_id`` = ``f"P{Part}"``; the parts come from one depot: ``warehouse_id`` = ``W01``
  in region ``ALL``.
- Series lengths differ: an empty cell means "not observed", never zero. Empty cells before a
  part's first and after its last observed month are dropped (in the shipped file all empty cells
  trail: 165 series end after 12 to 14 months); an empty cell between two observed months would
  be a gap the contract cannot express and raises :class:`DataQualityError` naming the months.
  A part with no observed month is dropped with a warning.
- Sales: ``units_sold`` = the cell (negatives follow ``data.negative_sales``; there are none).
  No prices are published: ``price`` = ``unit_price`` = 1.0; ``on_promotion`` = False,
  ``in_stock`` = True (unknown).
- Products: ``category`` = ``subcategory`` = ``"car_parts"``, ``title`` = "Car part <Part>",
  not perishable.
- Calendar: no events: one row per month in region ``ALL`` from the first month to
  ``data.horizon`` months past the last, with null events, ``is_holiday`` and ``snap`` False.
"""

from __future__ import annotations

import logging
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
    plain_calendar,
    require_unique,
)
from inventory_scale.errors import DataQualityError, format_keys

log = logging.getLogger(__name__)

WIDE_FILE = "carparts/carparts_monthly_2674series.csv.gz"
WAREHOUSE = "W01"
CATEGORY = "car_parts"
MONTH_FORMAT = "%b-%y"


def _long(cfg: DataConfig, path: Path) -> pl.DataFrame:
    """Melted cells of the kept series, trimmed to each part's observed span."""
    wide = pl.scan_csv(path, infer_schema=False)
    months = [c for c in wide.collect_schema().names() if c != "Part"]
    lf = wide.unpivot(on=months, index="Part", variable_name="month", value_name="value").with_columns(
        pl.format("P{}", pl.col("Part").str.strip_chars()).alias(S.SKU_ID),
        pl.lit(WAREHOUSE).alias(S.WAREHOUSE_ID),
        pl.col("month").str.to_date(MONTH_FORMAT).alias(S.DATE),
        pl.col("value").str.strip_chars().replace("", None).cast(pl.Float64),
    )
    cells = keep_first_series(lf, cfg.max_series).sort(S.SKU_ID, S.DATE).collect()
    observed = pl.col(S.DATE).filter(pl.col("value").is_not_null())
    in_span = pl.col(S.DATE).is_between(observed.min().over(S.SKU_ID), observed.max().over(S.SKU_ID))
    span = cells.filter(in_span)
    gaps = span.filter(pl.col("value").is_null())
    if gaps.height:
        raise DataQualityError(
            f"{path}: {gaps.height} empty cell(s) between observed months (a gap, not a trailing "
            f"end); first (Part, month): {format_keys(gaps.select('Part', 'month').rows())}"
        )
    n_parts = cells[S.SKU_ID].n_unique()
    n_kept = span[S.SKU_ID].n_unique()
    if n_kept < n_parts:
        log.warning("%s: %d part(s) have no observed month and are dropped", path, n_parts - n_kept)
    log.info(
        "%s: dropped %d empty cell(s) outside the parts' observed spans", path, cells.height - span.height
    )
    require_unique(span, ("Part", "month"), str(path))
    return clip_negative(
        span, column="value", keys=("Part", "month"), file=str(path), policy=cfg.negative_sales
    )


def read(cfg: DataConfig, source_dir: Path) -> SourceFrames:
    """Map the wide car-parts table into contract frames (rules in the module docstring).

    Args:
        cfg: data config (``max_series``, ``negative_sales``, ``horizon``).
        source_dir: the shared data folder holding ``carparts/``.
    """
    cells = _long(cfg, source_dir / WIDE_FILE)
    sales = S.conform(
        cells.with_columns(
            pl.col("value").alias(S.UNITS_SOLD),
            pl.lit(1.0).alias(S.PRICE),
            pl.lit(False).alias(S.ON_PROMOTION),
            pl.lit(True).alias(S.IN_STOCK),
        ),
        S.SALES,
    )
    items = (
        cells.group_by(S.SKU_ID, maintain_order=True)
        .agg(pl.col("Part").first())
        .with_columns(
            pl.lit(CATEGORY).alias(S.CATEGORY),
            pl.lit(CATEGORY).alias(S.SUBCATEGORY),
            pl.format("Car part {}", pl.col("Part").str.strip_chars()).alias(S.TITLE),
            pl.lit(
                "Car spare part from Hyndman's car-parts data (monthly demand); no name or price "
                "is published."
            ).alias(S.DESCRIPTION),
            pl.lit(1.0).alias(S.UNIT_PRICE),
            pl.lit(None, pl.Int32).alias(S.SHELF_LIFE_DAYS),
        )
        .select([pl.col(c).cast(t) for c, t in ITEMS_SCHEMA.items()])
    )
    stores = pl.DataFrame({S.WAREHOUSE_ID: [WAREHOUSE], S.REGION: [SINGLE_REGION]}, schema=STORES_SCHEMA)
    first, last = sales.select(pl.col(S.DATE).min().alias("first"), pl.col(S.DATE).max().alias("last")).row(0)
    calendar = plain_calendar(first, last, SOURCE.freq, cfg.horizon, [SINGLE_REGION])
    return SourceFrames(sales=sales, items=items, stores=stores, calendar=calendar)


SOURCE = SourceDef(name="carparts", folder="carparts", files=(WIDE_FILE,), freq="1mo", read=read)
