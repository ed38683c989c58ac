"""What each policy of the A/B backtest orders from: forecasts from a cutoff or a later origin.

A :class:`Forecast` holds one forecaster's sample paths (``[N, S, H']``, rows in the episode's
key order), point forecasts and residual sigmas:

- the LSTM (:func:`lstm_models` trains once per cutoff, :func:`lstm_at` forecasts from an origin,
  conditioned on the sales up to it), its paths extended past the trained horizon by seasonal
  resampling (:func:`extend_paths`);
- the baselines (:func:`baseline_at`: seasonal naive, seasonal moving average, AutoETS), refit at
  every origin;
- the oracle (:func:`oracle_at`, synthetic data): paths from the true demand distribution;
- hindsight (:func:`hindsight_at`): every path is the episode's realised demand, known in advance.

Every random draw is keyed by series (``inventory/draws.py``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import tempfile
from typing import Any

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.data.features import offset_date
from inventory_scale.errors import DataQualityError
from inventory_scale.inventory.draws import (
    BASELINE_PATHS,
    EXTEND_PATHS,
    ORACLE_PATHS,
    KeyedDraws,
    series_keys,
)
from inventory_scale.inventory.policies import (
    autoets_forecast,
    estimate_dispersion,
    oracle_paths,
    residual_sigma,
)

log = logging.getLogger(__name__)

KEYS = [S.SKU_ID, S.WAREHOUSE_ID]


@dataclasses.dataclass(frozen=True)
class Forecast:
    """One forecaster's view from a cutoff, rows in the episode's key order."""

    paths: np.ndarray | None  # [N, S, H']
    point: np.ndarray  # [N, H']
    sigma: np.ndarray  # [N]


def matrix(frame: pl.DataFrame, keys: pl.DataFrame, col: str, start: dt.date, days: int) -> np.ndarray:
    """``[N, days]`` of ``col`` for dates ``start .. start + days - 1`` (NaN where absent)."""
    out = np.full((keys.height, days), np.nan)
    if frame.is_empty():
        return out
    f = frame.join(keys.with_row_index("_row"), on=KEYS, how="inner").with_columns(
        ((pl.col(S.DATE) - pl.lit(start)).dt.total_days()).alias("_day")
    )
    f = f.filter((pl.col("_day") >= 0) & (pl.col("_day") < days))
    out[f["_row"].to_numpy(), f["_day"].to_numpy()] = f[col].cast(pl.Float64).to_numpy()
    return out


def align(order: pl.DataFrame, keys: pl.DataFrame) -> np.ndarray:
    """Index into ``order`` (rows of a forecaster's output) for each row of ``keys``."""
    idx = keys.join(order.select(KEYS).with_row_index("_src"), on=KEYS, how="left")["_src"]
    if idx.null_count():
        raise DataQualityError(f"forecaster returned no rows for {idx.null_count()} series")
    return idx.to_numpy()


def baseline_at(name: str, cfg: Config, data: Any, cutoff: dt.date, keys: pl.DataFrame) -> Forecast:
    """Baseline ``name`` refit on ``data`` (the episode's series up to ``cutoff``), ``keys`` order.

    Seasonal naive and moving average give residual-resampled paths; AutoETS point + sigma only.
    """
    from inventory_scale.forecast import pack
    from inventory_scale.models.baselines import FITS, baseline_paths

    packed = pack(data, cfg, cutoff, text=False, last_year=False, events=())
    history = [
        packed.values[packed.indptr[i] : packed.indptr[i] + packed.cutoff_index[i]]
        for i in range(packed.n_series)
    ]
    h, m = cfg.data.horizon, cfg.data.season_length
    rng = KeyedDraws.of((cfg.seed, cutoff.toordinal(), BASELINE_PATHS), series_keys(packed.series))
    idx = align(packed.series, keys)
    if name == "autoets":
        point, sigma = autoets_forecast(history, h, m)
        return Forecast(None, point[idx], sigma[idx])
    paths = baseline_paths(
        name, history, horizon=h, season_length=m, num_paths=cfg.forecast.num_paths, rng=rng
    )
    fit = FITS[name](history, h, m)
    return Forecast(
        paths[idx].astype(np.float64), fit.point[idx], residual_sigma(fit.residuals, fit.valid)[idx]
    )


def fit_horizon(ahead: int, configured: int, n_periods: np.ndarray) -> int:
    """Horizon the policy LSTM is trained at: ``ahead`` when the history allows it, else shorter.

    Training needs two horizons of history (a training and a held-out window), so a horizon longer
    than half the median series' history would leave most series out of training. The result is
    never below the ``configured`` horizon (the forecast stage's), and never above ``ahead``.
    """
    supported = int(np.median(n_periods)) // 2 if n_periods.size else 0
    return max(min(ahead, supported), min(configured, ahead))


def extend_paths(paths: np.ndarray, ahead: int, season_length: int, draws: KeyedDraws) -> np.ndarray:
    """``[N, S, H]`` paths extended to ``[N, S, ahead]`` by seasonal resampling.

    Step ``t >= H`` takes step ``t - k m`` (the latest one sampled with the same phase, ``m`` the
    season length) from a randomly chosen path of the same series, so a path's extension does not
    repeat its own values (which would overstate the variance of protection-interval sums). The
    choice for (step ``t``, path ``j``) is keyed uniform ``(t - H, j)`` of the series (``draws``).
    """
    n, s, h = paths.shape
    if ahead <= h:
        return paths[:, :, :ahead]
    m = min(season_length, h)
    out = np.empty((n, s, ahead), dtype=paths.dtype)
    out[:, :, :h] = paths
    rows = np.arange(n)[:, None]
    picks = np.minimum((draws.uniform((ahead - h, s)) * s).astype(np.int64), s - 1)  # [N, ahead - H, S]
    for t in range(h, ahead):
        src = t - m * ((t - h) // m + 1)
        out[:, :, t] = out[rows, picks[:, t - h], src]
    return out


@dataclasses.dataclass
class LstmModels:
    """The LSTM forecasters of one cutoff, one per shard, and the config they forecast with."""

    cfg: Config  # data.horizon = the trained horizon (fit_horizon)
    ahead: int
    shards: list[tuple[int, pl.DataFrame, Any]]  # (shard id, its keys, module or ensemble)


def lstm_models(
    cfg: Config, ahead: int, cutoff: dt.date, keys: pl.DataFrame, opts: io.StorageOptions | None
) -> LstmModels:
    """Train the LSTM of every shard on data up to ``cutoff`` (no checkpoint kept).

    The network is trained at :func:`fit_horizon` periods; when that is shorter than ``ahead``
    (short histories), :func:`lstm_at` extends its paths by :func:`extend_paths`.
    """
    from inventory_scale.distributed.sharding import assign_shards
    from inventory_scale.forecast import attach_planned, list_series, load_shard, train_ensemble

    series = list_series(cfg.data.root, cutoff, opts).join(keys, on=KEYS, how="semi")
    h = fit_horizon(ahead, cfg.data.horizon, series[S.N_PERIODS].to_numpy())
    if h < ahead:
        log.info(
            "policy backtest %s: lstm trained at horizon %d (history too short for %d), "
            "paths extended by seasonal resampling",
            cutoff, h, ahead,
        )  # fmt: skip
    fcfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, horizon=h))
    shards = assign_shards(series, cfg.ray.shard_size, cfg.ray.group_by)
    out = []
    for part in shards.partition_by(S.SHARD, maintain_order=True):
        sid = int(part[S.SHARD][0])
        data = attach_planned(load_shard(cfg.data.root, part.select(KEYS), cutoff, opts), fcfg, cutoff, opts)
        with tempfile.TemporaryDirectory(prefix="policy-ckpt-") as tmp:
            module, _, _ = train_ensemble(data, fcfg, cutoff=cutoff, shard_id=sid, ckpt_dir=tmp)
        out.append((sid, part.select(KEYS), module))
    return LstmModels(fcfg, ahead, out)


def lstm_at(
    models: LstmModels, origin: dt.date, keys: pl.DataFrame, opts: io.StorageOptions | None
) -> Forecast:
    """LSTM paths ``models.ahead`` periods past ``origin``, conditioned on the sales up to it."""
    from inventory_scale.forecast import attach_planned, forecast_shard, load_shard

    cfg = models.cfg
    frames, arrays = [], []
    for sid, part, module in models.shards:
        data = attach_planned(load_shard(cfg.data.root, part, origin, opts), cfg, origin, opts)
        frame, paths = forecast_shard(module, data, cfg, cutoff=origin, shard_id=sid)
        frames.append(frame.select(KEYS).unique(maintain_order=True))
        arrays.append(paths)
    idx = align(pl.concat(frames), keys)
    paths = np.concatenate(arrays)[idx].astype(np.float64)
    draws = KeyedDraws.of((cfg.seed, origin.toordinal(), EXTEND_PATHS), series_keys(keys))
    paths = extend_paths(paths, models.ahead, cfg.data.season_length, draws)
    return Forecast(paths, paths.mean(axis=1), np.zeros(keys.height))


def forecast_origins(horizon: int, every: int | None) -> list[int]:
    """Episode days a forecast is made at: 0, then every ``every`` periods before ``horizon``."""
    return list(range(0, horizon, every)) if every else [0]


def oracle_at(
    cfg: Config, truth: pl.DataFrame, keys: pl.DataFrame, cutoff: dt.date, horizon: int
) -> Forecast:
    start = offset_date(cutoff, cfg.data.freq, 1)
    mean = matrix(truth, keys, S.DEMAND_MEAN, start, horizon)
    known = int(np.max(np.flatnonzero(np.isfinite(mean).any(axis=0)), initial=-1)) + 1
    m = cfg.data.season_length
    for t in range(max(known, m), horizon):  # past the data: repeat the last season
        mean[:, t] = mean[:, t - m]
    mean = np.nan_to_num(mean)
    lo = offset_date(cutoff, cfg.data.freq, -365)
    hist = truth.filter(pl.col(S.DATE) > lo)
    k = estimate_dispersion(
        matrix(hist, keys, S.DEMAND, lo, 365 + horizon),
        matrix(hist, keys, S.DEMAND_MEAN, lo, 365 + horizon),
    )
    draws = KeyedDraws.of((cfg.seed, cutoff.toordinal(), ORACLE_PATHS), series_keys(keys))
    return Forecast(oracle_paths(mean, k, cfg.forecast.num_paths, draws), mean, np.zeros(keys.height))


def hindsight_at(demand: np.ndarray, ahead: int, num_paths: int) -> Forecast:
    """``num_paths`` identical paths: the realised ``demand [N, H]`` of the episode, then 0 to ``ahead``.

    Perfect foresight of demand (lead times stay uncertain: the path policy still samples them):
    ours on it earns what perfect point forecasts would through the same allocation, on real data
    too. Nothing is demanded past the episode, whose leftover stock is only written down.
    """
    n, h = demand.shape
    path = np.zeros((n, max(ahead, h)))
    path[:, :h] = np.maximum(np.nan_to_num(demand), 0.0)
    paths = np.broadcast_to(path[:, None, :ahead], (n, num_paths, ahead))  # [N, S, ahead] read-only view
    return Forecast(paths, path[:, :ahead], np.zeros(n))
