"""Last year's demand as a covariate: a series' own reference and its group's (``model.last_year``).

For every period ``t`` of a CSR-packed shard (``values [T]``, ``observed [T]``, ``indptr [N+1]``),
:func:`last_year_reference` gives the mean observed demand around the same period one year
earlier (:data:`LAST_YEAR`), and :func:`group_last_year_reference` the mean of that reference over
the series of the same group (:func:`series_groups`) on the same date. ``data/windows.py`` adds them
to every batch as the last covariates, divided by each window's scale.

With ``last_year`` on (``model.last_year``), two more covariates close ``time_feat`` in every
batch: the mean observed demand around the same period one year earlier (:data:`LAST_YEAR`: the 7
days around ``t - 364`` for daily data, weeks ``t - 53 .. t - 51``, month ``t - 12``) divided by the
window's scale (``1 + mean`` observed context demand, as the network scales its lags), and whether
any such period was observed. Every horizon period's reference lies before the cutoff (H < 361).

With ``last_year_group`` too (``model.last_year_group``), two more: the mean of that reference
over the shard's series of the same subcategory (category when null) and warehouse, again divided
by the window's own scale, and whether any of them had one. A SKU launched this year has no
reference of its own; its group's tells it what the season did to its kind last year.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.errors import ConfigError

if TYPE_CHECKING:
    from inventory_scale.data.windows import PackedShard

LAST_YEAR: dict[str, tuple[int, int]] = {"1d": (364, 3), "1w": (52, 1), "1mo": (12, 0)}
"""Per frequency: (lag of one year in periods, half-width of the averaging window around it)."""
LAST_YEAR_FEATURES: tuple[str, ...] = ("last_year_demand", "last_year_observed")
"""Names of the two covariates ``last_year`` appends to ``feature_names``."""
GROUP_LAST_YEAR_FEATURES: tuple[str, ...] = ("group_last_year_demand", "group_last_year_observed")
"""Names of the two covariates ``last_year_group`` appends after them."""


def last_year_reference(
    values: np.ndarray, observed: np.ndarray, indptr: np.ndarray, freq: str
) -> np.ndarray:
    """``[T, 2]`` float32 per period: mean observed demand one year earlier (0 if none), observed flag.

    The mean runs over periods ``t - lag - half .. t - lag + half`` of the same series
    (:data:`LAST_YEAR`); periods before the series' start, stockouts and periods past the cutoff
    (observed 0) do not count.
    """
    if freq not in LAST_YEAR:
        raise ConfigError(f"config key 'data.freq' must be one of {sorted(LAST_YEAR)}, got {freq!r}")
    lag, half = LAST_YEAR[freq]
    rows = np.arange(len(values), dtype=np.int64)  # [T]
    first = np.repeat(indptr[:-1], np.diff(indptr))  # [T] first row of each row's series
    lo = np.maximum(rows - lag - half, first)  # [T]
    hi = np.maximum(rows - lag + half + 1, first)  # [T], <= rows since lag > half
    cum_v, cum_o = cumsum0(values * observed), cumsum0(observed)
    count = cum_o[hi] - cum_o[lo]  # [T]
    mean = (cum_v[hi] - cum_v[lo]) / np.maximum(count, 1.0)  # [T]
    return np.stack([np.where(count > 0, mean, 0.0), count > 0], axis=1).astype(np.float32)


def period_index(dates: np.ndarray, freq: str) -> np.ndarray:
    """``[n]`` int64 period number of ``datetime64[D]`` dates: days, weeks or months since 1970."""
    days = dates.astype("datetime64[D]").astype(np.int64)
    if freq == "1d":
        return days
    if freq == "1w":
        return days // 7  # a weekly grid keeps one weekday, so its weeks are consecutive numbers
    months = dates.astype("datetime64[M]").astype(np.int64)
    return months


def group_last_year_reference(
    own: np.ndarray, indptr: np.ndarray, start: np.ndarray, groups: np.ndarray, freq: str
) -> np.ndarray:
    """``[T, 2]`` float32 per period: the mean of :func:`last_year_reference` over the series of the
    same group on the same date (those with a reference), and whether any had one.

    Args:
        own: ``[T, 2]`` every series' own reference and flag.
        indptr: ``[N+1]`` CSR offsets; start: ``[N]`` first date of each series.
        groups: ``[N]`` int group of each series.
        freq: data frequency (dates -> period numbers).
    """
    n = len(indptr) - 1
    sid = np.repeat(np.arange(n), np.diff(indptr))  # [T]
    period = period_index(start, freq)[sid] + (np.arange(len(own)) - indptr[sid])  # [T]
    period -= period.min(initial=0)
    key = groups[sid].astype(np.int64) * (int(period.max(initial=0)) + 1) + period  # [T]
    flag = own[:, 1].astype(np.float64)
    count = np.bincount(key, weights=flag)  # series with a reference, per (group, date)
    total = np.bincount(key, weights=own[:, 0] * flag)
    mean = np.where(count > 0, total / np.maximum(count, 1.0), 0.0)
    return np.stack([mean[key], count[key] > 0], axis=1).astype(np.float32)


def series_groups(series: pl.DataFrame) -> np.ndarray:
    """``[N]`` int group of each series: its subcategory (category when null) and warehouse."""
    label = pl.concat_str(
        pl.coalesce(S.SUBCATEGORY, S.CATEGORY).fill_null(""), pl.col(S.WAREHOUSE_ID), separator="\x1f"
    )
    return series.select(label.rank("dense")).to_series().to_numpy().astype(np.int64)


def cumsum0(a: np.ndarray) -> np.ndarray:
    """``[T+1]`` float64 running sum with a leading 0 (sums over rows ``[i, j)`` are ``c[j] - c[i]``)."""
    return np.concatenate([[0.0], np.cumsum(a, dtype=np.float64)])


def last_year_learnable(packed: PackedShard, min_years: float) -> bool:
    """Whether the median series of ``packed`` has ``min_years`` years + H periods up to the cutoff.

    Under one year + H the horizon has no reference at all. Between one and two years, last
    year's seasons were trained on without a reference (the year before them is missing): the
    covariates then help on average but can mislead right after a peak (``model.last_year_min_years``).
    """
    lag, _ = LAST_YEAR[packed.freq]
    return bool(np.median(packed.cutoff_index) >= min_years * lag + packed.horizon)


def without_last_year(packed: PackedShard) -> PackedShard:
    """``packed`` without the last-year covariates (same arrays otherwise)."""
    dropped = (*LAST_YEAR_FEATURES, *GROUP_LAST_YEAR_FEATURES)
    names = tuple(n for n in packed.feature_names if n not in dropped)
    return dataclasses.replace(packed, feature_names=names, last_year=None)
