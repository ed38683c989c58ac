"""Sample paths -> the forecast frame of DESIGN.md section 2 (shared by the LSTM and baselines).

Every model, ours or a baseline, ends in the same array of joint sample paths
``paths[series, sample, step]``; this module turns it into the long ``forecasts/`` frame:

    sku_id, warehouse_id, cutoff, ds, step, mean, q0.05 .. q0.95, pi_steps, pi_mean, pi_q0.5 ..

Daily quantiles are read per step across samples. Protection-interval quantiles are read from the
per-path SUM over each series' own protection interval (lead time + review period, in periods), so
they keep the dependence between days that sample paths carry; adding daily quantiles would
overstate the spread and is never done.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import polars as pl

from inventory_scale import schema as S


def path_quantiles(paths: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Per-step quantiles across samples.

    Args:
        paths: ``[N, S, H]`` sample paths.
        quantiles: levels in (0, 1).

    Returns:
        ``[N, Q, H]`` quantiles, non-decreasing along Q.
    """
    q = np.quantile(paths, np.asarray(quantiles, dtype=np.float64), axis=1)  # [Q, N, H]
    return np.moveaxis(q, 0, 1).astype(np.float32)


def protection_sums(paths: np.ndarray, pi_steps: np.ndarray) -> np.ndarray:
    """Demand summed over each series' protection interval, per path.

    Args:
        paths: ``[N, S, H]`` sample paths.
        pi_steps: ``[N]`` protection-interval lengths in periods (clipped to ``[1, H]``).

    Returns:
        ``[N, S]`` per-path sums of the first ``pi_steps[n]`` steps.
    """
    n, _, h = paths.shape
    steps = np.clip(np.asarray(pi_steps, dtype=np.int64), 1, h)
    csum = np.cumsum(paths, axis=2, dtype=np.float64)  # [N, S, H]
    return csum[np.arange(n), :, steps - 1].astype(np.float32)


def protection_steps(
    lead_time_days: np.ndarray, review_period_days: np.ndarray, period_days: float
) -> np.ndarray:
    """Protection interval (lead time + review period) in periods of the series frequency, >= 1."""
    days = np.asarray(lead_time_days, dtype=np.float64) + np.asarray(review_period_days, dtype=np.float64)
    return np.maximum(1, np.ceil(days / period_days - 1e-9)).astype(np.int32)


def summarize_paths(
    paths: np.ndarray,
    series: pl.DataFrame,
    cutoff: dt.date,
    dates: Sequence[dt.date],
    quantiles: Sequence[float],
    pi_steps: np.ndarray,
    protection_quantiles: Sequence[float],
    point: np.ndarray | None = None,
) -> pl.DataFrame:
    """Build the forecast frame from sample paths.

    Args:
        paths: ``[N, S, H]`` non-negative sample paths of demand.
        series: ``N`` rows with ``sku_id, warehouse_id`` in the order of ``paths``.
        cutoff: forecast origin (last date of the history used).
        dates: the ``H`` forecast dates.
        quantiles: per-step quantile levels.
        pi_steps: ``[N]`` protection-interval lengths in periods.
        protection_quantiles: levels for the protection-interval sums.
        point: optional ``[N, H]`` point forecast for the ``mean`` column, for models whose
            point forecast is not the mean of their paths (the seasonal baselines: their
            bootstrapped paths are clipped at zero, which lifts the path mean of slow movers).

    Returns:
        ``N * H`` rows: keys, ``cutoff``, ``ds``, ``step`` (1-based), ``mean``, one column per
        quantile, ``pi_steps``, ``pi_mean`` and one ``pi_q*`` column per protection quantile.
    """
    n, _, h = paths.shape
    if series.height != n or len(dates) != h:
        raise ValueError(f"paths {paths.shape} do not match {series.height} series x {len(dates)} dates")
    mean = paths.mean(axis=1) if point is None else np.asarray(point, dtype=np.float32)  # [N, H]
    qs = path_quantiles(paths, quantiles)  # [N, Q, H]
    pi = protection_sums(paths, pi_steps)  # [N, S]
    pi_q = np.quantile(pi, np.asarray(protection_quantiles, dtype=np.float64), axis=1).T  # [N, P]
    cols: dict[str, object] = {
        S.SKU_ID: np.repeat(series[S.SKU_ID].to_numpy(), h),
        S.WAREHOUSE_ID: np.repeat(series[S.WAREHOUSE_ID].to_numpy(), h),
        S.CUTOFF: [cutoff] * (n * h),
        S.DS: np.tile(np.asarray(dates, dtype="datetime64[D]"), n),
        S.STEP: np.tile(np.arange(1, h + 1, dtype=np.int32), n),
        S.MEAN: mean.reshape(-1).astype(np.float32),
    }
    for j, q in enumerate(quantiles):
        cols[S.quantile_column(q)] = qs[:, j, :].reshape(-1)
    cols[S.PI_STEPS] = np.repeat(np.clip(pi_steps, 1, h).astype(np.int32), h)
    cols[S.PI_MEAN] = np.repeat(pi.mean(axis=1), h).astype(np.float32)
    for j, q in enumerate(protection_quantiles):
        cols[S.protection_quantile_column(q)] = np.repeat(pi_q[:, j], h).astype(np.float32)
    frame = pl.DataFrame(cols)
    return frame.with_columns(pl.col(S.DS).cast(pl.Date), pl.col(S.CUTOFF).cast(pl.Date))
