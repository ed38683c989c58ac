"""The peers users would pick instead of us, each behind one small interface.

Every peer takes the Nixtla long frame of the history up to a cutoff (``unique_id, ds, y``;
``ds`` a pandas datetime, daily) and returns the Nixtla output frame (``unique_id, ds, <alias>``
and, for probabilistic peers, ``<alias>-lo-<level>`` / ``<alias>-hi-<level>`` columns) with its fit
and predict wall times; :func:`to_forecast_frame` turns that into the project's forecast frame
(``sku_id, warehouse_id, cutoff, ds, step, mean, q*``), so ``evaluation.metrics`` scores every
model the same way::

    spec = PEERS["autoets"]
    result = spec.run(train, settings)                       # PeerResult
    frame = to_forecast_frame(result, keys, cutoff, settings.quantiles)

| peer | library | model | probabilistic |
| --- | --- | --- | --- |
| ``seasonal_naive`` | statsforecast | ``SeasonalNaive(m)`` with its normal intervals | yes |
| ``autoets`` | statsforecast | ``AutoETS(m)`` with its normal intervals | yes |
| ``lightgbm`` | mlforecast | LightGBM (tweedie), lags 1-7/14/28, rolling means, calendar | conformal |
| ``nf_lstm`` | neuralforecast | ``LSTM`` (MAE loss): same context, horizon, hidden size, layers | no |
| ``nf_lstm_negbin`` | neuralforecast | the same LSTM with ``DistributionLoss("NegativeBinomial")`` | yes |

The quantile ``q`` of a symmetric-interval peer is the ``lo`` (``q < 0.5``) or ``hi`` bound of
level ``100 |1 - 2q|``; ``q0.5`` is the ``median`` column when present, else the point forecast.
Forecasts and quantiles are clipped at 0 (demand is non-negative, so this only improves a normal
interval) and quantiles made non-decreasing. Peers see the target only (plus calendar features for
LightGBM): no prices, promotions, events or in-stock flags, which ours uses.

The libraries are imported inside the adapters, so this module imports without the ``bench`` extra.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.errors import ConfigError, SchemaError

log = logging.getLogger(__name__)

LIBRARY = {
    "seasonal_naive": "statsforecast",
    "autoets": "statsforecast",
    "lightgbm": "mlforecast",
    "nf_lstm": "neuralforecast",
    "nf_lstm_negbin": "neuralforecast",
}
"""Peer -> the library it needs (all from the ``bench`` extra)."""

EXTRA_HINT = "pip install -e '.[bench]'"


@dataclass(frozen=True)
class PeerSettings:
    """What every peer is told: the same horizon, context, network size and step budget as ours.

    Attributes:
        horizon: H, forecast periods.
        season_length: m (7 for daily data).
        context_length: L, input window of the neural peers (ours' context).
        hidden_size: LSTM width (ours' ``model.hidden_size``).
        num_layers: LSTM layers (ours' ``model.num_layers``).
        learning_rate: ours' learning rate.
        windows_per_step: training windows per optimiser step (ours' ``model.batch_size``).
        max_steps: neural peers' step budget (>= ours' budget).
        quantiles: levels of the ``q*`` columns.
        threads: cores the peer may use.
        seed: random seed.
        lightgbm_estimators: boosting rounds.
        lightgbm_conformal_windows: conformal calibration windows (0 = point forecast only).
    """

    horizon: int
    season_length: int
    context_length: int
    hidden_size: int
    num_layers: int
    learning_rate: float
    windows_per_step: int
    max_steps: int
    quantiles: tuple[float, ...]
    threads: int
    seed: int
    lightgbm_estimators: int = 300
    lightgbm_conformal_windows: int = 0


@dataclass
class PeerResult:
    """A peer's forecast (Nixtla output frame) and what it cost.

    Attributes:
        output: pandas frame ``unique_id, ds, <alias>[, <alias>-lo-L, <alias>-hi-L, <alias>-median]``.
        alias: the point-forecast column.
        fit_seconds: wall time of the fit.
        predict_seconds: wall time of the predict.
        steps: optimiser steps of a neural peer (None otherwise).
    """

    output: Any
    alias: str
    fit_seconds: float
    predict_seconds: float
    steps: int | None = None


def available(name: str) -> bool:
    """Whether the library peer ``name`` needs is installed (found without importing it)."""
    return importlib.util.find_spec(LIBRARY[name]) is not None


def levels(quantiles: Sequence[float]) -> list[float]:
    """Interval levels (percent) whose bounds give every quantile, e.g. 0.05 and 0.95 -> 90."""
    return sorted({round(abs(1.0 - 2.0 * float(q)) * 100.0, 6) for q in quantiles} - {0.0})


def _timed(fit: Callable[[], Any], predict: Callable[[], Any]) -> tuple[Any, float, float]:
    t0 = time.perf_counter()
    fit()
    t1 = time.perf_counter()
    out = predict()
    return out, t1 - t0, time.perf_counter() - t1


def _levels_arg(s: PeerSettings) -> list[int]:
    """Whole-percent levels (what statsforecast and mlforecast take); others give no quantiles."""
    return [int(v) for v in levels(s.quantiles) if float(v).is_integer()]


def _statsforecast(model: Any, train: Any, s: PeerSettings) -> PeerResult:
    from statsforecast import StatsForecast

    sf = StatsForecast(models=[model], freq="D", n_jobs=s.threads)
    out, fit_s, pred_s = _timed(lambda: sf.fit(train), lambda: sf.predict(h=s.horizon, level=_levels_arg(s)))
    return PeerResult(out, model.alias, fit_s, pred_s)


def run_seasonal_naive(train: Any, s: PeerSettings) -> PeerResult:
    """statsforecast ``SeasonalNaive`` with its normal prediction intervals."""
    from statsforecast.models import SeasonalNaive

    return _statsforecast(SeasonalNaive(season_length=s.season_length), train, s)


def run_autoets(train: Any, s: PeerSettings) -> PeerResult:
    """statsforecast ``AutoETS`` (model chosen by AICc per series) with its normal intervals."""
    from statsforecast.models import AutoETS

    return _statsforecast(AutoETS(season_length=s.season_length), train, s)


def run_lightgbm(train: Any, s: PeerSettings) -> PeerResult:
    """mlforecast + LightGBM with the tweedie objective: the M5-winning family, recursive.

    Features: lags 1-7, 14, 28; rolling means of 7 and 28 periods of lags 1, 7 and 28; day of
    week, day of month and month. With ``lightgbm_conformal_windows >= 2`` the intervals are
    conformal (that many extra fits on held-out windows), else the forecast is a point only.
    """
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.utils import PredictionIntervals

    model = lgb.LGBMRegressor(
        objective="tweedie",
        tweedie_variance_power=1.1,
        n_estimators=s.lightgbm_estimators,
        learning_rate=0.05,
        num_leaves=63,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        n_jobs=s.threads,
        random_state=s.seed,
        verbose=-1,
    )
    fcst = MLForecast(
        models={"LightGBM": model},
        freq="D",
        lags=[1, 2, 3, 4, 5, 6, 7, 14, 28],
        lag_transforms={
            1: [RollingMean(window_size=7), RollingMean(window_size=28)],
            7: [RollingMean(window_size=7), RollingMean(window_size=28)],
            28: [RollingMean(window_size=28)],
        },
        date_features=["dayofweek", "day", "month"],
        num_threads=s.threads,
    )
    windows = s.lightgbm_conformal_windows
    intervals = PredictionIntervals(n_windows=windows, h=s.horizon) if windows >= 2 else None
    level: list[int | float] | None = list(_levels_arg(s)) if intervals is not None else None
    out, fit_s, pred_s = _timed(
        lambda: fcst.fit(train, prediction_intervals=intervals),
        lambda: fcst.predict(h=s.horizon, level=level),
    )
    return PeerResult(out, "LightGBM", fit_s, pred_s)


def _nf_lstm(train: Any, s: PeerSettings, negbin: bool) -> PeerResult:
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MAE, DistributionLoss
    from neuralforecast.models import LSTM

    alias = "LSTM_NB" if negbin else "LSTM"
    loss = (
        DistributionLoss("NegativeBinomial", quantiles=list(s.quantiles), num_samples=200)
        if negbin
        else MAE()
    )
    model = LSTM(
        h=s.horizon,
        input_size=s.context_length,
        encoder_hidden_size=s.hidden_size,
        encoder_n_layers=s.num_layers,
        decoder_hidden_size=s.hidden_size,
        loss=loss,
        max_steps=s.max_steps,
        learning_rate=s.learning_rate,
        windows_batch_size=s.windows_per_step,
        random_seed=s.seed,
        alias=alias,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    nf = NeuralForecast(models=[model], freq="D")
    out, fit_s, pred_s = _timed(lambda: nf.fit(train), nf.predict)
    return PeerResult(out, alias, fit_s, pred_s, steps=s.max_steps)


def run_nf_lstm(train: Any, s: PeerSettings) -> PeerResult:
    """neuralforecast ``LSTM`` with its default MAE loss (a point forecast)."""
    return _nf_lstm(train, s, negbin=False)


def run_nf_lstm_negbin(train: Any, s: PeerSettings) -> PeerResult:
    """neuralforecast ``LSTM`` with a negative-binomial ``DistributionLoss`` (quantiles from samples)."""
    return _nf_lstm(train, s, negbin=True)


PEERS: dict[str, Callable[[Any, PeerSettings], PeerResult]] = {
    "seasonal_naive": run_seasonal_naive,
    "autoets": run_autoets,
    "lightgbm": run_lightgbm,
    "nf_lstm": run_nf_lstm,
    "nf_lstm_negbin": run_nf_lstm_negbin,
}
"""Peer name -> adapter ``(train, settings) -> PeerResult``."""


def run_peer(name: str, train: Any, settings: PeerSettings) -> PeerResult:
    """Run peer ``name``; :class:`ConfigError` naming the extra when its library is missing."""
    if name not in PEERS:
        raise ConfigError(f"unknown peer {name!r}; known: {sorted(PEERS)}")
    if not available(name):
        raise ConfigError(f"peer '{name}' needs {LIBRARY[name]}: install the bench extra ({EXTRA_HINT})")
    return PEERS[name](train, settings)


_BOUND = re.compile(r"^(?P<alias>.+)-(?P<side>lo|hi)-(?P<level>\d+(?:\.\d+)?)$")


def _quantile_source(columns: Sequence[str], alias: str, q: float) -> str | None:
    """The output column holding quantile ``q`` of ``alias`` (None when the peer lacks it)."""
    if abs(q - 0.5) < 1e-9:
        return f"{alias}-median" if f"{alias}-median" in columns else alias
    side, level = ("lo", (1.0 - 2.0 * q) * 100.0) if q < 0.5 else ("hi", (2.0 * q - 1.0) * 100.0)
    for c in columns:
        m = _BOUND.match(c)
        if m and m["alias"] == alias and m["side"] == side and abs(float(m["level"]) - level) < 1e-6:
            return c
    return None


def to_forecast_frame(
    result: PeerResult, keys: pl.DataFrame, cutoff: dt.date, quantiles: Sequence[float]
) -> pl.DataFrame:
    """The project's forecast frame from a peer's Nixtla output.

    Args:
        result: the peer's output and alias.
        keys: ``unique_id, sku_id, warehouse_id`` of every series.
        cutoff: forecast origin.
        quantiles: levels of the ``q*`` columns; written only when the peer has every bound.

    Returns:
        ``sku_id, warehouse_id, cutoff, ds, step, mean[, q*]`` sorted by series and step.

    Raises:
        SchemaError: the output lacks the point column or names series not in ``keys``.
    """
    out = pl.from_pandas(result.output.reset_index(drop=S.UNIQUE_ID in result.output.columns))
    if result.alias not in out.columns:
        raise SchemaError(f"peer output lacks its point column {result.alias!r}: {out.columns}")
    sources = {q: _quantile_source(out.columns, result.alias, float(q)) for q in quantiles}
    has_q = all(src is not None for src in sources.values()) and len(out.columns) > 3
    frame = out.join(keys, on=S.UNIQUE_ID, how="left")
    if frame[S.SKU_ID].null_count():
        raise SchemaError(f"peer output names {frame[S.SKU_ID].null_count()} rows of unknown series")
    frame = frame.sort(S.SKU_ID, S.WAREHOUSE_ID, S.DS).with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over(S.SKU_ID, S.WAREHOUSE_ID).alias(S.STEP)
    )
    cols = [
        S.SKU_ID,
        S.WAREHOUSE_ID,
        pl.lit(cutoff, dtype=pl.Date).alias(S.CUTOFF),
        pl.col(S.DS).cast(pl.Date),
        S.STEP,
        pl.col(result.alias).cast(pl.Float32).clip(lower_bound=0.0).alias(S.MEAN),
    ]
    if not has_q:
        return frame.select(cols)
    qs = np.stack([frame[str(sources[q])].cast(pl.Float64).to_numpy() for q in quantiles], axis=1)
    qs = np.maximum.accumulate(np.clip(qs, 0.0, None), axis=1)  # [rows, Q], non-decreasing
    named = [
        pl.Series(S.quantile_column(float(q)), qs[:, j], dtype=pl.Float32) for j, q in enumerate(quantiles)
    ]
    return frame.select(cols).with_columns(named)
