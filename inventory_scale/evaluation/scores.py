"""Numpy scoring kernels: scaled point errors, pinball loss, CRPS, interval coverage, bias.

Every kernel takes dense arrays over ``N`` series and ``H`` forecast steps and returns one value
per series (``[N]``, float64); :mod:`inventory_scale.evaluation.metrics` builds those arrays from
the forecast frame. Scales come from :mod:`inventory_scale.evaluation.scales` and must be finite
and positive: a zero scale raises instead of producing ``inf``.

CRPS two ways:

- :func:`crps_from_samples` is exact for the empirical distribution of the sample paths:
  ``E|X - y| - 0.5 E|X - X'|``, with ``E|X - X'| = 2 / S^2 * sum_i (2i - S - 1) x_(i)`` over the
  sorted samples (``O(S log S)`` per step, no ``S x S`` matrix).
- :func:`quantile_crps` approximates it from quantile forecasts through
  ``CRPS = 2 * integral_0^1 pinball_u du``: each level ``u_j`` stands for the cell between the
  midpoints to its neighbours (``0`` and ``1`` at the ends), so the weights sum to 1. Tails beyond
  the outermost levels are represented by the outermost quantiles, so the approximation
  is coarse there: for a normal forecast it is 1-2% off on the default 0.05 .. 0.95 grid and
  within 0.1% on a 0.01 .. 0.99 grid. Compare models on the same CRPS form.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inventory_scale.errors import ConfigError, DataQualityError, SchemaError

Levels = Sequence[float] | np.ndarray
"""Quantile levels: a sequence or a 1-D array of floats in (0, 1)."""

_CHUNK = 1024  # series per block in crps_from_samples (bounds the sorted copy's memory)


def _check_pair(y: np.ndarray, f: np.ndarray, name: str) -> None:
    if y.ndim != 2 or f.shape != y.shape:
        raise SchemaError(
            f"{name}: expected y and forecast of equal shape [N, H], got {y.shape} and {f.shape}"
        )


def _check_scale(scale: np.ndarray, n: int, name: str) -> np.ndarray:
    scale = np.asarray(scale, dtype=np.float64)
    if scale.shape != (n,):
        raise SchemaError(f"{name}: expected scale of shape [{n}], got {scale.shape}")
    bad = ~(np.isfinite(scale) & (scale > 0))
    if bad.any():
        raise DataQualityError(
            f"{name}: {int(bad.sum())} scale(s) are zero, negative or not finite at series index "
            f"{np.flatnonzero(bad)[:5].tolist()}; guard scales with evaluation.scales.series_scales"
        )
    return scale


def check_quantiles(quantiles: Levels) -> np.ndarray:
    """Quantile levels as a float64 array; :class:`ConfigError` unless strictly increasing in (0, 1)."""
    u = np.asarray(quantiles, dtype=np.float64)
    if u.ndim != 1 or ((u <= 0) | (u >= 1)).any() or (np.diff(u) <= 0).any():
        raise ConfigError(f"quantile levels must be strictly increasing in (0, 1), got {list(quantiles)}")
    return u


def mase(y: np.ndarray, f: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Mean absolute scaled error.

    Args:
        y: ``[N, H]`` actuals.
        f: ``[N, H]`` point forecasts.
        scale: ``[N]`` in-sample seasonal-naive MAE (``scale_mae``), > 0.

    Returns:
        ``[N]`` ``mean_h |y - f| / scale``.
    """
    _check_pair(y, f, "mase")
    s = _check_scale(scale, y.shape[0], "mase")
    return np.abs(np.asarray(y, np.float64) - f).mean(axis=1) / s


def rmsse(y: np.ndarray, f: np.ndarray, scale_mse: np.ndarray) -> np.ndarray:
    """Root mean squared scaled error (M5).

    Args:
        y: ``[N, H]`` actuals.
        f: ``[N, H]`` point forecasts.
        scale_mse: ``[N]`` in-sample mean squared one-step difference (``scale_mse``), > 0.

    Returns:
        ``[N]`` ``sqrt(mean_h (y - f)^2 / scale_mse)``.
    """
    _check_pair(y, f, "rmsse")
    s = _check_scale(scale_mse, y.shape[0], "rmsse")
    return np.sqrt(np.square(np.asarray(y, np.float64) - f).mean(axis=1) / s)


def pinball(y: np.ndarray, q_preds: np.ndarray, quantiles: Levels) -> np.ndarray:
    """Unscaled pinball (quantile) loss per series and level.

    Args:
        y: ``[N, H]`` actuals.
        q_preds: ``[N, Q, H]`` quantile forecasts, level ``quantiles[j]`` in ``q_preds[:, j]``.
        quantiles: ``Q`` levels in (0, 1).

    Returns:
        ``[N, Q]`` ``mean_h max(u (y - q), (u - 1)(y - q))``.
    """
    u = check_quantiles(quantiles)
    n, h = y.shape
    if q_preds.shape != (n, u.size, h):
        raise SchemaError(f"pinball: expected q_preds of shape [{n}, {u.size}, {h}], got {q_preds.shape}")
    err = np.asarray(y, np.float64)[:, None, :] - q_preds  # [N, Q, H]
    u3 = u[None, :, None]
    return np.maximum(u3 * err, (u3 - 1.0) * err).mean(axis=2)


def scaled_pinball(y: np.ndarray, q_preds: np.ndarray, quantiles: Levels, scale: np.ndarray) -> np.ndarray:
    """Scaled pinball loss (M5 SPL), averaged with equal weight over the levels.

    Args:
        y: ``[N, H]`` actuals.
        q_preds: ``[N, Q, H]`` quantile forecasts.
        quantiles: ``Q`` levels in (0, 1), strictly increasing.
        scale: ``[N]`` positive scales (``scale_mae``).

    Returns:
        ``[N]`` ``mean_{u, h} pinball_u / scale``.
    """
    s = _check_scale(scale, y.shape[0], "scaled_pinball")
    return pinball(y, q_preds, quantiles).mean(axis=1) / s


def quantile_weights(quantiles: Levels) -> np.ndarray:
    """Midpoint-rule weights of the levels on [0, 1]: ``[Q]``, summing to 1 (see module doc)."""
    u = check_quantiles(quantiles)
    edges = np.concatenate([[0.0], (u[1:] + u[:-1]) / 2.0, [1.0]])
    return np.diff(edges)


def quantile_crps(y: np.ndarray, q_preds: np.ndarray, quantiles: Levels, scale: np.ndarray) -> np.ndarray:
    """CRPS approximated from quantile forecasts, scaled: ``2 * sum_j w_j pinball_{u_j} / scale``.

    Args:
        y: ``[N, H]`` actuals.
        q_preds: ``[N, Q, H]`` quantile forecasts.
        quantiles: ``Q`` levels, strictly increasing in (0, 1).
        scale: ``[N]`` positive scales (``scale_mae``).

    Returns:
        ``[N]`` approximate scaled CRPS, averaged over the steps.
    """
    s = _check_scale(scale, y.shape[0], "quantile_crps")
    return 2.0 * (pinball(y, q_preds, quantiles) @ quantile_weights(quantiles)) / s


def crps_from_samples(samples: np.ndarray, y: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Exact CRPS of the empirical sample distribution, averaged over steps and optionally scaled.

    Args:
        samples: ``[N, S, H]`` sample paths.
        y: ``[N, H]`` actuals.
        scale: ``[N]`` positive scales (``scale_mae``); ``None`` returns the unscaled CRPS.

    Returns:
        ``[N]`` ``mean_h (E|X - y| - 0.5 E|X - X'|) / scale``.
    """
    n, num, h = samples.shape
    if y.shape != (n, h) or num == 0:
        raise SchemaError(f"crps_from_samples: samples {samples.shape} do not match y {y.shape}")
    s = np.ones(n) if scale is None else _check_scale(scale, n, "crps_from_samples")
    ranks = 2.0 * np.arange(1, num + 1, dtype=np.float64) - num - 1.0  # [S]
    out = np.empty(n, dtype=np.float64)
    yy = np.asarray(y, np.float64)
    for lo in range(0, n, _CHUNK):  # blocks of series, not one loop per series
        block = samples[lo : lo + _CHUNK]  # [B, S, H], sorted in its own dtype, summed in float64
        abs_err = np.abs(block - yy[lo : lo + _CHUNK, None, :]).mean(axis=1)  # [B, H]
        spread = np.einsum("bsh,s->bh", np.sort(block, axis=1), ranks) / num**2  # 0.5 E|X - X'|
        out[lo : lo + _CHUNK] = (abs_err - spread).mean(axis=1)
    return out / s


def pit_coverage(samples: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    """Expected randomized-PIT coverage of the central ``level`` interval, for count forecasts.

    With a discrete forecast the quantile interval ``[q_a, q_b]`` holds its end-points with
    positive probability, so a closed interval covers more than ``level`` even when the forecast
    is calibrated (an intermittent series with ``q_a = 0`` covers every zero). The randomized PIT
    ``u ~ U[F(y-), F(y)]`` (Czado, Gneiting & Held 2009) is uniform for a calibrated count
    forecast; this returns the expected share of steps with ``u`` in ``[a, b] = [(1 - level) / 2,
    (1 + level) / 2]``: per step, the overlap of ``[F(y-), F(y)]`` with ``[a, b]`` over its width
    (the indicator ``F(y) in [a, b]`` when the width is zero). ``F`` is the empirical CDF of the
    samples. Exact, no random draw; equals the interval coverage for continuous forecasts.

    Args:
        samples: ``[N, S, H]`` sample paths.
        y: ``[N, H]`` actuals.
        level: nominal coverage in (0, 1).

    Returns:
        ``[N]`` expected coverage in [0, 1].
    """
    n, num, h = samples.shape
    if y.shape != (n, h) or num == 0:
        raise SchemaError(f"pit_coverage: samples {samples.shape} do not match y {y.shape}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"pit_coverage: level must be in (0, 1), got {level}")
    a, b = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    out = np.empty(n, dtype=np.float64)
    yy = np.asarray(y, np.float64)
    for lo in range(0, n, _CHUNK):
        block = samples[lo : lo + _CHUNK]  # [B, S, H]
        target = yy[lo : lo + _CHUNK, None, :]
        below = (block < target).mean(axis=1)  # F(y-) [B, H]
        upto = (block <= target).mean(axis=1)  # F(y)
        width = upto - below
        overlap = np.clip(np.minimum(upto, b) - np.maximum(below, a), 0.0, None)
        point = ((upto >= a) & (upto <= b)).astype(np.float64)
        share = np.where(width > 0, overlap / np.where(width > 0, width, 1.0), point)
        out[lo : lo + _CHUNK] = share.mean(axis=1)
    return out


def interval_coverage(y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Share of steps whose actual lies in the closed interval ``[lo, hi]``.

    Args:
        y: ``[N, H]`` actuals.
        lo: ``[N, H]`` lower bounds.
        hi: ``[N, H]`` upper bounds.

    Returns:
        ``[N]`` coverage in [0, 1].
    """
    _check_pair(y, lo, "interval_coverage")
    _check_pair(y, hi, "interval_coverage")
    return ((y >= lo) & (y <= hi)).mean(axis=1, dtype=np.float64)


def bias(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Relative bias ``sum_h (f - y) / sum_h y``; NaN (undefined) where the actuals sum to zero.

    Args:
        y: ``[N, H]`` actuals (>= 0).
        f: ``[N, H]`` point forecasts.

    Returns:
        ``[N]`` bias: > 0 over-forecasts, < 0 under-forecasts; NaN marks series with no demand
        in the horizon (``evaluate_forecasts`` turns it into null).
    """
    _check_pair(y, f, "bias")
    total = np.asarray(y, np.float64).sum(axis=1)
    diff = (np.asarray(f, np.float64) - y).sum(axis=1)
    out = np.full(total.shape, np.nan)
    np.divide(diff, total, out=out, where=total != 0)
    return out
