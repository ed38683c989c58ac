"""What every real-data reader shares: its return type, its descriptor and the common data rules.

A reader (one module per source) turns raw files into contract-named frames, returned as
:class:`SourceFrames`; :mod:`inventory_scale.data.datasets` then fills the fields no source has
(costs, capacities, stock) from :class:`~inventory_scale.config.DataConfig`. The rules shared by
all readers live here:

- ``data.max_series`` keeps the first N series ordered by ``(sku_id, warehouse_id)``
  (:func:`keep_first_series`): a deterministic subset, the same on every run and machine.
- Negative sales follow ``data.negative_sales`` (:func:`clip_negative`): ``clip`` sets them to 0
  and logs the count, ``error`` raises :class:`DataQualityError` naming the file, the raw column,
  the count and up to five raw keys.
- A (sku_id, warehouse_id, date) key must occur once (:func:`require_unique`).
- Sources without an event calendar get one row per period and region with no event, not a
  holiday and no SNAP day, running ``data.horizon`` periods past the last sale so that forecasts
  find calendar rows (:func:`plain_calendar`).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import DataConfig
from inventory_scale.errors import DataQualityError, format_keys

log = logging.getLogger(__name__)

SINGLE_REGION = "ALL"
"""Region of the sources that name no geography (store_item, carparts)."""

ITEMS_SCHEMA = pl.Schema(
    {
        S.SKU_ID: pl.String,
        S.CATEGORY: pl.String,
        S.SUBCATEGORY: pl.String,
        S.TITLE: pl.String,
        S.DESCRIPTION: pl.String,
        S.UNIT_PRICE: pl.Float64,
        S.SHELF_LIFE_DAYS: pl.Int32,
    }
)
"""Item attributes a reader supplies; the other product columns come from the fill rules."""

STORES_SCHEMA = pl.Schema({S.WAREHOUSE_ID: pl.String, S.REGION: pl.String})
"""Store attributes a reader supplies; capacity and budget come from the fill rules."""


@dataclass(frozen=True)
class SourceFrames:
    """A source mapped into contract columns, before the fill rules.

    Attributes:
        sales: the ``sales`` table (schema ``S.SALES``), sorted by sku_id, warehouse_id, date.
        items: one row per sku_id of ``sales`` (:data:`ITEMS_SCHEMA`).
        stores: one row per warehouse_id of ``sales`` (:data:`STORES_SCHEMA`).
        calendar: the ``calendar`` table (schema ``S.CALENDAR``) for the regions of ``stores``.
    """

    sales: pl.DataFrame
    items: pl.DataFrame
    stores: pl.DataFrame
    calendar: pl.DataFrame


@dataclass(frozen=True)
class SourceDef:
    """One real data source.

    Attributes:
        name: value of ``data.name`` that selects it.
        folder: its folder under ``data.source_dir``.
        files: the files it reads, relative to ``data.source_dir`` (as listed in SHA256SUMS).
        freq: its sampling frequency (one of ``S.FREQUENCIES``).
        read: ``read(cfg, source_dir) -> SourceFrames``.
    """

    name: str
    folder: str
    files: tuple[str, ...]
    freq: str
    read: Callable[[DataConfig, Path], SourceFrames]


def keep_first_series(lf: pl.LazyFrame, max_series: int | None) -> pl.LazyFrame:
    """Keep the first ``max_series`` series in ``(sku_id, warehouse_id)`` order (all when None).

    Args:
        lf: frame with ``sku_id`` and ``warehouse_id`` columns.
        max_series: how many series to keep.
    """
    if max_series is None:
        return lf
    keys = lf.select(*S.SERIES_KEY).unique().sort(*S.SERIES_KEY).head(max_series).collect()
    log.info("data.max_series=%d: keeping %d series", max_series, keys.height)
    return lf.join(keys.lazy(), on=list(S.SERIES_KEY), how="semi")


def clip_negative(
    frame: pl.DataFrame, *, column: str, keys: Sequence[str], file: str, policy: str
) -> pl.DataFrame:
    """Apply the ``data.negative_sales`` policy to a raw sales column.

    Args:
        frame: raw rows (raw column names).
        column: raw sales column, e.g. ``Weekly_Sales``.
        keys: raw columns that identify a row, shown in the error message.
        file: source file, named in the log and the error.
        policy: ``"clip"`` (set to 0, log the count) or ``"error"``.

    Raises:
        DataQualityError: ``policy == "error"`` and negative values exist.
    """
    negative = frame.filter(pl.col(column) < 0)
    if negative.height == 0:
        return frame
    if policy == "error":
        shown = format_keys(negative.sort(list(keys)).select(list(keys)).rows())
        raise DataQualityError(
            f"{file}: column '{column}' has {negative.height} negative value(s) and "
            f"data.negative_sales=error; first ({', '.join(keys)}): {shown}"
        )
    log.warning("%s: clipped %d negative value(s) of column '%s' to 0", file, negative.height, column)
    return frame.with_columns(pl.col(column).clip(lower_bound=0))


def require_unique(frame: pl.DataFrame, keys: Sequence[str], file: str) -> None:
    """Raise :class:`DataQualityError` naming up to five keys that occur more than once."""
    dup = frame.filter(pl.struct(list(keys)).is_duplicated())
    if dup.height:
        shown = format_keys(dup.select(list(keys)).unique(maintain_order=True).rows())
        raise DataQualityError(f"{file}: {dup.height} row(s) share a ({', '.join(keys)}) key: {shown}")


def padded_id(prefix: str, column: str) -> pl.Expr:
    """``prefix`` + an integer column as at least two digits (``D01``, ``S45``, ``I07``)."""
    return pl.format("{}{}", pl.lit(prefix), pl.col(column).cast(pl.String).str.zfill(2))


def join_events(first: str, second: str, *, lower: bool = False) -> pl.Expr:
    """``first|second`` of two nullable event columns; null when both are null."""
    a, b = pl.col(first), pl.col(second)
    if lower:
        a, b = a.str.to_lowercase(), b.str.to_lowercase()
    joined = pl.concat_str([a, b], separator="|", ignore_nulls=True)
    return pl.when(a.is_null() & b.is_null()).then(None).otherwise(joined)


def offset(freq: str, periods: int) -> str:
    """Polars duration string for ``periods`` steps of ``freq`` (``offset("1w", 28) == "28w"``)."""
    match = re.fullmatch(r"(\d+)([a-z]+)", freq)
    if match is None:
        raise ValueError(f"not a Polars duration: {freq!r}")
    return f"{int(match.group(1)) * periods}{match.group(2)}"


def plain_calendar(
    start: dt.date, end: dt.date, freq: str, horizon: int, regions: Sequence[str]
) -> pl.DataFrame:
    """Calendar without events: every period from ``start`` to ``end`` + ``horizon`` periods.

    Returns:
        Frame with schema ``S.CALENDAR``: event_name/event_type null, is_holiday and snap False.
    """
    last = pl.select(pl.lit(end).dt.offset_by(offset(freq, horizon))).item()
    dates = pl.date_range(start, last, interval=freq, eager=True).alias(S.DATE)
    frame = (
        pl.DataFrame(dates)
        .join(pl.DataFrame({S.REGION: sorted(regions)}), how="cross")
        .with_columns(
            pl.lit(None, pl.String).alias(S.EVENT_NAME),
            pl.lit(None, pl.String).alias(S.EVENT_TYPE),
            pl.lit(False).alias(S.IS_HOLIDAY),
            pl.lit(False).alias(S.SNAP),
        )
    )
    return S.conform(frame, S.CALENDAR)
