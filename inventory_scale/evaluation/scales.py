"""Per-series scales, WRMSSE weights and velocity classes from the history before a cutoff.

Scaled metrics (MASE, RMSSE, scaled pinball, scaled CRPS) divide each series' errors by an
in-sample scale so that a slow and a fast mover weigh the same; WRMSSE then weights series by
their recent dollar sales (M5 convention). :func:`series_scales` computes all of it in one Polars
pass::

    scales = series_scales(sales.filter(pl.col(S.DATE) <= cutoff), season_length=7)

Conventions (one row per period is assumed, as the sales contract requires):

- ``scale_mae`` = mean ``|y_t - y_{t-m}|`` over the history (``m = season_length``): the MASE
  denominator (seasonal-naive in-sample MAE).
- ``scale_mse`` = mean ``(y_t - y_{t-1})^2`` over the history from the first non-zero sale on
  (M5 RMSSE: leading zeros before a product's launch do not shrink the scale).
- ``weight`` = sum of ``units_sold x price`` over the last ``weight_window`` distinct dates of the
  whole history frame (the M5 WRMSSE weight, not normalised: WRMSSE divides by the weight sum of
  each group). A null price contributes no dollars.
- Scale guard: a scale that is zero or undefined (a constant series, a series too short for one
  difference) is replaced by the mean of the positive scales of the other series in the frame,
  or by 1.0 when there are none, so no metric divides by zero or returns ``inf``. The number of
  guarded series is logged.
- ``velocity_class`` (Syntetos-Boylan): ``ADI`` = periods from the first sale to the cutoff divided
  by the number of non-zero periods; ``CV2`` = squared coefficient of variation (population std)
  of the non-zero sizes. ``smooth`` (ADI < 1.32, CV2 < 0.49), ``erratic`` (ADI < 1.32),
  ``intermittent`` (CV2 < 0.49), ``lumpy`` otherwise, ``zero`` for a series that never sold.
"""

from __future__ import annotations

import datetime as dt
import logging

import polars as pl

from inventory_scale import schema as S
from inventory_scale.errors import ConfigError, DataQualityError, SchemaError, format_keys

log = logging.getLogger(__name__)

ADI_CUTOFF = 1.32
"""Average inter-demand interval at which a series turns intermittent (Syntetos-Boylan)."""
CV2_CUTOFF = 0.49
"""Squared coefficient of variation of non-zero sizes at which a series turns erratic."""

SMOOTH = "smooth"
ERRATIC = "erratic"
INTERMITTENT = "intermittent"
LUMPY = "lumpy"
ZERO = "zero"
VELOCITY_CLASSES: tuple[str, ...] = (SMOOTH, ERRATIC, INTERMITTENT, LUMPY, ZERO)
"""Values of the ``velocity_class`` column."""

FALLBACK_SCALE = 1.0
"""Scale given to degenerate series when no series in the frame has a positive scale."""

HISTORY_COLUMNS: tuple[str, ...] = (S.SKU_ID, S.WAREHOUSE_ID, S.DATE, S.UNITS_SOLD, S.PRICE)

_ADI = "_adi"  # intermediate: average inter-demand interval
_CV2 = "_cv2"  # intermediate: squared CV of the non-zero sizes
_NONZERO = "_n_nonzero"  # intermediate: number of periods with a sale


def require_columns(frame: pl.DataFrame, columns: tuple[str, ...], name: str) -> None:
    """Raise :class:`SchemaError` naming the columns of ``columns`` that ``frame`` lacks.

    Args:
        frame: the frame to check.
        columns: required column names.
        name: what the frame is, for the message (``"history"``, ``"forecasts"``, ...).
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{name} frame lacks column(s) {missing}; it has {frame.columns}")


def guard_scale(column: str) -> pl.Expr:
    """Expression replacing non-positive or null values of ``column`` by the guard value.

    The guard value is the mean of the positive values of ``column`` in the frame, or
    :data:`FALLBACK_SCALE` when there are none.
    """
    col = pl.col(column)
    fallback = col.filter(col > 0).mean().fill_null(FALLBACK_SCALE)
    return pl.when(col > 0).then(col).otherwise(fallback).alias(column)


def velocity_class_expr() -> pl.Expr:
    """Syntetos-Boylan class from the intermediate ``_adi``, ``_cv2`` and ``_n_nonzero`` columns."""
    adi, cv2 = pl.col(_ADI), pl.col(_CV2)
    return (
        pl.when(pl.col(_NONZERO) == 0)
        .then(pl.lit(ZERO))
        .when((adi < ADI_CUTOFF) & (cv2 < CV2_CUTOFF))
        .then(pl.lit(SMOOTH))
        .when(adi < ADI_CUTOFF)
        .then(pl.lit(ERRATIC))
        .when(cv2 < CV2_CUTOFF)
        .then(pl.lit(INTERMITTENT))
        .otherwise(pl.lit(LUMPY))
        .alias(S.VELOCITY_CLASS)
    )


def _check_history(history: pl.DataFrame) -> None:
    require_columns(history, HISTORY_COLUMNS, "history")
    y = pl.col(S.UNITS_SOLD)
    bad = history.filter(y.is_null() | y.cast(pl.Float64).is_nan())
    if bad.height:
        keys = bad.select(S.SKU_ID, S.WAREHOUSE_ID, S.DATE).head(5).rows()
        raise DataQualityError(
            f"history has {bad.height} null/NaN {S.UNITS_SOLD} values: {format_keys(keys)}"
        )


def series_scales(
    history: pl.DataFrame,
    *,
    season_length: int,
    weight_window: int = 28,
    cutoff: dt.date | None = None,
) -> pl.DataFrame:
    """Scales, WRMSSE weight and velocity class of every series in ``history``.

    Args:
        history: sales before the forecast origin, one row per ``(sku_id, warehouse_id, date)``
            with columns ``sku_id, warehouse_id, date, units_sold, price`` (others ignored).
        season_length: seasonal period ``m`` of the MASE scale (7 for daily data, 52 weekly, 12
            monthly); ``1`` gives the naive-forecast scale.
        weight_window: number of most recent distinct dates whose dollar sales form the weight.
        cutoff: if given, rows after it are ignored and the result carries a ``cutoff`` column
            (so scales of several origins can be stacked and joined per origin).

    Returns:
        One row per series, sorted by key: ``sku_id, warehouse_id, [cutoff], scale_mae (f64, > 0),
        scale_mse (f64, > 0), weight (f64, >= 0), velocity_class (str)``.

    Raises:
        ConfigError: ``season_length`` or ``weight_window`` below 1.
        SchemaError: a required column is missing.
        DataQualityError: null or NaN ``units_sold``.
    """
    if season_length < 1 or weight_window < 1:
        raise ConfigError(
            f"season_length and weight_window must be >= 1, got {season_length} and {weight_window}"
        )
    _check_history(history)
    frame = history.select(
        pl.col(S.SKU_ID),
        pl.col(S.WAREHOUSE_ID),
        pl.col(S.DATE),
        pl.col(S.UNITS_SOLD).cast(pl.Float64),
        pl.col(S.PRICE).cast(pl.Float64).fill_null(0.0),
    )
    if cutoff is not None:
        frame = frame.filter(pl.col(S.DATE) <= cutoff)
    dates = frame.get_column(S.DATE).unique().sort()
    weight_start = dates[max(0, dates.len() - weight_window)] if dates.len() else None

    y = pl.col(S.UNITS_SOLD)
    started = (y != 0).cum_sum() > 0  # from the first non-zero sale on
    nonzero = y.filter(y != 0)
    out = (
        frame.sort(S.SKU_ID, S.WAREHOUSE_ID, S.DATE)
        .group_by(S.SKU_ID, S.WAREHOUSE_ID, maintain_order=True)
        .agg(
            (y - y.shift(season_length)).abs().mean().alias(S.SCALE_MAE),
            y.filter(started).diff().pow(2).mean().alias(S.SCALE_MSE),
            (y * pl.col(S.PRICE))
            .filter(pl.col(S.DATE) >= pl.lit(weight_start, dtype=pl.Date))
            .sum()
            .alias(S.WEIGHT),
            (y != 0).sum().alias(_NONZERO),
            (started.sum() / (y != 0).sum()).alias(_ADI),
            (nonzero.std(ddof=0) / nonzero.mean()).pow(2).alias(_CV2),
        )
        .with_columns(velocity_class_expr())
    )
    positive = (pl.col(S.SCALE_MAE) > 0).fill_null(False) & (pl.col(S.SCALE_MSE) > 0).fill_null(False)
    degenerate = out.filter(~positive).height
    if degenerate:
        log.info("scale guard: %d of %d series have a zero or undefined scale", degenerate, out.height)
    out = out.with_columns(guard_scale(S.SCALE_MAE), guard_scale(S.SCALE_MSE))
    keys = [S.SKU_ID, S.WAREHOUSE_ID]
    if cutoff is not None:
        out = out.with_columns(pl.lit(cutoff, dtype=pl.Date).alias(S.CUTOFF))
        keys.append(S.CUTOFF)
    return out.select(*keys, S.SCALE_MAE, S.SCALE_MSE, S.WEIGHT, S.VELOCITY_CLASS).sort(
        S.SKU_ID, S.WAREHOUSE_ID
    )
