"""Baseline forecasters that end, like the LSTM, in joint sample paths ``[N, S, H]``.

Paths go through ``forecast_frame.summarize_paths`` and ``evaluation.metrics`` exactly like the
LSTM's, so the baselines share the whole code path::

    rng = np.random.default_rng(seed)
    paths = baseline_paths("seasonal_ma", (values, indptr), horizon=28, season_length=7,
                           num_paths=200, rng=rng)                       # [N, 200, 28] float32

``rng`` may also be :class:`~inventory_scale.inventory.draws.KeyedDraws` of the series (the policy
A/B's): a series' paths then depend on its key, not on which other series are forecast.

History is per series, oldest first, ending at the forecast origin (the cutoff): a list of 1-D
arrays, or CSR ``(values, indptr)`` with series ``n`` in ``values[indptr[n]:indptr[n + 1]]``. A
tuple is always read as CSR. Only the last few seasons are used, gathered into a right-aligned
padded matrix whose width is a multiple of ``m = season_length``, so column ``c`` has phase
``c mod m`` for every series and forecast step ``h`` (1-based) has phase ``(h - 1) mod m``.

- ``seasonal_naive``: point = the last season repeated. Residuals: in-sample seasonal differences
  ``y_t - y_{t-m}`` over the last ``residual_seasons`` seasons. Paths are a seasonal random walk
  driven by residuals resampled independently per path and step (bootstrap):
  ``path_h = point_h + r_h + r_{h-m} + ...`` (``floor((h - 1) / m) + 1`` draws), so for
  ``h <= m`` a step is the point plus one resampled residual and the spread widens each further
  season, as the model implies (sd ``sigma sqrt(k + 1)``). Clipped at 0 after summing.
- ``seasonal_ma``: point = ``level x index[phase]``: level = mean of the last ``level_seasons``
  whole seasons; seasonal index = mean by phase over the last ``index_seasons`` seasons divided
  by the mean of those phase means (1 where the mean is 0). Residuals: ``y_t - fitted_t`` with
  ``fitted_t`` = mean of the whole seasons before ``t`` (as many as the series allows, up to
  ``level_seasons``) times the final seasonal index; over the last ``residual_seasons`` seasons.
  Paths = point + one resampled residual per path and step, clipped at 0.
- Short series: shorter than one season, the point is the mean of what exists (index 1); empty,
  zeros. A series without residuals gets zero-width paths. Output is float32, finite, >= 0.

``seasonal_naive_fit`` / ``seasonal_ma_fit`` return the point forecast and residuals
(:class:`BaselineFit`) without sampling; the ``*_paths`` functions sample from them. The seasonal
index of the residual fit is the final one (estimated with the residual window's data), a small
in-sample optimism that only narrows the residual spread slightly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from inventory_scale.errors import ConfigError, DataQualityError, SchemaError
from inventory_scale.inventory.draws import KeyedDraws

log = logging.getLogger(__name__)

Rng = np.random.Generator | KeyedDraws
"""A numpy generator, or :class:`~inventory_scale.inventory.draws.KeyedDraws` of the series."""

History = Sequence[np.ndarray] | tuple[np.ndarray, np.ndarray]
"""Series histories: a list of 1-D arrays or CSR ``(values, indptr)``."""


def to_csr(history: History) -> tuple[np.ndarray, np.ndarray]:
    """CSR ``(values [T] float64, indptr [N + 1] int64)`` of ``history``, validated.

    Raises:
        SchemaError: ``indptr`` is not a non-decreasing index from 0 to ``len(values)``.
        DataQualityError: a value is NaN or infinite.
    """
    if isinstance(history, tuple):
        values = np.asarray(history[0], dtype=np.float64).reshape(-1)
        indptr = np.asarray(history[1], dtype=np.int64)
    else:
        values = (
            np.concatenate([np.asarray(s, np.float64).reshape(-1) for s in history])
            if len(history)
            else np.zeros(0)
        )
        indptr = np.concatenate([[0], np.cumsum([np.size(s) for s in history])]).astype(np.int64)
    if (
        indptr.ndim != 1
        or indptr.size < 1
        or indptr[0] != 0
        or indptr[-1] != values.size
        or (np.diff(indptr) < 0).any()
    ):
        raise SchemaError(f"indptr must rise from 0 to len(values) = {values.size}, got {indptr[:5]}...")
    if not np.isfinite(values).all():
        bad = np.searchsorted(indptr, np.flatnonzero(~np.isfinite(values)), side="right") - 1
        raise DataQualityError(
            f"history has {bad.size} NaN/inf values in series {np.unique(bad)[:5].tolist()}"
        )
    return values, indptr


def padded_history(values: np.ndarray, indptr: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Last ``width`` values of each series, right-aligned.

    Returns:
        ``x [N, W]`` (0 where invalid) and ``valid [N, W]`` (False left of a series' start).
    """
    cols = np.arange(width)
    src = indptr[1:, None] - width + cols[None, :]  # [N, W] index into values
    valid = src >= indptr[:-1, None]
    x = np.where(valid, values[np.clip(src, 0, max(values.size - 1, 0))] if values.size else 0.0, 0.0)
    return x, valid


def _width(indptr: np.ndarray, m: int, seasons: int) -> int:
    """Padded width: ``seasons`` seasons, at most the longest series rounded up to whole seasons."""
    longest = int(np.diff(indptr).max(initial=0))
    return m * max(1, min(seasons, -(-longest // m)))


def _check_args(horizon: int, season_length: int, num_paths: int, seasons: int) -> None:
    if min(horizon, season_length, num_paths, seasons) < 1:
        raise ConfigError(
            "horizon, season_length, num_paths and the *_seasons settings must be >= 1, got "
            f"{horizon}, {season_length}, {num_paths} and {seasons}"
        )


def resample(residuals: np.ndarray, valid: np.ndarray, shape: tuple[int, int], rng: Rng) -> np.ndarray:
    """Draw residuals uniformly with replacement among each series' valid ones.

    Args:
        residuals: ``[N, R]`` residuals.
        valid: ``[N, R]`` which residuals exist.
        shape: ``(S, K)`` draws per series.
        rng: random generator, or keyed draws of the ``N`` series (a series' draws then depend
            on its key only, not on the other series).

    Returns:
        ``[N, S, K]`` float32 draws; all zeros for a series without valid residuals.
    """
    n, k = residuals.shape[0], shape[0] * shape[1]
    if residuals.shape[1] == 0:
        return np.zeros((n, *shape), dtype=np.float32)
    order = np.argsort(~valid, axis=1, kind="stable")  # valid residuals first, in order
    packed = np.take_along_axis(np.where(valid, residuals, 0.0), order, axis=1).astype(np.float32)  # [N, R]
    count = valid.sum(axis=1).astype(np.float32)[:, None]  # [N, 1]
    if isinstance(rng, KeyedDraws) and rng.n != n:
        raise SchemaError(f"keyed draws for {rng.n} series, residuals of {n} given")
    if isinstance(rng, KeyedDraws):  # step-major slots: a longer horizon keeps the first steps' draws
        u = rng.uniform((shape[1], shape[0]), np.float32).transpose(0, 2, 1).reshape(n, k)
    else:
        u = rng.random((n, k), dtype=np.float32)
    idx = (u * count).astype(np.int32)  # float32 keeps memory low
    np.minimum(idx, np.maximum(count - 1, 0).astype(np.int32), out=idx)  # rounding up to count
    return np.take_along_axis(packed, idx, axis=1).reshape(n, *shape)


def _add_point(point: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``max(point + noise, 0)`` as float32 paths ``[N, S, H]``, in place on ``noise``."""
    np.add(noise, point[:, None, :].astype(np.float32), out=noise)
    return np.maximum(noise, 0.0, out=noise)


def _short_mean(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[N]`` mean of the valid values (0 for an empty series)."""
    count = valid.sum(axis=1)
    return np.where(count > 0, x.sum(axis=1) / np.maximum(count, 1), 0.0)


@dataclass(frozen=True)
class BaselineFit:
    """A fitted baseline: point forecast and the in-sample residuals its paths resample.

    Attributes:
        point: ``[N, H]`` point forecast.
        residuals: ``[N, R]`` in-sample residuals (0 where not valid).
        valid: ``[N, R]`` which residuals exist.
    """

    point: np.ndarray
    residuals: np.ndarray
    valid: np.ndarray


def seasonal_naive_fit(
    history: History, horizon: int, season_length: int, *, residual_seasons: int = 8
) -> BaselineFit:
    """Seasonal-naive point forecast (last season repeated) and seasonal-difference residuals.

    Args:
        history: per-series history ending at the cutoff (list of arrays or CSR).
        horizon: steps ``H``.
        season_length: seasonal period ``m``.
        residual_seasons: seasons of in-sample residuals ``y_t - y_{t-m}`` kept.

    Returns:
        The fit: ``point [N, H]``, residuals ``[N, R]`` with ``R <= residual_seasons * m``.
    """
    _check_args(horizon, season_length, 1, residual_seasons)
    values, indptr = to_csr(history)
    m = season_length
    x, valid = padded_history(values, indptr, _width(indptr, m, residual_seasons + 1))  # [N, W]
    w = x.shape[1]
    full = valid[:, w - m]  # at least one whole season
    phase_col = w - m + (np.arange(horizon) % m)  # [H] column of the last season with each step's phase
    point = np.where(full[:, None], x[:, phase_col], _short_mean(x, valid)[:, None])  # [N, H]
    return BaselineFit(point, x[:, m:] - x[:, :-m], valid[:, m:] & valid[:, :-m])


def seasonal_naive_paths(
    history: History,
    horizon: int,
    season_length: int,
    num_paths: int,
    rng: Rng,
    *,
    residual_seasons: int = 8,
) -> np.ndarray:
    """Seasonal-naive sample paths: last season plus a seasonal random walk of resampled residuals.

    Args:
        history: per-series history ending at the cutoff (list of arrays or CSR).
        horizon: steps ``H``.
        season_length: seasonal period ``m``.
        num_paths: paths ``S`` per series.
        rng: random generator or keyed draws (the only source of randomness).
        residual_seasons: seasons of in-sample residuals to resample.

    Returns:
        ``[N, S, H]`` float32 paths, >= 0.
    """
    _check_args(horizon, season_length, num_paths, residual_seasons)
    fit = seasonal_naive_fit(history, horizon, season_length, residual_seasons=residual_seasons)
    m = season_length
    seasons = -(-horizon // m)
    draws = resample(fit.residuals, fit.valid, (num_paths, seasons * m), rng).reshape(
        -1, num_paths, seasons, m
    )
    walk = np.cumsum(draws, axis=2).reshape(-1, num_paths, seasons * m)[:, :, :horizon]  # [N, S, H]
    return _add_point(fit.point, np.ascontiguousarray(walk))


def seasonal_ma_fit(
    history: History,
    horizon: int,
    season_length: int,
    *,
    level_seasons: int = 4,
    index_seasons: int = 8,
    residual_seasons: int = 8,
) -> BaselineFit:
    """Moving average of whole seasons times a seasonal index, and its in-sample residuals.

    Args:
        history: per-series history ending at the cutoff (list of arrays or CSR).
        horizon: steps ``H``.
        season_length: seasonal period ``m``.
        level_seasons: whole seasons ``k`` averaged for the level (4 weeks for daily data).
        index_seasons: seasons the seasonal index is estimated from.
        residual_seasons: seasons of in-sample residuals kept.

    Returns:
        The fit: ``point [N, H]``, residuals ``[N, R]`` with ``R <= residual_seasons * m``.
    """
    _check_args(horizon, season_length, 1, min(level_seasons, index_seasons, residual_seasons))
    values, indptr = to_csr(history)
    m, n = season_length, indptr.size - 1
    total = max(index_seasons, level_seasons + residual_seasons)
    x, valid = padded_history(values, indptr, _width(indptr, m, total))  # [N, W]
    w = x.shape[1]
    length = valid.sum(axis=1)  # [N] usable history (<= W)

    # seasonal index from the last index_seasons seasons: phase means / mean of phase means
    ki = min(index_seasons, w // m)
    counts = valid[:, w - ki * m :].reshape(n, ki, m).sum(axis=1)  # [N, m]
    phase_mean = x[:, w - ki * m :].reshape(n, ki, m).sum(axis=1) / np.maximum(counts, 1)
    has = counts > 0
    centre = (phase_mean * has).sum(axis=1) / np.maximum(has.sum(axis=1), 1)  # [N]
    usable = (length >= m) & (centre > 0)
    index = np.where(usable[:, None], phase_mean / np.where(usable, centre, 1.0)[:, None], 1.0)  # [N, m]

    # level: mean of the last whole seasons (mean of what exists when shorter than a season)
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(x, axis=1)], axis=1)  # [N, W + 1]
    k_point = np.minimum(level_seasons, length // m)  # [N]
    span = np.maximum(k_point * m, 1)
    level = np.where(k_point > 0, (csum[:, w] - csum[np.arange(n), w - span]) / span, _short_mean(x, valid))
    point = level[:, None] * index[:, np.arange(horizon) % m]  # [N, H]

    # in-sample residuals: fitted_t = mean of the k_res whole seasons before t x index[phase(t)]
    k_res = np.minimum(level_seasons, np.maximum(length - 1, 0) // m)  # [N]; >= 1 leaves a residual
    win = np.maximum(k_res * m, 1)[:, None]  # [N, 1]
    t = np.arange(w - min(residual_seasons * m, w), w)  # [R] residual columns
    lo = np.clip(t[None, :] - win, 0, w)  # [N, R]
    fitted = (csum[:, t] - np.take_along_axis(csum, lo, axis=1)) / win * index[:, t % m]
    res_ok = (k_res[:, None] > 0) & (t[None, :] - win >= (w - length)[:, None])
    return BaselineFit(point, np.where(res_ok, x[:, t] - fitted, 0.0), res_ok)


def seasonal_ma_paths(
    history: History,
    horizon: int,
    season_length: int,
    num_paths: int,
    rng: Rng,
    *,
    level_seasons: int = 4,
    index_seasons: int = 8,
    residual_seasons: int = 8,
) -> np.ndarray:
    """Seasonal moving-average sample paths: point plus one resampled residual per path and step.

    Args:
        history: per-series history ending at the cutoff (list of arrays or CSR).
        horizon: steps ``H``.
        season_length: seasonal period ``m``.
        num_paths: paths ``S`` per series.
        rng: random generator or keyed draws.
        level_seasons: whole seasons averaged for the level.
        index_seasons: seasons the seasonal index is estimated from.
        residual_seasons: seasons of in-sample residuals to resample.

    Returns:
        ``[N, S, H]`` float32 paths, >= 0.
    """
    _check_args(horizon, season_length, num_paths, min(level_seasons, index_seasons, residual_seasons))
    fit = seasonal_ma_fit(
        history,
        horizon,
        season_length,
        level_seasons=level_seasons,
        index_seasons=index_seasons,
        residual_seasons=residual_seasons,
    )
    draws = resample(fit.residuals, fit.valid, (num_paths, horizon), rng)  # [N, S, H]
    return _add_point(fit.point, draws)


FITS: dict[str, Callable[..., BaselineFit]] = {
    "seasonal_naive": seasonal_naive_fit,
    "seasonal_ma": seasonal_ma_fit,
}
"""Baseline name -> point-forecast fit (the ``mean`` column of its forecast frame)."""

BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "seasonal_naive": seasonal_naive_paths,
    "seasonal_ma": seasonal_ma_paths,
}
"""Baseline name (``model.name``) -> path generator."""


def baseline_paths(
    name: str,
    history: History,
    *,
    horizon: int,
    season_length: int,
    num_paths: int,
    rng: Rng,
) -> np.ndarray:
    """Sample paths ``[N, S, H]`` of the baseline ``name`` with its default settings.

    Raises:
        ConfigError: unknown ``name``.
    """
    if name not in BASELINES:
        raise ConfigError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    paths = BASELINES[name](history, horizon, season_length, num_paths, rng)
    log.debug("%s: %d series x %d paths x %d steps", name, *paths.shape)
    return paths
