"""Hyperparameter sweeps: the validation plan and the trial objective (plain Python, no Ray).

``inventory-scale sweep sweep=lstm_small`` (see :func:`run_sweep`) searches ``sweep.space``
(:mod:`inventory_scale.sweep_space`) with Ray Tune + Optuna TPE + ASHA
(:mod:`inventory_scale.distributed.tune`). Every trial is scored the same way:

- the validation origins are ``sweep.cutoffs`` cutoffs ``backtest.step`` periods apart, the last
  window ending at ``sweep.end`` (null: ``backtest.end``, else the last sales date);
- the series are a fixed sample: ``sweep.shards`` shards of the base config's sharding, drawn
  with the global seed (every trial sees the same series, whatever its ``ray.shard_size``);
- per origin, the sample is sharded with the trial's config and one LSTM is trained per shard
  on the history up to the origin (as ``train`` does, same seeds), then scored on the next
  ``H`` periods with the backtest's metrics; the trial metric (``sweep.metric``: ``rmsse``,
  ``crps``, ``mase`` or ``spl``) is the mean over every scored series.

Intermediate reports for ASHA: after each epoch the current unit (origin x shard) is scored when
its ``val_loss`` improved (the weights ``train`` would keep), and the running mean over the
units so far is reported with ``budget`` = epochs of budget used (``unit * max_epochs + epoch``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pytorch_lightning as lightning

from inventory_scale import schema as S
from inventory_scale import sweep_results as R
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.data.features import offset_date
from inventory_scale.distributed.sharding import assign_shards, shards_digest
from inventory_scale.errors import ConfigError, DataQualityError, InventoryScaleError
from inventory_scale.evaluation.backtest import _actuals, _score, backtest_cutoffs
from inventory_scale.evaluation.scales import series_scales
from inventory_scale.forecast import (
    ShardData,
    attach_planned,
    forecast_shard,
    list_series,
    load_shard,
    train_shard,
)
from inventory_scale.sweep_space import Param, apply_overrides, default_point, parse_space

log = logging.getLogger(__name__)

METRICS = (S.RMSSE, S.CRPS, S.MASE, S.SPL)
Report = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SweepPlan:
    """What every trial shares: the base config, the space, the validation origins and series."""

    cfg: Config  # the run's config with sweep.overrides applied
    params: tuple[Param, ...]
    fixed: dict[str, Any]  # sweep.overrides: the trial budget, the same for every trial
    cutoffs: tuple[dt.date, ...]
    series: pl.DataFrame  # sku_id, warehouse_id, n_periods, category: the validation sample
    spec_hash: str  # what a resumed sweep must match
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)  # flat: "base.model.dropout" -> 0.1

    @property
    def metric(self) -> str:
        return self.cfg.sweep.metric

    @property
    def max_budget(self) -> int:
        """Upper bound of ``budget``: one shard per series at every origin, all epochs each."""
        return max(1, len(self.cutoffs) * self.series.height * self.cfg.trainer.max_epochs)


def check_sweep(cfg: Config) -> tuple[list[Param], dict[str, Any], Config]:
    """Validate the sweep config before any data is read or Ray starts.

    Returns:
        ``(params, fixed overrides, base config with the overrides applied)``.

    Raises:
        ConfigError: bad metric, unknown or invalid space or override key (named).
    """
    if cfg.sweep.metric not in METRICS:
        raise ConfigError(
            f"config key 'sweep.metric' must be one of {list(METRICS)}, got {cfg.sweep.metric!r}"
        )
    fixed = dict(cfg.sweep.overrides)
    for key in fixed:
        if key.startswith(("sweep.", "run.", "paths.", "storage.")):
            raise ConfigError(f"config key 'sweep.overrides' cannot set '{key}'")
    try:
        base = apply_overrides(cfg, fixed)
    except ConfigError as e:
        raise ConfigError(f"config key 'sweep.overrides': {e}") from e
    params = parse_space(cfg.sweep.space, base)
    return params, fixed, base


def plan_sweep(cfg: Config, opts: io.StorageOptions | None = None) -> SweepPlan:
    """Check the sweep config, then pick the validation origins and the sample of series."""
    params, fixed, base = check_sweep(cfg)
    root = cfg.data.root
    last = io.scan_table(root, S.SALES, opts).select(pl.col(S.DATE).max()).collect().item()
    if last is None:
        raise DataQualityError(f"{io.join(root, S.SALES.name)}: the sales table is empty")
    end_text = cfg.sweep.end or cfg.backtest.end
    end = dt.date.fromisoformat(end_text) if end_text else last
    cutoffs = backtest_cutoffs(end, base.data.freq, base.data.horizon, cfg.sweep.cutoffs, base.backtest.step)
    series = list_series(root, cutoffs[0], opts)
    if series.is_empty():
        raise DataQualityError(f"{io.join(root, S.SALES.name)}: no sales on or before cutoff {cutoffs[0]}")
    shards = assign_shards(series, base.ray.shard_size, base.ray.group_by)
    ids = np.unique(shards[S.SHARD].to_numpy())
    k = min(cfg.sweep.shards, len(ids))
    picked = np.sort(np.random.default_rng(cfg.seed).choice(ids, size=k, replace=False))
    sample = shards.filter(pl.col(S.SHARD).is_in(picked.tolist())).drop(S.SHARD)
    log.info(
        "sweep %s: %d of %d series (%d of %d shards) at origin(s) %s, metric %s",
        cfg.sweep.name,
        sample.height,
        series.height,
        k,
        len(ids),
        ", ".join(c.isoformat() for c in cutoffs),
        cfg.sweep.metric,
    )
    spec: dict[str, Any] = {
        "space": {p.key: dataclasses.asdict(p) for p in params},
        "fixed": fixed,
        "metric": cfg.sweep.metric,
        "num_samples": cfg.sweep.num_samples,
        "seed": cfg.seed,
        "cutoffs": [c.isoformat() for c in cutoffs],
        "series": shards_digest(sample.with_columns(pl.lit(0).alias(S.SHARD))),
        "base": {g: dataclasses.asdict(getattr(base, g)) for g in ("data", "model", "trainer", "forecast")},
    }
    del spec["base"]["data"]["source_dir"]  # the import source: not what trials read
    flat = R.flatten_spec(spec)
    digest = hashlib.sha256(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]
    plan = SweepPlan(base, tuple(params), fixed, tuple(cutoffs), sample, digest, flat)
    if cfg.sweep.grace_period > plan.max_budget:
        raise ConfigError(
            f"config key 'sweep.grace_period' ({cfg.sweep.grace_period}) exceeds the most epochs a "
            f"trial can use ({plan.max_budget})"
        )
    return plan


@dataclass
class _Unit:
    """One (origin, shard) of a trial: its data and running score (sum, count over its series)."""

    cutoff: dt.date
    shard_id: int
    data: ShardData
    actuals: pl.DataFrame
    scales: pl.DataFrame
    total: float = 0.0
    count: int = 0
    best_val_loss: float = math.inf

    def score(self, module: Any, cfg: Config, metric: str) -> None:
        """Score the module's current weights on the held-out window (sum and count of ``metric``)."""
        module.eval()
        frame, paths = forecast_shard(module, self.data, cfg, cutoff=self.cutoff, shard_id=self.shard_id)
        module.train()
        values = _score("lstm", frame, paths, self.actuals, self.scales, cfg)
        col = values[metric].drop_nulls() if not values.is_empty() else pl.Series([], dtype=pl.Float64)
        self.total, self.count = float(col.sum()), col.len()


@dataclass
class _Trial:
    """A trial's running state: its units, the running metric and what was reported last."""

    cfg: Config
    metric: str
    n_units: int
    report: Report
    units: list[_Unit] = dataclasses.field(default_factory=list)
    last: dict[str, Any] = dataclasses.field(default_factory=dict)

    def on_epoch(self, epoch: int, val_loss: float, done: bool, module: Any) -> None:
        """After an epoch of the current unit: rescore when val_loss improved, report the mean."""
        i, unit = len(self.units) - 1, self.units[-1]
        if math.isfinite(val_loss) and val_loss < unit.best_val_loss:  # the weights `train` keeps
            unit.best_val_loss = val_loss
            unit.score(module, self.cfg, self.metric)
        counted = [u for u in self.units if u.count > 0]
        if not counted:
            return
        self.last = {
            self.metric: sum(u.total for u in counted) / sum(u.count for u in counted),
            "budget": i * self.cfg.trainer.max_epochs + epoch + 1,
            "val_loss": val_loss,
            "units_done": i + int(done),
            "units": self.n_units,
            "series_scored": sum(u.count for u in counted),
            "complete": done and i == self.n_units - 1,
        }
        self.report(dict(self.last))


class _EpochCallback(lightning.Callback):
    """Calls ``on_epoch(epoch, val_loss, last, module)`` after every training epoch.

    Runs after EarlyStopping (appended after it), so ``last`` is true on the epoch the fit ends.
    """

    def __init__(self, on_epoch: Callable[[int, float, bool, Any], None]) -> None:
        self.on_epoch = on_epoch

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("val_loss")
        val_loss = float(value) if value is not None else math.nan
        last = bool(trainer.should_stop) or trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        self.on_epoch(int(trainer.current_epoch), val_loss, last, pl_module)


def _fit_unit(
    data: ShardData, cfg: Config, cutoff: dt.date, shard_id: int, on_epoch: Callable[..., None]
) -> None:
    """Train one shard's LSTM exactly as ``train`` does (``forecast.train_shard``), epoch hook added."""
    with tempfile.TemporaryDirectory(prefix="sweep-ckpt-") as tmp:
        train_shard(
            data, cfg, cutoff=cutoff, shard_id=shard_id, ckpt_dir=tmp, callbacks=[_EpochCallback(on_epoch)]
        )


def run_trial(plan: SweepPlan, point: dict[str, Any], report: Report) -> dict[str, Any]:
    """Train and score one trial's config on the validation plan; ``report`` gets every update.

    Args:
        plan: the sweep's shared plan.
        point: ``{"model.hidden_size": 64, ...}``, the trial's values of the searched keys.
        report: called with ``{metric, budget, val_loss, units_done, units, series_scored,
            complete}`` after each epoch that has a score (``ray.tune.report`` under Tune).

    Returns:
        The last report (``complete`` true).

    Raises:
        InventoryScaleError: a unit never reached a finite ``val_loss`` or scored no series.
    """
    cfg = apply_overrides(plan.cfg, point)
    opts = io.StorageOptions(**dataclasses.asdict(cfg.storage))
    shards = assign_shards(plan.series, cfg.ray.shard_size, cfg.ray.group_by)
    plan_units = [
        (cutoff, part.select(S.SKU_ID, S.WAREHOUSE_ID), int(part[S.SHARD][0]))
        for cutoff in plan.cutoffs
        for part in shards.partition_by(S.SHARD, maintain_order=True)
    ]
    trial = _Trial(cfg, plan.metric, len(plan_units), report)
    for cutoff, keys, shard_id in plan_units:
        data = attach_planned(load_shard(cfg.data.root, keys, cutoff, opts), cfg, cutoff, opts)
        end = offset_date(cutoff, cfg.data.freq, cfg.data.horizon)
        actuals = _actuals(cfg.data.root, data, cutoff, end, opts)
        scales = series_scales(data.sales, season_length=cfg.data.season_length)
        unit = _Unit(cutoff, shard_id, data, actuals, scales)
        trial.units.append(unit)
        _fit_unit(data, cfg, cutoff, shard_id, trial.on_epoch)
        if not math.isfinite(unit.best_val_loss) or unit.count == 0:
            raise InventoryScaleError(
                f"sweep trial {point}: shard {shard_id} at {cutoff} reached no finite val_loss "
                f"or scored no series (best val_loss {unit.best_val_loss})"
            )
    return trial.last


def run_sweep(cfg: Config, opts: io.StorageOptions | None = None) -> dict[str, Any]:
    """The ``sweep`` stage: check, plan, run or resume the Tune experiment, write the outputs.

    Everything about the config (space keys, distributions, overrides, metric) is checked before
    any data is read or Ray starts. A sweep folder that holds a restorable experiment is resumed
    (``sweep.resume=true``) when it was made by the same spec, else refused; with
    ``sweep.resume=false`` it is cleared and the sweep starts over.

    Returns:
        The summary: results table and overlay URIs, the command that runs the best config, the
        best trial, counts by status, wall seconds.

    Raises:
        ConfigError: bad sweep config (the key named), ``ray.mode=inprocess``, or a resume whose
            spec differs from the stored one.
        InventoryScaleError: no trial completed.
    """
    import time

    from inventory_scale.distributed import tune

    if cfg.ray.mode == "inprocess":
        raise ConfigError(
            "config key 'ray.mode' is inprocess: a sweep needs Ray Tune (use ray=local or ray=cluster)"
        )
    check_sweep(cfg)
    t0 = time.perf_counter()
    plan = plan_sweep(cfg, opts)
    out = R.sweep_dir(cfg.run.dir, cfg.sweep.name)
    state_uri = io.join(out, R.STATE)
    restore = tune.can_restore(out, opts)
    if restore and not cfg.sweep.resume:
        log.warning("sweep %s: sweep.resume=false: clearing %s and starting over", cfg.sweep.name, out)
        io.remove(out, opts)
        restore = False
    if restore:
        stored = io.read_json(state_uri, opts) if io.exists(state_uri, opts) else {}
        R.check_stored_spec(stored, plan.spec_hash, plan.spec, out, cfg.sweep.name)
    else:
        io.write_json(
            state_uri, {"spec_hash": plan.spec_hash, "name": cfg.sweep.name, "spec": plan.spec}, opts
        )
    rows, interrupted = tune.run_tune(plan, out, opts, restore=restore)
    if interrupted:
        raise InventoryScaleError(
            f"sweep {cfg.sweep.name} interrupted: {sum(r['status'] == 'complete' for r in rows)} trial(s) "
            f"complete; its state is in {out}: run the same command again to resume"
        )
    keys = [p.key for p in plan.params]
    table = R.results_table(rows, keys, plan.metric)
    summary = R.write_outputs(cfg.run.dir, cfg.sweep.name, table, keys, plan.fixed, plan.metric, opts)
    stored = io.read_json(state_uri, opts) if io.exists(state_uri, opts) else {}
    if cfg.sweep.include_default:
        point = default_point(list(plan.params), plan.cfg)

        def rescore(p: dict[str, Any]) -> float:  # in this process, with a trial's threads
            import torch

            from inventory_scale.distributed.tasks import _quiet_lightning

            _quiet_lightning()
            threads = torch.get_num_threads()
            torch.set_num_threads(max(1, int(cfg.sweep.cpus_per_trial)))
            try:
                return float(run_trial(plan, p, lambda _: None)[plan.metric])
            finally:
                torch.set_num_threads(threads)

        summary.update(R.default_score(point, table, plan.metric, stored.get("default"), rescore))
    seconds = round(time.perf_counter() - t0, 1)
    state = {
        "spec_hash": plan.spec_hash,
        "name": cfg.sweep.name,
        "spec": plan.spec,
        **summary,
        "seconds": seconds,
    }
    io.write_json(state_uri, state, opts)
    return {
        "stage": "sweep",
        "name": cfg.sweep.name,
        "metric": plan.metric,
        "resumed": restore,
        "series": plan.series.height,
        "cutoffs": [c.isoformat() for c in plan.cutoffs],
        **summary,
        "seconds": seconds,
    }
