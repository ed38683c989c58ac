"""Exceptions for planners: the rules the monitor applies to new sales, a forecast and the stock.

:func:`detect` is the whole logic, a pure function of frames (``monitor.py`` reads them and writes
the result): one row per series and reason (:data:`schema.EXCEPTIONS`), with a severity, a
sentence with the numbers and a suggested action. Reasons, in check order:

- ``band_breach``: actuals outside the 90% band (``[q0.05, q0.95]``) ``band_days`` days in a row
  (stockout days do not count as "below": censored sales are not demand);
- ``level_shift``: a sign test against the forecast median over the new days (stockout days left
  out) is significant at ``shift_alpha`` and the actual total is off the forecast total by at
  least ``shift_min_ratio``;
- ``stockout_risk``: on hand now (the cutoff's on hand + receipts - sales since) is below the
  ``stockout_quantile`` of demand until the next receipt (inbound, the planned order, or an order
  placed today after its lead time);
- ``excess_risk``: cover (on hand + in transit over the forecast's daily demand) beyond
  ``excess_cover_days``;
- ``expiry_risk``: perishables whose on hand exceeds the demand expected within the shelf life.

False alarms on a calibrated forecast, days independent: the band rule fires on ``n`` clean days
with probability :func:`run_probability` ``(n, k, 0.1)`` at most (each day is outside the 90% band
with probability <= 0.1, discrete demand included); the sign test with at most ``shift_alpha``
(:func:`sign_test_threshold` sizes it with the exact binomial). A clean series is thus flagged for
its forecast with probability <= ``run_probability(n, k, 0.1) + shift_alpha`` (about 0.021 for
n = 14, k = 3, alpha = 0.01).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from inventory_scale import schema as S
from inventory_scale.config import MonitorConfig

KEYS = [S.SKU_ID, S.WAREHOUSE_ID]
LO, MID, HI = S.quantile_column(0.05), S.quantile_column(0.5), S.quantile_column(0.95)
STOCK_COLUMNS = (S.ON_HAND, "in_transit", "next_receipt", S.SHELF_LIFE_DAYS)
"""Columns of the stock frame :func:`detect` takes besides the series key (``monitor.stock_frame``)."""


def run_probability(n: int, k: int, p: float) -> float:
    """Probability of at least one run of ``k`` successes in ``n`` independent trials of chance ``p``."""
    if k > n:
        return 0.0
    no_run = np.zeros(k)  # no_run[j]: no run yet and the current streak is j
    no_run[0] = 1.0
    for _ in range(n):
        nxt = np.zeros(k)
        nxt[0] = no_run.sum() * (1 - p)
        nxt[1:] = no_run[:-1] * p
        no_run = nxt
    return float(1.0 - no_run.sum())


def sign_test_threshold(n: int, alpha: float) -> int | None:
    """Smallest count ``c`` with ``2 P(Bin(n, 1/2) >= c) <= alpha``; None when no count is that rare."""
    for c in range(n // 2 + 1, n + 1):
        if 2 * stats.binom.sf(c - 1, n, 0.5) <= alpha:
            return c
    return None


def _row(key: tuple[str, str], severity: str, reason: str, detail: str, action: str) -> dict[str, Any]:
    return {
        S.SKU_ID: key[0],
        S.WAREHOUSE_ID: key[1],
        S.SEVERITY: severity,
        S.REASON: reason,
        S.DETAIL: detail,
        S.SUGGESTED_ACTION: action,
    }


def _band_breaches(joined: pl.DataFrame, cfg: MonitorConfig) -> list[dict[str, Any]]:
    """Series whose longest run of days outside ``[q0.05, q0.95]`` reaches ``band_days``.

    ``joined``: forecast rows with ``units_sold`` and ``in_stock``, sorted by series and date.
    Vectorised: a run is a group of consecutive outside days (the count of inside days so far
    stays constant along it); only the flagged series are turned into rows in Python.
    """
    if LO not in joined.columns or HI not in joined.columns:
        return []
    y = pl.col(S.UNITS_SOLD)
    runs = (
        joined.with_columns(
            (y > pl.col(HI)).alias("_above"), ((y < pl.col(LO)) & pl.col(S.IN_STOCK)).alias("_below")
        )
        .with_columns((pl.col("_above") | pl.col("_below")).alias("_out"))
        .with_columns((~pl.col("_out")).cast(pl.Int32).cum_sum().over(KEYS).alias("_run"))
        .filter(pl.col("_out"))
        .group_by(*KEYS, "_run")
        .agg(
            pl.len().alias("_len"),
            pl.col(S.DS).min().alias("_first"),
            pl.col(S.DS).max().alias("_last"),
            pl.col("_above").sum().alias("_n_above"),
            pl.col("_below").sum().alias("_n_below"),
            y.sum().alias("_sold"),
            pl.col(S.MEAN).sum().alias("_forecast"),
        )
        .filter(pl.col("_len") >= cfg.band_days)
        .sort(*KEYS, "_len", "_first", descending=[False, False, True, False])
        .unique(subset=KEYS, keep="first", maintain_order=True)
    )
    out = []
    for r in runs.iter_rows(named=True):
        side = "above" if r["_n_above"] >= r["_n_below"] else "below"
        out.append(
            _row(
                (r[S.SKU_ID], r[S.WAREHOUSE_ID]),
                "high" if r["_len"] >= 2 * cfg.band_days else "medium",
                "band_breach",
                f"units sold {side} the 90% band {r['_len']} days in a row ({r['_first']} .. {r['_last']}): "
                f"{r['_sold']:.0f} sold vs {r['_forecast']:.1f} forecast",
                "check for a promotion, listing or price change; re-forecast"
                if side == "above"
                else "check availability and the listing; re-forecast before the next order",
            )
        )
    return out


def _level_shifts(joined: pl.DataFrame, cfg: MonitorConfig) -> list[dict[str, Any]]:
    """Series whose in-stock days sit on one side of the median often enough (sign test) and far
    enough from the forecast total. Stockout days are left out: their sales are not demand."""
    if MID not in joined.columns or joined.is_empty():
        return []
    y, med = pl.col(S.UNITS_SOLD), pl.col(MID)
    counts = (
        joined.filter(pl.col(S.IN_STOCK))
        .group_by(KEYS)
        .agg(
            pl.len().alias("_n"),
            (y > med).sum().alias("_up"),
            (y < med).sum().alias("_down"),
            y.cast(pl.Float64).sum().alias("_actual"),
            pl.col(S.MEAN).cast(pl.Float64).sum().alias("_expect"),
        )
        .filter(pl.col("_n") >= cfg.shift_min_days)
    )
    n_max = int(counts["_n"].max() or 0)  # type: ignore[arg-type]
    limits = pl.DataFrame(
        {
            "_n": list(range(n_max + 1)),
            "_c": [sign_test_threshold(n, cfg.shift_alpha) for n in range(n_max + 1)],
        },
        schema={"_n": counts.schema["_n"], "_c": pl.Int64},
    )
    flagged = (
        counts.join(limits, on="_n", how="inner")
        .filter(pl.col("_c").is_not_null() & (pl.max_horizontal("_up", "_down") >= pl.col("_c")))
        .sort(KEYS)
    )
    out = []
    for r in flagged.iter_rows(named=True):
        actual, expect, n = r["_actual"], r["_expect"], r["_n"]
        rel = (actual - expect) / expect if expect > 0 else (math.inf if actual > 0 else 0.0)
        if abs(rel) < cfg.shift_min_ratio:
            continue
        up = r["_up"] >= r["_c"]
        out.append(
            _row(
                (r[S.SKU_ID], r[S.WAREHOUSE_ID]),
                "high" if abs(rel) >= 2 * max(cfg.shift_min_ratio, 0.25) else "medium",
                "level_shift",
                f"demand {'up' if up else 'down'} {abs(rel):.0%}: {actual:.0f} sold vs {expect:.1f} forecast "
                f"over {n} in-stock days, {max(r['_up'], r['_down'])} of {n} {'above' if up else 'below'} "
                "the median",
                "re-forecast (monitor.reforecast=true) and "
                + ("raise the next order" if up else "cut the next order"),
            )
        )
    return out


def _stock_state(
    forecasts: pl.DataFrame, stock: pl.DataFrame, asof: dt.date, cfg: MonitorConfig
) -> pl.DataFrame:
    """Per series with stock and forecast days after ``asof``: demand until the next receipt (mean
    and at ``stockout_quantile``), demand per day, and the stock columns."""
    q_col = protection_column(forecasts.columns, cfg.stockout_quantile)
    first = forecasts.sort(S.DS).group_by(KEYS, maintain_order=True).first()
    spread = (
        (pl.col(q_col) - pl.col(S.PI_MEAN)).clip(lower_bound=0.0) if q_col is not None else pl.lit(0.0)
    ).cast(pl.Float64)
    pi = first.select(
        *KEYS,
        spread.alias("_spread"),
        (pl.col(S.PI_STEPS).cast(pl.Float64) if S.PI_STEPS in first.columns else pl.lit(1.0)).alias("_pi"),
    )
    ahead = (
        forecasts.filter(pl.col(S.DS) > asof)
        .join(stock.select(*KEYS, "next_receipt"), on=KEYS, how="inner")
        .group_by(KEYS)
        .agg(
            pl.col(S.MEAN).cast(pl.Float64).sum().alias("_total"),
            (pl.col(S.DS).max() - pl.lit(asof)).dt.total_days().alias("_span"),
            pl.col(S.MEAN)
            .filter(pl.col(S.DS) <= pl.col("next_receipt"))
            .cast(pl.Float64)
            .sum()
            .alias("_need"),
            (pl.col(S.DS) <= pl.col("next_receipt")).sum().alias("_steps"),
            pl.col(S.MEAN).first().cast(pl.Float64).alias("_first_mean"),
        )
    )
    return (
        ahead.join(stock, on=KEYS, how="inner")
        .join(pi, on=KEYS, how="left")
        .with_columns(
            # a receipt before the next forecast step still waits for one step of demand
            pl.when(pl.col("_steps") > 0)
            .then(pl.col("_need"))
            .otherwise(pl.col("_first_mean"))
            .alias("_need"),
            pl.max_horizontal(pl.col("_steps"), pl.lit(1)).alias("_steps"),
            (pl.col("_total") / pl.max_horizontal(pl.col("_span"), pl.lit(1))).alias("_daily"),
            (pl.col("next_receipt") - pl.lit(asof)).dt.total_days().alias("_days"),
            pl.col(S.ON_HAND).cast(pl.Float64).fill_null(0.0),
            pl.col("in_transit").cast(pl.Float64).fill_null(0.0),
        )
        .with_columns(
            (
                pl.col("_need")
                + pl.col("_spread").fill_null(0.0)
                * (pl.col("_steps") / pl.max_horizontal(pl.col("_pi").fill_null(1.0), pl.lit(1.0))).sqrt()
            ).alias("_need_q")
        )
        .sort(KEYS)
    )


def _stock_checks(state: pl.DataFrame, cfg: MonitorConfig) -> list[dict[str, Any]]:
    """Stockout, excess and expiry risk from :func:`_stock_state` (rows built for flagged series only)."""
    out: list[dict[str, Any]] = []
    short = state.filter(pl.col(S.ON_HAND) < pl.col("_need_q"))
    for r in short.iter_rows(named=True):
        on_hand, need, need_q = r[S.ON_HAND], r["_need"], r["_need_q"]
        out.append(
            _row(
                (r[S.SKU_ID], r[S.WAREHOUSE_ID]),
                "high" if on_hand < need else "medium",
                "stockout_risk",
                f"on hand {on_hand:.0f} vs {need:.1f} expected demand ({need_q:.1f} at "
                f"{cfg.stockout_quantile:.0%}) until the next receipt on {r['next_receipt']} "
                f"({r['_days']} days)",
                f"expedite the inbound or place an emergency order of {math.ceil(need_q - on_hand)} units",
            )
        )
    stocked = pl.col(S.ON_HAND) + pl.col("in_transit")
    cover = (
        pl.when(pl.col("_daily") > 0)
        .then(stocked / pl.col("_daily"))
        .when(stocked > 0)
        .then(pl.lit(math.inf))
        .otherwise(0.0)
    )
    for r in (
        state.with_columns(cover.alias("_cover"))
        .filter(pl.col("_cover") > cfg.excess_cover_days)
        .iter_rows(named=True)
    ):
        units, c = r[S.ON_HAND] + r["in_transit"], r["_cover"]
        out.append(
            _row(
                (r[S.SKU_ID], r[S.WAREHOUSE_ID]),
                "medium" if c > 2 * cfg.excess_cover_days else "low",
                "excess_risk",
                f"{units:.0f} units on hand and in transit cover "
                + ("no forecast demand" if not math.isfinite(c) else f"{c:.0f} days")
                + f" (limit {cfg.excess_cover_days:.0f})",
                "pause replenishment; promote or transfer about "
                f"{units - cfg.excess_cover_days * r['_daily']:.0f} units",
            )
        )
    sellable = pl.col("_daily") * pl.col(S.SHELF_LIFE_DAYS).cast(pl.Float64)
    expiring = (
        state.filter(pl.col(S.SHELF_LIFE_DAYS).is_not_null() & (pl.col(S.ON_HAND) > 0))
        .with_columns(sellable.alias("_sellable"), (pl.col(S.ON_HAND) - sellable).alias("_expiring"))
        .filter(pl.col("_expiring") >= pl.max_horizontal(pl.lit(1.0), 0.05 * pl.col(S.ON_HAND)))
    )
    for r in expiring.iter_rows(named=True):
        on_hand, exp = r[S.ON_HAND], r["_expiring"]
        out.append(
            _row(
                (r[S.SKU_ID], r[S.WAREHOUSE_ID]),
                "high" if exp >= 0.5 * on_hand else "medium",
                "expiry_risk",
                f"on hand {on_hand:.0f} but only {r['_sellable']:.1f} expected to sell within the "
                f"{int(r[S.SHELF_LIFE_DAYS])}-day shelf life: about {exp:.0f} units will outdate",
                f"mark down or transfer about {exp:.0f} units now; stop orders until cover "
                "is back within the shelf life",
            )
        )
    return out


def protection_column(columns: list[str], q: float) -> str | None:
    """The protection-interval quantile column closest to ``q`` from above (else the highest)."""
    levels = sorted(float(c[len("pi_q") :]) for c in columns if c.startswith("pi_q"))
    if not levels:
        return None
    pick = next((lv for lv in levels if lv >= q - 1e-9), levels[-1])
    return S.protection_quantile_column(pick)


def detect(
    forecasts: pl.DataFrame,
    actuals: pl.DataFrame,
    stock: pl.DataFrame | None,
    asof: dt.date,
    cfg: MonitorConfig,
) -> pl.DataFrame:
    """Exceptions of every forecast series (pure function: the monitor's whole logic).

    Args:
        forecasts: one cutoff's forecast rows (``sku_id, warehouse_id, cutoff, ds, step, mean``,
            quantile columns, ``pi_steps, pi_mean, pi_q*``).
        actuals: sales rows after the cutoff up to ``asof`` (``sku_id, warehouse_id, date,
            units_sold, in_stock``).
        stock: per series ``on_hand`` (now), ``in_transit``, ``next_receipt`` (date),
            ``shelf_life_days`` (null = not perishable); None skips the stock checks.
        asof: last date of the new sales.
        cfg: the ``monitor`` config group.

    Returns:
        The exceptions frame (:data:`schema.EXCEPTIONS`), most severe first.
    """
    if forecasts.is_empty():
        return S.empty_frame(S.EXCEPTIONS)
    cutoff: dt.date = forecasts[S.CUTOFF][0]
    joined = forecasts.join(
        actuals.select(*KEYS, pl.col(S.DATE).alias(S.DS), S.UNITS_SOLD, S.IN_STOCK),
        on=[*KEYS, S.DS],
        how="inner",
    ).sort(*KEYS, S.DS)
    rows = _band_breaches(joined, cfg) + _level_shifts(joined, cfg)
    if stock is not None and not stock.is_empty():
        rows += _stock_checks(_stock_state(forecasts, stock, asof, cfg), cfg)
    if not rows:
        return S.empty_frame(S.EXCEPTIONS)
    order = {s: i for i, s in enumerate(S.SEVERITIES)}
    reasons = {r: i for i, r in enumerate(S.EXCEPTION_REASONS)}
    counts = joined.group_by(KEYS).len().rename({"len": S.NEW_DAYS})
    frame = (
        pl.DataFrame(rows)
        .join(counts, on=KEYS, how="left")
        .with_columns(
            pl.col(S.NEW_DAYS).fill_null(0), pl.lit(cutoff).alias(S.CUTOFF), pl.lit(asof).alias(S.ASOF)
        )
    )
    frame = frame.sort(
        pl.col(S.SEVERITY).replace_strict(order), pl.col(S.REASON).replace_strict(reasons), *KEYS
    )
    return S.conform(frame, S.EXCEPTIONS)
