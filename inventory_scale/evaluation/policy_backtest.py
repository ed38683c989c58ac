"""Policy A/B backtest: replay realised demand through every policy under the same constraints.

``inventory-scale backtest backtest.policies=[newsvendor,seasonal_naive_ss,moving_average_ss,oracle]``
runs this after the accuracy backtest (``evaluation/backtest.py``), at the same rolling cutoffs.
At each cutoff, for every series with sales up to it:

- **forecasts** are made from data up to the cutoff only, with a horizon of ``data.horizon`` plus
  the longest protection interval (orders late in the episode look that far ahead); with
  ``backtest.reforecast_every`` = k, again from the sales recorded up to episode days k, 2k, ...
  (the LSTM keeps the weights trained at the cutoff; baselines refit), and a review uses the latest
  forecast made on or before its day (:func:`forecast_origins`, :class:`~.policies.Refreshed`);
- **the series** are those with sales up to the cutoff, less those that ended
  (:func:`~.data.listing.ended_series`, ``policy.ended_after_days``): every policy leaves them out;
- **the episode** is the ``data.horizon`` periods after the cutoff: realised demand is the
  synthetic ``truth.demand`` when the dataset has it (sales censored by stockouts are not demand),
  else ``units_sold``;
- **the same start** for every policy: on hand = mean daily sales of the 28 periods before the
  cutoff x (lead time + review period / 2), rounded up, fresh, nothing in transit; the same lead
  time realisations per order, the same budgets (per order day) and capacities;
- **common random numbers keyed by series**: every random draw that belongs to a series (its lead
  times, oracle paths, path extension, baseline residual draws, the path policies' lead-time
  samples) depends on the seed, the cutoff (or origin), a purpose tag, the series' key and the
  slot only (``inventory/draws.py``), so leaving a series out re-draws no other series;
- each policy (``inventory/policies.py``) is simulated (``inventory/simulate.py``).

Outputs under ``<run.dir>/backtest/``: ``policy.parquet`` (:data:`schema.POLICY_KPIS`: policy,
cutoff, warehouse_id, kpi, value; ``warehouse_id = "all"`` for totals) and ``policy_series/``
(:data:`schema.POLICY_SERIES`). The summary compares the first policy listed (the reference) with
each other one over the (cutoff, warehouse) pairs: mean paired profit difference with a t
interval, relative profit lift with a paired bootstrap interval, and the fill-rate difference.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io as pyio
import logging
import math
import time
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.data.features import offset_date
from inventory_scale.data.listing import ended_series
from inventory_scale.errors import DataQualityError
from inventory_scale.evaluation.policy_forecasts import (
    KEYS,
    Forecast,
    baseline_at,
    forecast_origins,
    hindsight_at,
    lstm_at,
    lstm_models,
    matrix,
    oracle_at,
)
from inventory_scale.inventory.demand import PERIOD_DAYS, sample_lead_times
from inventory_scale.inventory.draws import (
    LEAD_TIMES,
    U64,
    KeyedDraws,
    series_keys,
)
from inventory_scale.inventory.items import Items, Limits, items_from_frames
from inventory_scale.inventory.policies import (
    PathPolicy,
    Refreshed,
    SafetyStockPolicy,
    check_policies,
    forecaster_of,
)
from inventory_scale.inventory.simulate import Policy, kpis, order_slots, simulate

log = logging.getLogger(__name__)

START_WINDOW = 28  # periods of sales before the cutoff that size the starting stock


def order_lead_times(items: Items, draws: KeyedDraws, days: int, period: float) -> np.ndarray:
    """``[N, orders]`` lead time (whole periods, >= 1) of each order an episode of ``days`` can hold.

    Order ``j`` of a series takes its keyed gamma draw ``j`` (:func:`~.demand.sample_lead_times`
    with the series' mean and std in days), rounded to the nearest period.
    """
    n_orders = order_slots(items.review_days, days)
    lead = sample_lead_times(items.lead_time_days, items.lead_time_std_days, n_orders, draws)
    return np.maximum(np.floor(lead / period + 0.5), 1).astype(np.int64)


def _origin_policy(
    cfg: Config, name: str, f: Forecast, items: Items, limits: Limits, seed: int, series: U64
) -> Policy:
    period = PERIOD_DAYS[cfg.data.freq]
    if name.endswith("_ss"):
        return SafetyStockPolicy(
            name, f.point, f.sigma, items, limits, cfg.policy.baseline_service_level, period
        )
    if f.paths is None:
        raise DataQualityError(f"policy {name} needs sample paths")
    return PathPolicy(name, f.paths, items, limits, cfg.policy, seed, period, series)


def _episode_policies(
    cfg: Config,
    names: list[str],
    fc: dict[str, list[Forecast]],
    origins: list[int],
    items: Items,
    limits: Limits,
    seed: int,
    series: U64,
) -> list[Policy]:
    """One policy per name; forecasters with a forecast per origin give a :class:`Refreshed` one.

    ``series`` (``[N]`` :func:`~.draws.series_keys`) keys the path policies' lead-time draws.
    """
    out: list[Policy] = []
    for name in names:
        forecasts = fc[forecaster_of(name, cfg.policy)]
        made = [_origin_policy(cfg, name, f, items, limits, seed, series) for f in forecasts]
        out.append(made[0] if len(made) == 1 else Refreshed(name, origins[: len(made)], made))
    return out


def run_cutoff(
    cfg: Config,
    names: list[str],
    cutoff: dt.date,
    tables: dict[str, pl.DataFrame],
    opts: io.StorageOptions | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Simulate every policy over the episode after ``cutoff``; returns (series rows, KPI rows)."""
    from inventory_scale.forecast import list_series, load_shard

    root, h = cfg.data.root, cfg.data.horizon
    keys = list_series(root, cutoff, opts).select(KEYS).sort(S.WAREHOUSE_ID, S.SKU_ID)
    if keys.is_empty():
        raise DataQualityError(f"{io.join(root, S.SALES.name)}: no sales on or before cutoff {cutoff}")
    ended = ended_series(root, cutoff, cfg.policy.ended_after_days, opts)
    if ended.height:  # delisted before the cutoff: no policy reorders them
        log.info(
            "policy backtest %s: %d ended series left out (no sales row in the %d days before the cutoff)",
            cutoff, ended.height, cfg.policy.ended_after_days,
        )  # fmt: skip
        keys = keys.join(ended, on=KEYS, how="anti")
    items, limits = items_from_frames(
        keys,
        tables["products"],
        tables["inventory"],
        tables["warehouses"],
        cfg.policy,
        cfg.data,
        {t.name: io.join(root, t.name) for t in (S.PRODUCTS, S.WAREHOUSES)},
    )
    period = PERIOD_DAYS[cfg.data.freq]
    longest = float(np.max(items.lead_time_days + 3 * items.lead_time_std_days + items.review_days))
    ahead = h + math.ceil(longest / period) + 1
    fcfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, horizon=ahead))
    start = offset_date(cutoff, cfg.data.freq, 1)
    truth = tables.get("truth")
    sales = (
        io.scan_table(root, S.SALES, opts)
        .filter(
            (pl.col(S.DATE) > offset_date(cutoff, cfg.data.freq, -START_WINDOW))
            & (pl.col(S.DATE) <= offset_date(cutoff, cfg.data.freq, h))
        )
        .select(*KEYS, S.DATE, S.UNITS_SOLD)
        .collect()
    )
    if truth is not None:  # true demand: sales are censored by stockouts
        demand = np.nan_to_num(matrix(truth, keys, S.DEMAND, start, h))
    else:
        demand = np.nan_to_num(matrix(sales, keys, S.UNITS_SOLD, start, h))
    recent = np.nan_to_num(
        matrix(sales, keys, S.UNITS_SOLD, offset_date(cutoff, cfg.data.freq, 1 - START_WINDOW), START_WINDOW)
    )
    start_stock = np.ceil(recent.mean(axis=1) * (items.lead_time_days + items.review_days / 2) / period)
    series = series_keys(keys)  # [N]: every draw of a series is keyed by it (common random numbers)
    draws = KeyedDraws.of((cfg.seed, cutoff.toordinal(), LEAD_TIMES), series)
    lead_times = order_lead_times(items, draws, h, period)

    needed = {forecaster_of(n, cfg.policy) for n in names}
    origins = forecast_origins(h, cfg.backtest.reforecast_every)
    fc: dict[str, list[Forecast]] = {name: [] for name in needed}
    if "oracle" in needed:  # the true distribution: nothing to learn from later sales
        fc["oracle"].append(oracle_at(cfg, tables["truth"], keys, cutoff, ahead))
    if "hindsight" in needed:  # the realised demand known in advance: perfect point forecasts
        fc["hindsight"].append(hindsight_at(demand, ahead, cfg.forecast.num_paths))
    models = lstm_models(cfg, ahead, cutoff, keys, opts) if "lstm" in needed else None
    baselines = sorted(needed & {"seasonal_naive", "seasonal_ma", "autoets"})
    for o in origins:
        t0, origin = time.perf_counter(), offset_date(cutoff, cfg.data.freq, o)
        if models is not None:
            fc["lstm"].append(lstm_at(models, origin, keys, opts))
        data = load_shard(root, keys, origin, opts) if baselines else None
        for name in baselines:
            fc[name].append(baseline_at(name, fcfg, data, origin, keys))
        log.info(
            "policy backtest %s: forecasts from %s (episode day %d) in %.1fs",
            cutoff, origin, o, time.perf_counter() - t0,
        )  # fmt: skip
    seed = int(np.random.SeedSequence([cfg.seed, cutoff.toordinal(), 5]).generate_state(1)[0])
    series_rows, kpi_rows = [], []
    for policy in _episode_policies(cfg, names, fc, origins, items, limits, seed, series):
        t0 = time.perf_counter()
        result = simulate(items, limits, demand, policy, start_on_hand=start_stock, lead_times=lead_times)
        per, long = kpis(result, items, limits, keys)
        tag = [pl.lit(policy.name).alias(S.POLICY), pl.lit(cutoff).alias(S.CUTOFF)]
        series_rows.append(per.with_columns(tag))
        kpi_rows.append(long.with_columns(tag))
        total = long.filter(pl.col(S.WAREHOUSE_ID) == S.ALL_WAREHOUSES)
        vals = dict(zip(total[S.KPI].to_list(), total[S.VALUE].to_list(), strict=True))
        log.info(
            "policy backtest %s %-26s profit %12.1f  fill %.4f  CSL %.3f  outdated %.0f  (%.1fs)",
            cutoff, policy.name, vals[S.PROFIT], vals[S.FILL_RATE], vals[S.CYCLE_SERVICE_LEVEL],
            vals[S.OUTDATED], time.perf_counter() - t0,
        )  # fmt: skip
    return pl.concat(series_rows), pl.concat(kpi_rows)


def _ci_t(d: np.ndarray) -> tuple[float, float | None, float | None]:
    mean = float(d.mean()) if d.size else float("nan")
    if d.size < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return mean, mean - half, mean + half


def _ratio(frame: pl.DataFrame, num: str, den: str) -> float:
    d = float(frame[den].sum())
    return float(frame[num].sum()) / d if d > 0 else 1.0


def paired_summary(
    frame: pl.DataFrame, reference: str, seed: int = 0, n_boot: int = 2000
) -> list[dict[str, Any]]:
    """Reference policy vs each other one over (cutoff, warehouse) pairs of ``policy.parquet`` rows."""
    units = frame.filter(pl.col(S.WAREHOUSE_ID) != S.ALL_WAREHOUSES).pivot(
        on=S.KPI, index=[S.POLICY, S.CUTOFF, S.WAREHOUSE_ID], values=S.VALUE
    )
    ref = units.filter(pl.col(S.POLICY) == reference)
    out = []
    rng = np.random.default_rng(seed)
    for other in [p for p in units[S.POLICY].unique(maintain_order=True).to_list() if p != reference]:
        j = ref.join(units.filter(pl.col(S.POLICY) == other), on=[S.CUTOFF, S.WAREHOUSE_ID], suffix="_b")
        a, b = j[S.PROFIT].to_numpy(), j[f"{S.PROFIT}_b"].to_numpy()
        diff, lo, hi = _ci_t(a - b)
        boot = rng.integers(0, a.size, (n_boot, a.size))
        lifts = a[boot].sum(axis=1) / np.where(b[boot].sum(axis=1) != 0, b[boot].sum(axis=1), np.nan) - 1
        fa = _ratio(j, S.SALES_UNITS, S.DEMAND)
        fb = _ratio(j, f"{S.SALES_UNITS}_b", f"{S.DEMAND}_b")
        fd, flo, fhi = _ci_t((j[S.FILL_RATE] - j[f"{S.FILL_RATE}_b"]).to_numpy())
        out.append(
            {
                "vs": other,
                "pairs": int(a.size),
                "profit_diff": round(diff, 2),
                "profit_diff_ci95": None if lo is None else [round(lo, 2), round(hi or 0.0, 2)],
                "profit_lift_pct": round(100 * (a.sum() / b.sum() - 1), 2) if b.sum() != 0 else None,
                "profit_lift_ci95_pct": [
                    round(100 * float(np.nanpercentile(lifts, q)), 2) for q in (2.5, 97.5)
                ],
                "fill_rate": [round(float(fa), 4), round(float(fb), 4)],
                "fill_rate_diff_pp": round(100 * fd, 2),
                "fill_rate_diff_ci95_pp": None
                if flo is None
                else [round(100 * flo, 2), round(100 * (fhi or 0.0), 2)],
            }
        )
    return out


def totals(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per policy: KPIs summed (or recomputed as ratios) over cutoffs, from the totals rows."""
    t = frame.filter(pl.col(S.WAREHOUSE_ID) == S.ALL_WAREHOUSES).pivot(
        on=S.KPI, index=[S.POLICY, S.CUTOFF], values=S.VALUE
    )
    sums = [
        S.PROFIT,
        S.REVENUE,
        S.DEMAND,
        S.SALES_UNITS,
        S.LOST_SALES,
        S.OUTDATED,
        S.HOLDING_COST,
        S.STOCKOUT_DAYS,
        S.OVERFLOW_M3_DAYS,
    ]
    return (
        t.group_by(S.POLICY, maintain_order=True)
        .agg(
            *(pl.col(c).sum() for c in sums),
            pl.col(S.CYCLE_SERVICE_LEVEL).mean(),
            pl.col(S.AVG_STOCK_VALUE).mean(),
            pl.col(S.TURNS).mean(),
        )
        .with_columns((pl.col(S.SALES_UNITS) / pl.col(S.DEMAND)).alias(S.FILL_RATE))
    )


def run_policy_backtest(
    cfg: Config, opts: io.StorageOptions | None, cutoffs: list[dt.date]
) -> dict[str, Any]:
    """Simulate ``backtest.policies`` at each cutoff; write the outputs; return the summary."""
    root, names = cfg.data.root, list(cfg.backtest.policies)
    has_truth = bool(io.table_files(root, S.TRUTH, opts))
    check_policies(names, has_truth)
    tables = {
        "products": io.read_table(root, S.PRODUCTS, opts),
        "inventory": io.read_table(root, S.INVENTORY, opts),
        "warehouses": io.read_table(root, S.WAREHOUSES, opts),
    }
    series_parts, kpi_parts = [], []
    for cutoff in cutoffs:
        if has_truth:
            lo = offset_date(cutoff, cfg.data.freq, -365)
            hi = offset_date(cutoff, cfg.data.freq, cfg.data.horizon + 120)
            tables["truth"] = (
                io.scan_table(root, S.TRUTH, opts)
                .filter((pl.col(S.DATE) > lo) & (pl.col(S.DATE) <= hi))
                .collect()
            )
        per, long = run_cutoff(cfg, names, cutoff, tables, opts)
        series_parts.append(per)
        kpi_parts.append(long)
    kpi = S.conform(pl.concat(kpi_parts), S.POLICY_KPIS)
    out = io.join(cfg.run.dir, "backtest")
    buf = pyio.BytesIO()
    kpi.write_parquet(buf)
    io.write_bytes(io.join(out, "policy.parquet"), buf.getvalue(), opts)
    io.write_table(pl.concat(series_parts), out, S.POLICY_SERIES, opts)
    table = totals(kpi)
    paired = paired_summary(kpi, names[0], seed=cfg.seed)
    log.info("policy A/B (sums over %d cutoffs):\n%s", len(cutoffs), table)
    for row in paired:
        log.info("policy A/B %s vs %s: %s", names[0], row["vs"], row)
    return {
        "reference": names[0],
        "output": io.join(out, "policy.parquet"),
        "policies": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in table.to_dicts()
        ],
        "paired": paired,
    }
