"""Which series exist: listings read from the dataset without touching the model stack (no torch).

- :func:`list_series`: every series with sales up to a cutoff, with its category and history length
  (what ``train`` shards);
- :func:`last_sales_date`: the default forecast origin;
- :func:`ended_series`: series whose sales rows stopped well before a cutoff (delisted), which
  planning leaves out (``policy.ended_after_days``);
- :func:`cold_series`: products launched after the cutoff with no sales yet, in the warehouses that
  will stock them (what ``forecast`` adds as cold-start series, ``forecast_cold.py``).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.data import io
from inventory_scale.data.features import offset_date
from inventory_scale.errors import DataQualityError

OFFSET = "_offset"  # periods from the cutoff to the (aligned) launch, 1 .. H


def list_series(root: str, cutoff: dt.date | None, opts: io.StorageOptions | None = None) -> pl.DataFrame:
    """Every series with sales on or before ``cutoff``: keys, category, history length (periods)."""
    sales = io.scan_table(root, S.SALES, opts)
    if cutoff is not None:
        sales = sales.filter(pl.col(S.DATE) <= cutoff)
    counts = (
        sales.group_by(S.SKU_ID, S.WAREHOUSE_ID).agg(pl.len().cast(pl.Int64).alias(S.N_PERIODS)).collect()
    )
    products = io.read_table(root, S.PRODUCTS, opts, columns=[S.SKU_ID, S.CATEGORY])
    return counts.join(products, on=S.SKU_ID, how="left").select(S.SHARDS.columns[:-1])


def last_sales_date(root: str, opts: io.StorageOptions | None = None) -> dt.date:
    """The latest date in the sales table (the default forecast origin)."""
    value = io.scan_table(root, S.SALES, opts).select(pl.col(S.DATE).max()).collect().item()
    if value is None:
        raise DataQualityError(f"{io.join(root, S.SALES.name)}: the sales table is empty")
    return value


def ended_series(
    root: str,
    cutoff: dt.date,
    after_days: int | None,
    opts: io.StorageOptions | None = None,
    warehouses: list[str] | None = None,
) -> pl.DataFrame:
    """``sku_id, warehouse_id, last_date`` of the series that ended ``after_days`` days before ``cutoff``.

    A running series has a sales row every period (``validate`` refuses gaps inside a series), so
    one whose last row on or before the cutoff is more than ``after_days`` days old was delisted or
    discontinued: its history still trains the model, but nobody should reorder it. ``None``
    ends nothing. ``warehouses`` limits the scan.
    """
    keys = [S.SKU_ID, S.WAREHOUSE_ID]
    if after_days is None:
        return pl.DataFrame(schema={S.SKU_ID: pl.String, S.WAREHOUSE_ID: pl.String, "last_date": pl.Date})
    sales = io.scan_table(root, S.SALES, opts).filter(pl.col(S.DATE) <= cutoff)
    if warehouses is not None:
        sales = sales.filter(pl.col(S.WAREHOUSE_ID).is_in(warehouses))
    last = sales.group_by(keys).agg(pl.col(S.DATE).max().alias("last_date")).collect()
    return last.filter(pl.col("last_date") < cutoff - dt.timedelta(days=after_days)).sort(keys)


def launch_offsets(launch: pl.Series, cutoff: dt.date, freq: str, horizon: int) -> np.ndarray:
    """``[n]`` int: the first horizon period (1 .. H) on or after each launch date; 0 = outside."""
    grid = [offset_date(cutoff, freq, h) for h in range(1, horizon + 1)]
    pos = np.searchsorted(np.array(grid, dtype="datetime64[D]"), launch.to_numpy().astype("datetime64[D]"))
    return np.where(pos < horizon, pos + 1, 0)


def cold_series(
    root: str, cutoff: dt.date, freq: str, horizon: int, opts: io.StorageOptions | None = None
) -> pl.DataFrame:
    """Series to forecast cold: ``sku_id, warehouse_id, launch_date`` plus the horizon offset.

    Products launched in ``(cutoff, cutoff + horizon]`` without any sales row up to the cutoff,
    in the warehouses the inventory table lists them for (all warehouses when none).
    """
    last = offset_date(cutoff, freq, horizon)
    products = io.read_table(
        root,
        S.PRODUCTS,
        opts,
        columns=[S.SKU_ID, S.LAUNCH_DATE],
        predicate=(pl.col(S.LAUNCH_DATE) > cutoff) & (pl.col(S.LAUNCH_DATE) <= last),
    )
    empty = pl.DataFrame(schema={S.SKU_ID: pl.String, S.WAREHOUSE_ID: pl.String, S.LAUNCH_DATE: pl.Date})
    if products.is_empty():
        return empty.with_columns(pl.lit(0, pl.Int64).alias(OFFSET))
    skus = products[S.SKU_ID].to_list()
    sold = (
        io.scan_table(root, S.SALES, opts)
        .filter(pl.col(S.SKU_ID).is_in(skus) & (pl.col(S.DATE) <= cutoff))
        .select(S.SKU_ID)
        .unique()
        .collect()
    )
    products = products.join(sold, on=S.SKU_ID, how="anti")
    listed = io.read_table(
        root, S.INVENTORY, opts, columns=[S.SKU_ID, S.WAREHOUSE_ID], predicate=pl.col(S.SKU_ID).is_in(skus)
    ).unique()
    warehouses = io.read_table(root, S.WAREHOUSES, opts, columns=[S.WAREHOUSE_ID])
    unlisted = products.join(listed, on=S.SKU_ID, how="anti").join(warehouses, how="cross")
    pairs = pl.concat(
        [
            products.join(listed, on=S.SKU_ID, how="inner"),
            unlisted.select([*products.columns, S.WAREHOUSE_ID]),
        ],
        how="diagonal",
    )
    out = pairs.select(S.SKU_ID, S.WAREHOUSE_ID, S.LAUNCH_DATE).sort(S.SKU_ID, S.WAREHOUSE_ID)
    out = out.with_columns(pl.Series(OFFSET, launch_offsets(out[S.LAUNCH_DATE], cutoff, freq, horizon)))
    return out.filter(pl.col(OFFSET) > 0)
