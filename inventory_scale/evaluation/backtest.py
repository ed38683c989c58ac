"""Rolling-origin backtest: train only on data before each cutoff, score every model alike.

Cutoffs: the last evaluation window ends at ``backtest.end`` (default: the last sales date); the
``backtest.cutoffs`` origins are ``backtest.step`` periods apart, the latest at ``end - H``. At
each origin, per shard, the LSTM is trained on the history up to the cutoff (nothing after it is
read), the baselines are fitted on the same history, and all forecast frames are scored against
the sales of the ``H`` periods after the cutoff with :mod:`inventory_scale.evaluation.metrics`
(scales from the same history). Synthetic datasets with a ``truth`` table also get the oracle row.

Output: ``<run.dir>/backtest/metrics/`` (``model, cutoff, metric, value, group, group_value``)
and ``<run.dir>/backtest/series/`` (per-series metrics), with a manifest.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from typing import Any

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.data.features import offset_date
from inventory_scale.distributed.sharding import assign_shards
from inventory_scale.errors import DataQualityError
from inventory_scale.evaluation.metrics import (
    aggregate_metrics,
    evaluate_forecasts,
    oracle_forecasts,
    series_scales,
)
from inventory_scale.forecast import (
    ShardData,
    attach_planned,
    baseline_shard,
    forecast_shard,
    list_series,
    load_shard,
    train_ensemble,
)

log = logging.getLogger(__name__)

ORACLE = "oracle"


def backtest_cutoffs(end: dt.date, freq: str, horizon: int, n: int, step: int) -> list[dt.date]:
    """The ``n`` forecast origins, oldest first; the last one's window ends at ``end``."""
    last = offset_date(end, freq, -horizon)
    return [offset_date(last, freq, -step * k) for k in range(n - 1, -1, -1)]


def _actuals(
    root: str, data: ShardData, cutoff: dt.date, end: dt.date, opts: io.StorageOptions | None
) -> pl.DataFrame:
    keys = data.series
    return (
        io.scan_table(root, S.SALES, opts)
        .filter(
            pl.col(S.WAREHOUSE_ID).is_in(keys[S.WAREHOUSE_ID].unique().to_list())
            & pl.col(S.SKU_ID).is_in(keys[S.SKU_ID].unique().to_list())
            & (pl.col(S.DATE) > cutoff)
            & (pl.col(S.DATE) <= end)
        )
        .select(S.SKU_ID, S.WAREHOUSE_ID, S.DATE, S.UNITS_SOLD)
        .collect()
        .join(keys, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
    )


def _complete(frame: pl.DataFrame, actuals: pl.DataFrame, horizon: int) -> pl.Series:
    """Mask over the frame's series (in frame order) that have an actual on every forecast date."""
    series = frame.select(S.SKU_ID, S.WAREHOUSE_ID).unique(maintain_order=True)
    have = (
        frame.join(actuals.rename({S.DATE: S.DS}), on=[S.SKU_ID, S.WAREHOUSE_ID, S.DS], how="semi")
        .group_by(S.SKU_ID, S.WAREHOUSE_ID)
        .len()
        .filter(pl.col("len") == horizon)
    )
    return series.join(have, on=[S.SKU_ID, S.WAREHOUSE_ID], how="left")["len"].is_not_null()


def _score(
    model: str,
    frame: pl.DataFrame,
    paths: np.ndarray | None,
    actuals: pl.DataFrame,
    scales: pl.DataFrame,
    cfg: Config,
) -> pl.DataFrame:
    mask = _complete(frame, actuals, cfg.data.horizon)
    keep = frame.select(S.SKU_ID, S.WAREHOUSE_ID).unique(maintain_order=True).filter(mask)
    if keep.is_empty():
        return pl.DataFrame()
    frame = frame.join(keep, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
    samples = None if paths is None else paths[mask.to_numpy()]
    return evaluate_forecasts(
        frame, actuals, scales, quantiles=cfg.forecast.quantiles, samples=samples, model=model
    ).with_columns(pl.lit(frame[S.CUTOFF][0]).alias(S.CUTOFF))


def backtest_shard(
    cfg: Config,
    shard_series: pl.DataFrame,
    cutoff: dt.date,
    shard_id: int,
    opts: io.StorageOptions | None = None,
) -> pl.DataFrame:
    """Per-series metrics of every configured model for one shard at one origin."""
    root = cfg.data.root
    end = offset_date(cutoff, cfg.data.freq, cfg.data.horizon)
    data = attach_planned(load_shard(root, shard_series, cutoff, opts), cfg, cutoff, opts)
    actuals = _actuals(root, data, cutoff, end, opts)
    scales = series_scales(data.sales, season_length=cfg.data.season_length)
    out: list[pl.DataFrame] = []
    for model in cfg.backtest.models:
        t0 = time.perf_counter()
        if model == "lstm":
            with tempfile.TemporaryDirectory(prefix="bt-ckpt-") as ckpt_dir:
                module, _, _ = train_ensemble(data, cfg, cutoff=cutoff, shard_id=shard_id, ckpt_dir=ckpt_dir)
            frame, paths = forecast_shard(module, data, cfg, cutoff=cutoff, shard_id=shard_id)
        else:
            frame, paths = baseline_shard(model, data, cfg, cutoff=cutoff, shard_id=shard_id)
        out.append(_score(model, frame, paths, actuals, scales, cfg))
        log.info("backtest %s shard %d %s: %.1fs", cutoff, shard_id, model, time.perf_counter() - t0)
    if io.table_files(root, S.TRUTH, opts):
        truth = (
            io.scan_table(root, S.TRUTH, opts)
            .filter((pl.col(S.DATE) > cutoff) & (pl.col(S.DATE) <= end))
            .collect()
            .join(data.series, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
            # series discontinued inside the window (truth ends early) get no oracle row
            .filter(pl.len().over(S.SKU_ID, S.WAREHOUSE_ID) >= cfg.data.horizon)
        )
        oracle = oracle_forecasts(
            truth, cutoff=cutoff, horizon=cfg.data.horizon, quantiles=cfg.forecast.quantiles
        )
        out.append(_score(ORACLE, oracle, None, actuals, scales, cfg))
    return pl.concat([f for f in out if not f.is_empty()], how="diagonal_relaxed")


def summarize(metrics: pl.DataFrame) -> pl.DataFrame:
    """Overall metrics per model, averaged over cutoffs: one row per model, one column per metric."""
    overall = metrics.filter(pl.col(S.GROUP) == "all")
    return (
        overall.group_by(S.MODEL, S.METRIC)
        .agg(pl.col(S.VALUE).mean())
        .pivot(on=S.METRIC, index=S.MODEL, values=S.VALUE)
        .sort(S.MODEL)
    )


def run_backtest(cfg: Config, opts: io.StorageOptions | None = None) -> dict[str, Any]:
    """Rolling-origin backtest over ``backtest.cutoffs`` origins; writes metrics and returns a summary."""
    root = cfg.data.root
    if cfg.backtest.policies:  # refuse a bad policy list before hours of accuracy backtest
        from inventory_scale.inventory.policies import check_policies

        check_policies(list(cfg.backtest.policies), bool(io.table_files(root, S.TRUTH, opts)))
    sales = io.scan_table(root, S.SALES, opts)
    last = sales.select(pl.col(S.DATE).max()).collect().item()
    end = dt.date.fromisoformat(cfg.backtest.end) if cfg.backtest.end else last
    cutoffs = backtest_cutoffs(end, cfg.data.freq, cfg.data.horizon, cfg.backtest.cutoffs, cfg.backtest.step)
    products = io.read_table(root, S.PRODUCTS, opts)
    per_series: list[pl.DataFrame] = []
    aggregated: list[pl.DataFrame] = []
    for cutoff in cutoffs:
        series = list_series(root, cutoff, opts)
        if series.is_empty():
            raise DataQualityError(f"{io.join(root, S.SALES.name)}: no sales on or before cutoff {cutoff}")
        shards = assign_shards(series, cfg.ray.shard_size, cfg.ray.group_by)
        scored = [
            backtest_shard(cfg, part.select(S.SKU_ID, S.WAREHOUSE_ID), cutoff, int(part[S.SHARD][0]), opts)
            for part in shards.partition_by(S.SHARD, maintain_order=True)
        ]
        frame = pl.concat(scored, how="diagonal_relaxed")
        per_series.append(frame)
        aggregated.append(
            aggregate_metrics(frame.drop(S.CUTOFF), products).with_columns(pl.lit(cutoff).alias(S.CUTOFF))
        )
    metrics = pl.concat(aggregated, how="diagonal_relaxed")
    out = io.join(cfg.run.dir, "backtest")
    io.write_table(metrics, out, S.BACKTEST_METRICS, opts)
    scored_series = pl.concat(per_series, how="diagonal_relaxed")
    io.write_table(scored_series, out, _series_spec(scored_series), opts)
    table = summarize(metrics)
    log.info("backtest summary (mean over %d cutoffs):\n%s", len(cutoffs), table)
    summary: dict[str, Any] = {
        "stage": "backtest",
        "cutoffs": [c.isoformat() for c in cutoffs],
        "summary": table.to_dicts(),
        "output": out,
    }
    if cfg.backtest.policies:  # policy A/B at the same cutoffs (evaluation/policy_backtest.py)
        from inventory_scale.evaluation.policy_backtest import run_policy_backtest

        summary["policy"] = run_policy_backtest(cfg, opts, cutoffs)
    return summary


def _series_spec(frame: pl.DataFrame) -> S.TableSpec:
    schema = pl.Schema({c: frame.schema[c] for c in frame.columns})
    return S.TableSpec(name="series", schema=schema, key=(S.MODEL, S.SKU_ID, S.WAREHOUSE_ID, S.CUTOFF))
