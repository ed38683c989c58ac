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


def _longest_run(outside: np.ndarray) -> tuple[int, int]:
    """Length and end index of the longest run of True in ``outside``."""
    best, end, cur = 0, -1, 0
    for i, o in enumerate(outside):
        cur = cur + 1 if o else 0
        if cur > best:
            best, end = cur, i
    return best, end


def _row(key: tuple[str, str], severity: str, reason: str, detail: str, action: str) -> dict[str, Any]:
    return {
        S.SKU_ID: key[0],
        S.WAREHOUSE_ID: key[1],
        S.SEVERITY: severity,
        S.REASON: reason,
        S.DETAIL: detail,
        S.SUGGESTED_ACTION: action,
    }


def _demand_checks(key: tuple[str, str], g: pl.DataFrame, cfg: MonitorConfig) -> list[dict[str, Any]]:
    """Band breaches and level shifts of one series (``g``: forecast rows joined to actuals)."""
    out: list[dict[str, Any]] = []
    y, stock = g[S.UNITS_SOLD].to_numpy(), g[S.IN_STOCK].to_numpy()
    if LO in g.columns and HI in g.columns:
        lo, hi = g[LO].to_numpy(), g[HI].to_numpy()
        above, below = y > hi, (y < lo) & stock
        run, end = _longest_run(above | below)
        if run >= cfg.band_days:
            seg = slice(end - run + 1, end + 1)
            side = "above" if above[seg].sum() >= below[seg].sum() else "below"
            first, last = g[S.DS][seg.start], g[S.DS][end]
            out.append(
                _row(
                    key,
                    "high" if run >= 2 * cfg.band_days else "medium",
                    "band_breach",
                    f"units sold {side} the 90% band {run} days in a row ({first} .. {last}): "
                    f"{y[seg].sum():.0f} sold vs {g[S.MEAN].to_numpy()[seg].sum():.1f} forecast",
                    "check for a promotion, listing or price change; re-forecast"
                    if side == "above"
                    else "check availability and the listing; re-forecast before the next order",
                )
            )
    if MID in g.columns:
        valid = stock  # stockout days: sales are not demand
        n = int(valid.sum())
        c = sign_test_threshold(n, cfg.shift_alpha) if n >= cfg.shift_min_days else None
        if c is not None:
            med = g[MID].to_numpy()
            n_up, n_down = int((y[valid] > med[valid]).sum()), int((y[valid] < med[valid]).sum())
            actual, expect = float(y[valid].sum()), float(g[S.MEAN].to_numpy()[valid].sum())
            rel = (actual - expect) / expect if expect > 0 else (math.inf if actual > 0 else 0.0)
            if max(n_up, n_down) >= c and abs(rel) >= cfg.shift_min_ratio:
                up = n_up >= c
                out.append(
                    _row(
                        key,
                        "high" if abs(rel) >= 2 * max(cfg.shift_min_ratio, 0.25) else "medium",
                        "level_shift",
                        f"demand {'up' if up else 'down'} {abs(rel):.0%}: {actual:.0f} sold vs "
                        f"{expect:.1f} forecast over {n} in-stock days, {max(n_up, n_down)} of {n} "
                        f"{'above' if up else 'below'} the median",
                        "re-forecast (monitor.reforecast=true) and "
                        + ("raise the next order" if up else "cut the next order"),
                    )
                )
    return out


def _stock_checks(
    key: tuple[str, str], f: pl.DataFrame, s: dict[str, Any], asof: dt.date, cfg: MonitorConfig
) -> list[dict[str, Any]]:
    """Stockout, excess and expiry risk of one series from its forecast after ``asof`` and stock ``s``."""
    out: list[dict[str, Any]] = []
    ahead = f.filter(pl.col(S.DS) > asof).sort(S.DS)
    if ahead.is_empty():
        return out
    mean = ahead[S.MEAN].cast(pl.Float64).to_numpy()
    daily = float(mean.mean())
    on_hand, transit = float(s[S.ON_HAND] or 0.0), float(s["in_transit"] or 0.0)
    receipt: dt.date = s["next_receipt"]
    days = max(1, min((receipt - asof).days, len(mean)))
    need = float(mean[:days].sum())
    pi_steps = float(f[S.PI_STEPS][0]) if S.PI_STEPS in f.columns else float(days)
    q_col = _protection_column(f.columns, cfg.stockout_quantile)
    spread = 0.0 if q_col is None else max(float(f[q_col][0]) - float(f[S.PI_MEAN][0]), 0.0)
    need_q = need + spread * math.sqrt(days / max(pi_steps, 1.0))
    if on_hand < need_q:
        short = math.ceil(need_q - on_hand)
        out.append(
            _row(
                key,
                "high" if on_hand < need else "medium",
                "stockout_risk",
                f"on hand {on_hand:.0f} vs {need:.1f} expected demand ({need_q:.1f} at "
                f"{cfg.stockout_quantile:.0%}) until the next receipt on {receipt} ({days} days)",
                f"expedite the inbound or place an emergency order of {short} units",
            )
        )
    cover = (on_hand + transit) / daily if daily > 0 else (math.inf if on_hand + transit > 0 else 0.0)
    if cover > cfg.excess_cover_days:
        surplus = on_hand + transit - cfg.excess_cover_days * daily
        out.append(
            _row(
                key,
                "medium" if cover > 2 * cfg.excess_cover_days else "low",
                "excess_risk",
                f"{on_hand + transit:.0f} units on hand and in transit cover "
                + ("no forecast demand" if not math.isfinite(cover) else f"{cover:.0f} days")
                + f" (limit {cfg.excess_cover_days:.0f})",
                f"pause replenishment; promote or transfer about {surplus:.0f} units",
            )
        )
    life = s[S.SHELF_LIFE_DAYS]
    if life is not None and on_hand > 0:
        sellable = daily * float(life)
        expiring = on_hand - sellable
        if expiring >= max(1.0, 0.05 * on_hand):
            out.append(
                _row(
                    key,
                    "high" if expiring >= 0.5 * on_hand else "medium",
                    "expiry_risk",
                    f"on hand {on_hand:.0f} but only {sellable:.1f} expected to sell within the "
                    f"{int(life)}-day shelf life: about {expiring:.0f} units will outdate",
                    f"mark down or transfer about {expiring:.0f} units now; stop orders until cover "
                    "is back within the shelf life",
                )
            )
    return out


def _protection_column(columns: list[str], q: float) -> str | None:
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
    rows: list[dict[str, Any]] = []
    for key, g in joined.group_by(KEYS, maintain_order=True):
        rows += _demand_checks((str(key[0]), str(key[1])), g, cfg)
    if stock is not None:
        by_key = {(r[S.SKU_ID], r[S.WAREHOUSE_ID]): r for r in stock.iter_rows(named=True)}
        for key, f in forecasts.group_by(KEYS, maintain_order=True):
            k = (str(key[0]), str(key[1]))
            if k in by_key:
                rows += _stock_checks(k, f, by_key[k], asof, cfg)
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
