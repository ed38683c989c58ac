"""Category-average launch baseline: what a planner without a model forecasts for a new SKU.

Fitted on the history up to the cutoff (daily data):

- seasonal profile of each (category, warehouse): mean units per series-day in each ISO week of
  the year, divided by that pair's overall mean per series-day (1.0 where a week has no data);
- day-of-week factors of each (category, warehouse), normalised to mean 1;
- launch level of each (category, warehouse): the de-seasonalised daily demand (units over the sum
  of the profile x day-of-week weights, a ratio of sums) over the first ``launch_days`` days of the
  series that launched inside the history (first sale at least ``launch_days`` days after the
  history starts), falling back to the category over all warehouses, then to every launch.

A new SKU's mean demand on day ``d`` is ``level * profile[week(d)] * dow[weekday(d)]``; sample
paths are Poisson draws around it, so metrics, optimizer and simulator treat it like any model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.errors import DataQualityError

WEEK, DOW, INDEX, LEVEL = "_week", "_dow", "_index", "_level"
GROUP = [S.CATEGORY, S.WAREHOUSE_ID]


@dataclass
class LaunchBaseline:
    """Fitted tables: ``profile`` (category, warehouse, week, index), ``dow`` (.., weekday, index),
    ``level`` per (category, warehouse), per category and overall."""

    profile: pl.DataFrame
    dow: pl.DataFrame
    level: pl.DataFrame
    category_level: pl.DataFrame
    overall_level: float


def fit_launch_baseline(
    sales: pl.DataFrame, products: pl.DataFrame, cutoff: dt.date, launch_days: int = 56
) -> LaunchBaseline:
    """Fit the baseline on ``sales`` rows up to ``cutoff`` (in-stock rows only)."""
    hist = (
        sales.filter((pl.col(S.DATE) <= cutoff) & pl.col(S.IN_STOCK))
        .join(products.select(S.SKU_ID, S.CATEGORY), on=S.SKU_ID, how="left")
        .with_columns(pl.col(S.DATE).dt.week().alias(WEEK), pl.col(S.DATE).dt.weekday().alias(DOW))
    )
    if hist.is_empty():
        raise DataQualityError(f"sales: no in-stock row up to {cutoff} to fit the launch baseline")
    mean = hist.group_by(GROUP).agg(pl.col(S.UNITS_SOLD).mean().alias("_mean"))
    profile = (
        hist.group_by([*GROUP, WEEK])
        .agg(pl.col(S.UNITS_SOLD).mean().alias("_w"))
        .join(mean, on=GROUP)
        .select(*GROUP, WEEK, (pl.col("_w") / pl.col("_mean").clip(1e-9)).alias(INDEX))
    )
    dow = (
        hist.group_by([*GROUP, DOW])
        .agg(pl.col(S.UNITS_SOLD).mean().alias("_d"))
        .with_columns((pl.col("_d") / pl.col("_d").mean().over(GROUP).clip(1e-9)).alias(INDEX))
        .select(*GROUP, DOW, INDEX)
    )
    first = hist.group_by(S.SERIES_KEY).agg(pl.col(S.DATE).min().alias("_first"))
    start: dt.date = hist[S.DATE].min()  # type: ignore[assignment]
    launched = first.filter(
        (pl.col("_first") >= start + dt.timedelta(days=launch_days))
        & (pl.col("_first") <= cutoff - dt.timedelta(days=launch_days - 1))
    )
    early = (
        hist.join(launched, on=list(S.SERIES_KEY))
        .filter(pl.col(S.DATE) < pl.col("_first") + dt.timedelta(days=launch_days))
        .join(profile, on=[*GROUP, WEEK], how="left")
        .join(dow, on=[*GROUP, DOW], how="left")
        .with_columns(
            (pl.col(INDEX).fill_null(1.0) * pl.col(f"{INDEX}_right").fill_null(1.0)).alias("_season")
        )
    )
    if early.is_empty():  # no launch inside the history: the first weeks of every series instead
        early = (
            hist.join(first, on=list(S.SERIES_KEY))
            .filter(pl.col(S.DATE) < pl.col("_first") + dt.timedelta(days=launch_days))
            .with_columns(pl.lit(1.0).alias("_season"))
        )
    # de-seasonalised level as a ratio of sums (units / expected seasonal weight): robust where a
    # launch falls in a trough of its category's profile
    ratio = (pl.col(S.UNITS_SOLD).sum() / pl.col("_season").sum().clip(1e-9)).alias(LEVEL)
    level = early.group_by(GROUP).agg(ratio)
    category_level = early.group_by(S.CATEGORY).agg(ratio)
    overall = float(early[S.UNITS_SOLD].sum()) / max(float(early["_season"].sum()), 1e-9)
    return LaunchBaseline(profile, dow, level, category_level, overall)


def launch_baseline_mean(
    fit: LaunchBaseline, series: pl.DataFrame, products: pl.DataFrame, start: list[dt.date], horizon: int
) -> np.ndarray:
    """``[N, H]`` mean daily demand of each new series over ``horizon`` days from its ``start``."""
    n = series.height
    rows = (
        series.select(*S.SERIES_KEY)
        .with_row_index("_i")
        .with_columns(pl.Series("_start", start, dtype=pl.Date))
        .join(products.select(S.SKU_ID, S.CATEGORY).unique(S.SKU_ID), on=S.SKU_ID, how="left")
        .with_columns(pl.int_ranges(0, horizon).alias("_h"))
        .explode("_h")
        .with_columns((pl.col("_start") + pl.duration(days=pl.col("_h"))).alias(S.DATE))
        .with_columns(pl.col(S.DATE).dt.week().alias(WEEK), pl.col(S.DATE).dt.weekday().alias(DOW))
        .join(fit.profile, on=[*GROUP, WEEK], how="left")
        .join(fit.dow, on=[*GROUP, DOW], how="left")
        .join(fit.level, on=GROUP, how="left")
        .join(fit.category_level, on=S.CATEGORY, how="left", suffix="_cat")
        .sort("_i", "_h")
    )
    level = rows[LEVEL].fill_null(rows[f"{LEVEL}_cat"]).fill_null(fit.overall_level).to_numpy()
    mean = level * rows[INDEX].fill_null(1.0).to_numpy() * rows[f"{INDEX}_right"].fill_null(1.0).to_numpy()
    return np.asarray(mean, dtype=np.float64).reshape(n, horizon)


def launch_baseline_paths(mean: np.ndarray, num_paths: int, rng: np.random.Generator) -> np.ndarray:
    """``[N, S, H]`` float32 Poisson sample paths around ``mean [N, H]``."""
    return rng.poisson(np.repeat(mean[:, None, :], num_paths, axis=1)).astype(np.float32)
