"""Forecast accuracy: per-series metrics from a forecast frame, group aggregates, the oracle.

Every model (LSTM, baselines, the oracle) is scored the same way::

    scales = series_scales(history, season_length=7)                 # evaluation/scales.py
    per_series = evaluate_forecasts(forecasts, actuals, scales, quantiles=qs, samples=paths,
                                    model="lstm")
    table = aggregate_metrics(per_series, products)                  # long: model, metric, value, ...

Metric conventions (kernels in :mod:`inventory_scale.evaluation.scores`):

- point metrics (MASE, RMSSE, bias) score the ``mean`` column, the mean of the sample paths;
- MASE, SPL and CRPS are scaled by ``scale_mae``, RMSSE by ``scale_mse`` (both guarded > 0);
- SPL averages the pinball loss over the requested ``quantiles``; CRPS is exact for the sample
  paths when ``samples`` is given, else ``2 x`` the midpoint-weighted average pinball loss of the
  quantile columns (an approximation, see ``scores.quantile_crps``);
- coverage_80 uses ``[q0.1, q0.9]``, coverage_90 ``[q0.05, q0.95]``, bounds included; with
  sample paths, pit_coverage_80 / pit_coverage_90 are the expected randomized-PIT coverages
  (``scores.pit_coverage``), which do not count the mass of the interval's end-points as covered
  and so are the calibration check for counts (the closed intervals over-cover zeros);
- a metric whose quantile columns are absent is null, and so is bias for a series with no demand
  over the horizon. Aggregates average over the series where a metric is defined.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import numpy as np
import polars as pl
from scipy import stats

from inventory_scale import schema as S
from inventory_scale.errors import DataQualityError, SchemaError, format_keys
from inventory_scale.evaluation.scales import require_columns, series_scales
from inventory_scale.evaluation.scores import (
    bias,
    check_quantiles,
    crps_from_samples,
    interval_coverage,
    mase,
    pit_coverage,
    quantile_crps,
    rmsse,
    scaled_pinball,
)

__all__ = [
    "METRICS",
    "N_SERIES",
    "aggregate_metrics",
    "bias",
    "crps_from_samples",
    "evaluate_forecasts",
    "interval_coverage",
    "mase",
    "oracle_forecasts",
    "quantile_crps",
    "rmsse",
    "scaled_pinball",
    "series_scales",
]

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = tuple(m for m in S.SUMMARY_METRICS if m != S.WRMSSE)
"""Per-series metric columns of :func:`evaluate_forecasts`, in output order."""

N_SERIES = "n_series"  # value of the `metric` column in aggregate_metrics: series counted in the group
ALL = "all"  # `group` and `group_value` of the overall aggregate

_UNIT = "_unit"  # intermediate: index of a (series, cutoff) unit in the order of the forecasts
_ORDER = "_group_order"  # intermediate: position of a group in the output
_COUNT = "_count"  # intermediate: number of truth dates after the cutoff
_INTERVALS: dict[str, tuple[float, float]] = {S.COVERAGE_80: (0.1, 0.9), S.COVERAGE_90: (0.05, 0.95)}
_PIT_LEVELS: dict[str, float] = {S.PIT_COVERAGE_80: 0.8, S.PIT_COVERAGE_90: 0.9}
_SCALE_COLUMNS = (S.SKU_ID, S.WAREHOUSE_ID, S.SCALE_MAE, S.SCALE_MSE, S.WEIGHT, S.VELOCITY_CLASS)


def _dense(frame: pl.DataFrame, column: str, n: int, h: int) -> np.ndarray:
    """``[N, H]`` float64 array of ``column`` from a frame sorted by (unit, step)."""
    return frame.get_column(column).cast(pl.Float64).to_numpy().reshape(n, h)


def _align(forecasts: pl.DataFrame, actuals: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Units in forecast order, and forecasts joined to actuals sorted by (unit, step)."""
    unit_keys = [S.SKU_ID, S.WAREHOUSE_ID] + ([S.CUTOFF] if S.CUTOFF in forecasts.columns else [])
    units = forecasts.select(unit_keys).unique(maintain_order=True).with_row_index(_UNIT)
    truth = actuals.select(
        S.SKU_ID, S.WAREHOUSE_ID, pl.col(S.DATE).alias(S.DS), pl.col(S.UNITS_SOLD).alias(S.ACTUAL)
    )
    dup = truth.filter(truth.select(S.SKU_ID, S.WAREHOUSE_ID, S.DS).is_duplicated())
    if dup.height:
        keys = dup.select(S.SKU_ID, S.WAREHOUSE_ID, S.DS).unique(maintain_order=True).head(5).rows()
        raise DataQualityError(
            f"actuals repeat {dup.height} (sku_id, warehouse_id, date) rows: {format_keys(keys)}"
        )
    frame = (
        forecasts.join(units, on=unit_keys, how="left")
        .join(truth, on=[S.SKU_ID, S.WAREHOUSE_ID, S.DS], how="left")
        .sort(_UNIT, S.STEP)
    )
    missing = frame.filter(pl.col(S.ACTUAL).is_null() | pl.col(S.ACTUAL).cast(pl.Float64).is_nan())
    if missing.height:
        keys = missing.select(S.SKU_ID, S.WAREHOUSE_ID, S.DS).head(5).rows()
        raise DataQualityError(
            f"{missing.height} forecast rows have no actual (trim the forecasts to the observed "
            f"dates first): {format_keys(keys)}"
        )
    h = int(frame.select(pl.col(S.STEP).max()).item() or 0)
    steps_ok = frame.get_column(S.STEP).min() == 1 and not frame.select(_UNIT, S.STEP).is_duplicated().any()
    if frame.height != units.height * h or not steps_ok:
        raise SchemaError(
            f"forecasts must hold steps 1..H exactly once for each of the {units.height} series; "
            f"got {frame.height} rows with H = {h}"
        )
    return units, frame, h


def _unit_scales(units: pl.DataFrame, scales: pl.DataFrame) -> pl.DataFrame:
    """Scales row of every unit, in unit order; raises if a series has none or several."""
    on = [S.SKU_ID, S.WAREHOUSE_ID] + (
        [S.CUTOFF] if S.CUTOFF in scales.columns and S.CUTOFF in units.columns else []
    )
    table = scales.select(*on, *_SCALE_COLUMNS[2:])
    if table.select(on).is_duplicated().any():
        raise DataQualityError(f"scales repeat keys {on}: pass one row per series (and cutoff)")
    joined = units.join(table, on=on, how="left").sort(_UNIT)
    lacking = joined.filter(pl.col(S.SCALE_MAE).is_null())
    if lacking.height:
        raise DataQualityError(
            f"scales lack {lacking.height} forecast series: {format_keys(lacking.select(on).head(5).rows())}"
        )
    return joined


def evaluate_forecasts(
    forecasts: pl.DataFrame,
    actuals: pl.DataFrame,
    scales: pl.DataFrame,
    *,
    quantiles: Sequence[float],
    samples: np.ndarray | None = None,
    model: str,
) -> pl.DataFrame:
    """Per-series accuracy of one model's forecasts.

    Args:
        forecasts: the forecast frame (``forecast_frame.summarize_paths``): ``sku_id,
            warehouse_id, [cutoff], ds, step, mean`` and any ``q*`` quantile columns; steps
            ``1..H`` for every series. With a ``cutoff`` column a unit is (series, cutoff).
        actuals: ``sku_id, warehouse_id, date, units_sold`` covering every forecast date.
        scales: :func:`series_scales` output; joined on ``cutoff`` too when both frames have it.
        quantiles: levels scored by SPL (and by the quantile CRPS when ``samples`` is None).
        samples: optional ``[N, S, H]`` sample paths, series in the order of their first row in
            ``forecasts`` (the order ``summarize_paths`` was given); used for the exact CRPS.
        model: name written to the ``model`` column.

    Returns:
        One row per unit, in forecast order: ``model, sku_id, warehouse_id, [cutoff],
        velocity_class, weight, mase, rmsse, spl, crps, coverage_80, coverage_90, pit_coverage_80,
        pit_coverage_90, bias``
        (metrics f64, null where undefined).

    Raises:
        SchemaError: missing columns, incomplete steps, ``samples`` of the wrong shape.
        DataQualityError: forecast dates without actuals, duplicate actuals, series without scales.
        ConfigError: quantile levels outside (0, 1) or not increasing.
    """
    require_columns(forecasts, (S.SKU_ID, S.WAREHOUSE_ID, S.DS, S.STEP, S.MEAN), "forecasts")
    require_columns(actuals, (S.SKU_ID, S.WAREHOUSE_ID, S.DATE, S.UNITS_SOLD), "actuals")
    require_columns(scales, _SCALE_COLUMNS, "scales")
    levels = [float(q) for q in check_quantiles(quantiles)]
    if forecasts.height == 0:
        log.warning("evaluate_forecasts(%s): empty forecast frame", model)
        keys = [c for c in (S.SKU_ID, S.WAREHOUSE_ID, S.CUTOFF) if c in forecasts.columns]
        schema = pl.Schema([(S.MODEL, pl.String)])
        for c in keys:
            schema[c] = forecasts.schema[c]
        schema[S.VELOCITY_CLASS] = pl.String
        for c in (S.WEIGHT, *METRICS):
            schema[c] = pl.Float64
        return pl.DataFrame(schema=schema)
    units, frame, h = _align(forecasts, actuals)
    n = units.height
    info = _unit_scales(units, scales)
    scale_mae = info.get_column(S.SCALE_MAE).to_numpy()
    y = _dense(frame, S.ACTUAL, n, h)
    f = _dense(frame, S.MEAN, n, h)

    def q_array(levels_: Sequence[float]) -> np.ndarray | None:  # [N, Q, H] or None if a column is absent
        names = [S.quantile_column(float(q)) for q in levels_]
        if not names or any(c not in frame.columns for c in names):
            return None
        return np.stack([_dense(frame, c, n, h) for c in names], axis=1)

    q_preds = q_array(levels)
    values: dict[str, np.ndarray | None] = {
        S.MASE: mase(y, f, scale_mae),
        S.RMSSE: rmsse(y, f, info.get_column(S.SCALE_MSE).to_numpy()),
        S.SPL: None if q_preds is None else scaled_pinball(y, q_preds, levels, scale_mae),
        S.BIAS: bias(y, f),
    }
    if samples is not None:
        if samples.ndim != 3 or samples.shape[0] != n or samples.shape[2] != h:
            raise SchemaError(f"samples of shape {samples.shape} do not match {n} series x {h} steps")
        values[S.CRPS] = crps_from_samples(samples, y, scale_mae)
        values |= {name: pit_coverage(samples, y, level) for name, level in _PIT_LEVELS.items()}
    else:
        values[S.CRPS] = None if q_preds is None else quantile_crps(y, q_preds, levels, scale_mae)
        values |= dict.fromkeys(_PIT_LEVELS)
    for name, pair in _INTERVALS.items():
        bounds = q_array(pair)
        values[name] = None if bounds is None else interval_coverage(y, bounds[:, 0], bounds[:, 1])
    out = info.select(
        pl.lit(model).alias(S.MODEL), *[c for c in units.columns if c != _UNIT], S.VELOCITY_CLASS, S.WEIGHT
    )
    return out.with_columns(
        pl.Series(m, v if v is not None else np.full(n, np.nan), dtype=pl.Float64).fill_nan(None)
        for m, v in values.items()
    ).select(*out.columns, *METRICS)


def aggregate_metrics(per_series: pl.DataFrame, products: pl.DataFrame | None = None) -> pl.DataFrame:
    """Average per-series metrics overall and by category, warehouse and velocity class.

    Args:
        per_series: one or more :func:`evaluate_forecasts` outputs stacked (several models and
            cutoffs allowed).
        products: optional ``sku_id, category`` table; without it there are no category rows.
            Series without a product row form a category with a null ``group_value``.

    Returns:
        Long frame ``model, group, group_value, metric, value``: for every model and group
        (``group`` = ``"all"`` with ``group_value`` ``"all"``, ``category``, ``warehouse_id``,
        ``velocity_class``) the mean of each metric over the series where it is defined, the
        ``wrmsse`` = ``sum(weight x rmsse) / sum(weight)`` (null when the weights sum to 0) and
        ``n_series``, the number of rows in the group.
    """
    require_columns(per_series, (S.MODEL, S.SKU_ID, S.WAREHOUSE_ID, S.VELOCITY_CLASS, S.WEIGHT), "per_series")
    frame = per_series
    groups: list[tuple[str, pl.Expr]] = [(ALL, pl.lit(ALL))]
    if products is not None:
        require_columns(products, (S.SKU_ID, S.CATEGORY), "products")
        frame = frame.join(products.select(S.SKU_ID, S.CATEGORY).unique(S.SKU_ID), on=S.SKU_ID, how="left")
        orphans = frame.get_column(S.CATEGORY).null_count()
        if orphans:
            log.warning("aggregate_metrics: %d rows have no product category (null group_value)", orphans)
        groups.append((S.CATEGORY, pl.col(S.CATEGORY)))
    groups += [(S.WAREHOUSE_ID, pl.col(S.WAREHOUSE_ID)), (S.VELOCITY_CLASS, pl.col(S.VELOCITY_CLASS))]
    metrics = [m for m in METRICS if m in frame.columns]
    ok = pl.col(S.RMSSE).is_not_null() & pl.col(S.WEIGHT).is_not_null()
    weight_sum = pl.col(S.WEIGHT).filter(ok).sum()
    parts = []
    for order, (group, expr) in enumerate(groups):
        grouped = frame.with_columns(expr.cast(pl.String).alias(S.GROUP_VALUE)).group_by(
            S.MODEL, S.GROUP_VALUE
        )
        wide = grouped.agg(
            *[pl.col(m).cast(pl.Float64).mean() for m in metrics],
            pl.when(weight_sum > 0)
            .then((pl.col(S.WEIGHT) * pl.col(S.RMSSE)).filter(ok).sum() / weight_sum)
            .alias(S.WRMSSE),
            pl.len().cast(pl.Float64).alias(N_SERIES),
        )
        long = wide.unpivot(index=[S.MODEL, S.GROUP_VALUE], variable_name=S.METRIC, value_name=S.VALUE)
        parts.append(long.with_columns(pl.lit(group).alias(S.GROUP), pl.lit(order).alias(_ORDER)))
    metric_order = pl.col(S.METRIC).replace_strict(
        {m: i for i, m in enumerate((*metrics, S.WRMSSE, N_SERIES))}, return_dtype=pl.Int32
    )
    return (
        pl.concat(parts)
        .sort(S.MODEL, _ORDER, S.GROUP_VALUE, metric_order, nulls_last=True)
        .select(S.MODEL, S.GROUP, S.GROUP_VALUE, S.METRIC, S.VALUE)
    )


def oracle_forecasts(
    truth: pl.DataFrame, *, cutoff: dt.date, horizon: int, quantiles: Sequence[float]
) -> pl.DataFrame:
    """Forecast frame of the oracle that knows the true demand mean (synthetic data only).

    ``mean`` is the generator's ``demand_mean``; quantiles are those of ``Poisson(demand_mean)``.
    The generator's demand may be over-dispersed (negative binomial), so these intervals can be
    too narrow: the oracle is the floor for point metrics (MASE, RMSSE), a reference only for
    interval metrics. The frame scores through :func:`evaluate_forecasts` like any model.

    Args:
        truth: ``sku_id, warehouse_id, date, demand_mean`` (the ``truth`` table).
        cutoff: forecast origin; the oracle covers the ``horizon`` dates after it.
        horizon: number of steps ``H`` (every series must have them in ``truth``).
        quantiles: levels of the ``q*`` columns.

    Returns:
        ``sku_id, warehouse_id, cutoff, ds, step, mean, q*`` sorted by series and step.
    """
    require_columns(truth, (S.SKU_ID, S.WAREHOUSE_ID, S.DATE, S.DEMAND_MEAN), "truth")
    levels = check_quantiles(quantiles)
    counts = truth.group_by(S.SKU_ID, S.WAREHOUSE_ID).agg((pl.col(S.DATE) > cutoff).sum().alias(_COUNT))
    short = counts.filter(pl.col(_COUNT) < horizon).sort(S.SKU_ID, S.WAREHOUSE_ID)
    if short.height:
        raise DataQualityError(
            f"truth covers fewer than {horizon} dates after {cutoff} for {short.height} series: "
            f"{format_keys(short.select(S.SKU_ID, S.WAREHOUSE_ID).head(5).rows())}"
        )
    frame = (
        truth.filter(pl.col(S.DATE) > cutoff)
        .sort(S.SKU_ID, S.WAREHOUSE_ID, S.DATE)
        .with_columns(
            pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over(S.SKU_ID, S.WAREHOUSE_ID).alias(S.STEP)
        )
        .filter(pl.col(S.STEP) <= horizon)
    )
    mu = frame.get_column(S.DEMAND_MEAN).cast(pl.Float64).to_numpy()
    if (~np.isfinite(mu) | (mu < 0)).any():
        raise DataQualityError(
            f"truth has {int((~np.isfinite(mu) | (mu < 0)).sum())} negative or non-finite demand_mean"
        )
    qs = stats.poisson.ppf(levels[None, :], mu[:, None])  # [rows, Q]
    return frame.select(
        S.SKU_ID,
        S.WAREHOUSE_ID,
        pl.lit(cutoff, dtype=pl.Date).alias(S.CUTOFF),
        pl.col(S.DATE).alias(S.DS),
        S.STEP,
        pl.col(S.DEMAND_MEAN).cast(pl.Float32).alias(S.MEAN),
        *[pl.Series(S.quantile_column(float(q)), qs[:, j], dtype=pl.Float32) for j, q in enumerate(levels)],
    )
