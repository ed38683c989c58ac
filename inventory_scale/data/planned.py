"""Planned prices and promotions: the horizon covariates a marketplace knows at the cutoff.

Training windows see the prices and promotion flags that actually held over their horizon, so
the model learns what a promotion or a price cut does. At forecast time nothing after the cutoff
is in the sales table; without a plan the horizon gets the last known price and no promotion, and
the model forecasts no lift for a promotion that is already scheduled. ``data.planned_prices``
says where the horizon values come from (:data:`~inventory_scale.schema.PLANNED_SOURCES`):

- ``table`` (default): ``<data.root>/planned_prices`` (``S.PLANNED_PRICES``: sku_id,
  warehouse_id, date, price, on_promotion) when the root has it, else nothing. Rows on or before
  the cutoff are ignored (history is what happened); so a backtest reads the same table.
- ``sales``: ``price`` and ``on_promotion`` of the sales rows after the cutoff count as planned.
  Only those two columns are read past the cutoff, never ``units_sold`` or ``in_stock``. This is
  the backtest of data whose prices were set in advance (M5's weekly ``sell_prices``, as the M5
  competition allowed; the synthetic marketplace's promotion calendar).
- ``none``: carry the last price forward, no promotion.

:func:`read_planned` returns the rows for (cutoff, until] of a shard's series; ``build_features``
joins them onto the horizon grid. The ``planned_prices`` table is checked on read: one row per key,
``price`` > 0 where set. A broken table raises a :class:`DataQualityError` naming the table
folder, the column and the keys.
"""

from __future__ import annotations

import datetime as dt
import logging

import polars as pl

from inventory_scale import schema as S
from inventory_scale.data import io
from inventory_scale.errors import ConfigError, DataQualityError, format_keys

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (S.SKU_ID, S.WAREHOUSE_ID, S.DATE, S.PRICE, S.ON_PROMOTION)


def read_planned(
    root: str,
    source: str,
    keys: pl.DataFrame,
    cutoff: dt.date,
    until: dt.date,
    opts: io.StorageOptions | None = None,
) -> pl.DataFrame | None:
    """Planned price / promotion rows of ``keys``' series for dates in (cutoff, until].

    Args:
        root: dataset root URI.
        source: ``data.planned_prices`` (``none``, ``table`` or ``sales``).
        keys: ``sku_id, warehouse_id`` of the series.
        cutoff: forecast origin; rows on or before it are never returned.
        until: last horizon date.
        opts: storage options for ``s3://`` roots.

    Returns:
        ``COLUMNS`` sorted by key, or None when the source is ``none`` or the table is absent.

    Raises:
        ConfigError: unknown ``source``.
        DataQualityError: the ``planned_prices`` table repeats a key or holds a price <= 0.
    """
    if source not in S.PLANNED_SOURCES:
        raise ConfigError(
            f"config key 'data.planned_prices' must be one of {list(S.PLANNED_SOURCES)}, got {source!r}"
        )
    if source == "none":
        return None
    spec = S.SALES if source == "sales" else S.PLANNED_PRICES
    if source == "table" and not io.table_files(root, spec, opts):
        return None
    skus = keys[S.SKU_ID].unique().to_list()
    whs = keys[S.WAREHOUSE_ID].unique().to_list()
    date = pl.col(S.DATE)
    frame = (
        io.scan_table(root, spec, opts)
        .filter(
            pl.col(S.WAREHOUSE_ID).is_in(whs)
            & pl.col(S.SKU_ID).is_in(skus)
            & (date > cutoff)
            & (date <= until)
        )
        .select(COLUMNS)
        .collect()
        .join(keys.select(S.SKU_ID, S.WAREHOUSE_ID), on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
        .sort(S.SKU_ID, S.WAREHOUSE_ID, S.DATE)
    )
    if source == "table":
        check_planned(frame, io.join(root, spec.name))
    log.debug("planned prices (%s): %d rows in (%s, %s]", source, frame.height, cutoff, until)
    return frame


def check_planned(frame: pl.DataFrame, where: str) -> pl.DataFrame:
    """Raise :class:`DataQualityError` on repeated keys or a non-positive price; returns ``frame``.

    ``where`` names the table folder in the message.
    """
    key = [S.SKU_ID, S.WAREHOUSE_ID, S.DATE]
    dup = frame.filter(pl.len().over(key) > 1).select(key).unique(maintain_order=True)
    if dup.height:
        raise DataQualityError(
            f"{where}: {dup.height} key(s) appear more than once in columns ({', '.join(key)}): "
            f"{format_keys(dup.rows())}"
        )
    price = pl.col(S.PRICE)
    bad = frame.filter(price.is_not_null() & (price.is_nan() | (price <= 0))).select(key)
    if bad.height:
        raise DataQualityError(
            f"{where}: column '{S.PRICE}' must be > 0 where set (null keeps the last price); "
            f"{bad.height} row(s): {format_keys(bad.rows())}"
        )
    return frame
