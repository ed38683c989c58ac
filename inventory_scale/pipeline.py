"""Stage functions: ``run_<stage>(cfg) -> summary``, plain Python (no Hydra, no Ray).

The CLI composes a typed :class:`~inventory_scale.config.Config` and calls one of these; tests call
them directly. Each stage reads its inputs from URIs in the config (``data.root``, ``run.dir``),
writes its outputs atomically with a ``manifest.json``, and returns a JSON-able summary dict.

Stages that later issues build are registered with the issue that brings them; calling one before
it lands raises :class:`~inventory_scale.errors.StageNotBuiltError` with that message, and
``pipeline`` runs every stage that exists, in order, and names the ones it skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.errors import InventoryScaleError, ShardError, StageNotBuiltError
from inventory_scale.manifest import build_manifest, write_manifest
from inventory_scale.schema import INPUT_TABLES

log = logging.getLogger(__name__)

Summary = dict[str, Any]
StageFn = Callable[[Config], Summary]


def storage_options(cfg: Config) -> io.StorageOptions:
    """Storage options for ``s3://`` URIs from ``cfg.storage`` (empty fields: ``AWS_*`` env)."""
    return io.StorageOptions(**dataclasses.asdict(cfg.storage))


def run_generate(cfg: Config) -> Summary:
    """Write the dataset named by ``data`` under ``data.root``.

    ``data=synthetic`` generates a marketplace (deterministic per ``seed``); the real-data configs
    (``m5``, ``walmart_weekly``, ``store_item``, ``carparts``) import ``data.source_dir`` into the
    contract after verifying its checksums.
    """
    from inventory_scale.data import datasets, synth

    opts = storage_options(cfg)
    t0 = time.perf_counter()
    if cfg.data.name == "synthetic":
        rows = synth.generate_marketplace(cfg.data, cfg.data.root, cfg.seed, opts)
        inputs: list[str] = []
    elif cfg.data.name == "parquet":
        raise StageNotBuiltError(
            "data=parquet reads an existing dataset root: there is nothing to generate; "
            "run 'inventory-scale validate data=parquet data.root=...' instead"
        )
    else:
        rows = datasets.import_dataset(cfg.data, cfg.data.root, opts)
        inputs = [cfg.data.source_dir]
    seconds = time.perf_counter() - t0
    manifest = build_manifest("generate", cfg, cfg.seed, inputs, opts, rows=rows, seconds=round(seconds, 2))
    write_manifest(cfg.data.root, manifest, opts)
    log.info("generate: %s rows in %.1fs -> %s", rows, seconds, cfg.data.root)
    return {"stage": "generate", "root": cfg.data.root, "rows": rows, "seconds": round(seconds, 2)}


def run_validate(cfg: Config) -> Summary:
    """Check every input table under ``data.root`` against the contract and its rules.

    In ``validate.mode=fail`` the first broken rule raises and nothing is written. Otherwise the
    report goes to ``<run.dir>/validate/report.json`` with a manifest.
    """
    from inventory_scale.data.validate import validate_dataset

    opts = storage_options(cfg)
    cutoff = dt.date.fromisoformat(cfg.run.cutoff) if cfg.run.cutoff else None
    t0 = time.perf_counter()
    report = validate_dataset(cfg.data.root, cfg.validate, freq=cfg.data.freq, cutoff=cutoff, opts=opts)
    seconds = time.perf_counter() - t0
    out = io.join(cfg.run.dir, "validate")
    io.write_json(io.join(out, "report.json"), report.to_dict(), opts)
    inputs = [io.join(cfg.data.root, t.name) for t in INPUT_TABLES]
    manifest = build_manifest("validate", cfg, cfg.seed, inputs, opts, seconds=round(seconds, 2))
    write_manifest(out, manifest, opts)
    return {"stage": "validate", **report.to_dict(), "seconds": round(seconds, 2)}


def resolve_cutoff(cfg: Config, opts: io.StorageOptions) -> dt.date:
    """``run.cutoff`` or, when null, the last sales date of ``data.root``."""
    from inventory_scale.forecast import last_sales_date

    return dt.date.fromisoformat(cfg.run.cutoff) if cfg.run.cutoff else last_sales_date(cfg.data.root, opts)


def _checkpoint_uri(cfg: Config, shard_id: int) -> str:
    return io.join(cfg.run.dir, "models", f"shard={shard_id:05d}", "model.ckpt")


def _finish(
    stage: str, cfg: Config, out: str, results: list[Summary], opts: io.StorageOptions, **extra: Any
) -> Summary:
    """Write the stage manifest with per-shard status; raise naming the failed shards."""
    failed = [r for r in results if r["status"] == "failed"]
    inputs = [io.join(cfg.data.root, S.SALES.name)]
    write_manifest(out, build_manifest(stage, cfg, cfg.seed, inputs, opts, shards=results, **extra), opts)
    if failed:
        names = ", ".join(f"{r['shard']} ({r['reason']})" for r in failed[:5])
        raise ShardError(int(failed[0]["shard"]), f"{len(failed)} of {len(results)} shard(s) failed: {names}")
    done = sum(r["status"] == "ok" for r in results)
    skipped = sum(r["status"] == "skipped" for r in results)
    return {"stage": stage, "output": out, "shards_ok": done, "shards_skipped": skipped, **extra}


def run_train(cfg: Config) -> Summary:
    """Train one global LSTM per shard on the history up to the cutoff.

    Writes ``<run.dir>/shards/`` (series -> shard) and ``<run.dir>/models/shard=N/model.ckpt``.
    Resumable: a shard whose checkpoint exists is skipped. A shard whose data is bad is reported
    failed with its reason, the others go on, and the stage ends non-zero naming it.
    """
    from inventory_scale.distributed.sharding import assign_shards
    from inventory_scale.forecast import list_series, load_shard, train_shard

    opts = storage_options(cfg)
    cutoff = resolve_cutoff(cfg, opts)
    shards = assign_shards(list_series(cfg.data.root, cutoff, opts), cfg.ray.shard_size, cfg.ray.group_by)
    io.write_table(shards, cfg.run.dir, S.SHARDS, opts)
    results: list[Summary] = []
    for part in shards.partition_by(S.SHARD, maintain_order=True):
        sid = int(part[S.SHARD][0])
        uri = _checkpoint_uri(cfg, sid)
        if io.exists(uri, opts):
            results.append({"shard": sid, "status": "skipped", "checkpoint": uri})
            continue
        try:
            data = load_shard(cfg.data.root, part.select(S.SKU_ID, S.WAREHOUSE_ID), cutoff, opts)
            with tempfile.TemporaryDirectory(prefix="ckpt-") as tmp:
                _, ckpt, info = train_shard(data, cfg, cutoff=cutoff, shard_id=sid, ckpt_dir=tmp)
                io.write_bytes(uri, Path(ckpt).read_bytes(), opts)
        except InventoryScaleError as e:
            log.error("train: shard %d failed: %s", sid, e)
            results.append({"shard": sid, "status": "failed", "reason": str(e)})
            continue
        results.append({**info, "status": "ok", "checkpoint": uri})
    out = io.join(cfg.run.dir, "models")
    return _finish("train", cfg, out, results, opts, cutoff=cutoff.isoformat(), n_shards=len(results))


def run_forecast(cfg: Config) -> Summary:
    """Sample paths for every series of every trained shard; write ``<run.dir>/forecasts/``.

    Each shard's checkpoint is loaded (``weights_only=True``), its series are forecast in one
    batched tensor, and the frames (mean, quantiles, protection-interval quantiles) go to one
    table partitioned by warehouse; ``forecast.keep_paths=true`` also writes ``paths/``.
    """
    from inventory_scale.forecast import forecast_shard, load_shard
    from inventory_scale.models.module import load_forecaster

    opts = storage_options(cfg)
    cutoff = resolve_cutoff(cfg, opts)
    shards = io.read_table(cfg.run.dir, S.SHARDS, opts)
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    results: list[Summary] = []
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(io.TableWriter(cfg.run.dir, spec, opts))
        paths_writer = (
            stack.enter_context(io.TableWriter(cfg.run.dir, S.PATHS, opts))
            if cfg.forecast.keep_paths
            else None
        )
        for part in shards.partition_by(S.SHARD, maintain_order=True):
            sid = int(part[S.SHARD][0])
            t0 = time.perf_counter()
            try:
                with tempfile.TemporaryDirectory(prefix="ckpt-") as tmp:
                    local = Path(tmp) / "model.ckpt"
                    local.write_bytes(io.read_bytes(_checkpoint_uri(cfg, sid), opts))
                    module = load_forecaster(local)
                data = load_shard(cfg.data.root, part.select(S.SKU_ID, S.WAREHOUSE_ID), cutoff, opts)
                frame, paths = forecast_shard(module, data, cfg, cutoff=cutoff, shard_id=sid)
            except InventoryScaleError as e:
                log.error("forecast: shard %d failed: %s", sid, e)
                results.append({"shard": sid, "status": "failed", "reason": str(e)})
                continue
            writer.write(frame)
            if paths_writer is not None:
                paths_writer.write(paths_frame(frame, paths))
            secs = time.perf_counter() - t0
            results.append(
                {"shard": sid, "status": "ok", "series": paths.shape[0], "seconds": round(secs, 2)}
            )
    out = io.join(cfg.run.dir, "forecasts")
    return _finish("forecast", cfg, out, results, opts, cutoff=cutoff.isoformat(), rows=writer.rows_written)


def paths_frame(frame: Any, paths: Any) -> Any:
    """Long ``paths/`` rows (keys, cutoff, sample_id, step, value) of a shard's ``[N, S, H]`` paths."""
    import numpy as np
    import polars as pl

    n, s, h = paths.shape
    keys = frame.select(S.SKU_ID, S.WAREHOUSE_ID, S.CUTOFF).unique(maintain_order=True)
    return pl.DataFrame(
        {
            S.SKU_ID: np.repeat(keys[S.SKU_ID].to_numpy(), s * h),
            S.WAREHOUSE_ID: np.repeat(keys[S.WAREHOUSE_ID].to_numpy(), s * h),
            S.CUTOFF: np.repeat(keys[S.CUTOFF].to_numpy(), s * h),
            S.SAMPLE_ID: np.tile(np.repeat(np.arange(s, dtype=np.int32), h), n),
            S.STEP: np.tile(np.arange(1, h + 1, dtype=np.int32), n * s),
            S.VALUE: paths.reshape(-1),
        }
    )


def run_backtest(cfg: Config) -> Summary:
    """Rolling-origin accuracy of the LSTM and the baselines (see evaluation/backtest.py)."""
    from inventory_scale.evaluation.backtest import run_backtest as backtest

    opts = storage_options(cfg)
    summary = backtest(cfg, opts)
    inputs = [io.join(cfg.data.root, S.SALES.name)]
    write_manifest(summary["output"], build_manifest("backtest", cfg, cfg.seed, inputs, opts), opts)
    return summary


@dataclass(frozen=True)
class Stage:
    """A CLI stage: what it does, which config groups it reads, and its function or its issue."""

    name: str
    help: str
    groups: tuple[str, ...]
    fn: StageFn | None = None
    issue: int | None = None

    @property
    def built(self) -> bool:
        return self.fn is not None


def _not_built(stage: Stage) -> StageNotBuiltError:
    return StageNotBuiltError(
        f"stage '{stage.name}' is not built yet (it lands with issue #{stage.issue}); "
        f"built stages: {', '.join(s.name for s in STAGES.values() if s.built)}"
    )


def run_pipeline(cfg: Config) -> Summary:
    """Run validate and every later stage that exists, in order; name the stages skipped."""
    results: list[Summary] = []
    skipped: list[str] = []
    for name in PIPELINE_ORDER:
        stage = STAGES[name]
        if stage.fn is None:
            skipped.append(f"{name} (issue #{stage.issue})")
            log.warning("pipeline: skipping stage '%s': not built yet (issue #%s)", name, stage.issue)
            continue
        log.info("pipeline: stage '%s'", name)
        results.append(stage.fn(cfg))
    return {"stage": "pipeline", "stages": results, "skipped": skipped}


def run_stage(name: str, cfg: Config) -> Summary:
    """Run stage ``name``; raises :class:`StageNotBuiltError` for stages not built yet."""
    stage = STAGES[name]
    if stage.fn is None:
        raise _not_built(stage)
    return stage.fn(cfg)


_RUN = ("run", "paths", "storage")
STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "generate",
            "write a synthetic marketplace or import a real data set",
            ("data", *_RUN),
            run_generate,
        ),
        Stage(
            "validate",
            "check the dataset against the data contract",
            ("data", "validate", *_RUN),
            run_validate,
        ),
        Stage(
            "train", "train one global LSTM per shard", ("data", "model", "trainer", "ray", *_RUN), run_train
        ),
        Stage(
            "forecast",
            "sample paths, quantiles and protection-interval demand",
            ("data", "forecast", "ray", *_RUN),
            run_forecast,
        ),
        Stage(
            "optimize", "per-warehouse constrained reorder plans", ("data", "policy", "ray", *_RUN), issue=6
        ),
        Stage(
            "backtest",
            "rolling-origin accuracy and policy A/B",
            ("data", "backtest", "model", "trainer", "forecast", *_RUN),
            run_backtest,
        ),
        Stage("report", "HTML and Markdown run report", ("run",), issue=10),
        Stage("monitor", "compare new sales with the last forecast", ("data", *_RUN), issue=10),
        Stage(
            "sweep", "hyperparameter search with Ray Tune + Optuna", ("sweep", "model", "ray", *_RUN), issue=7
        ),
        Stage(
            "pipeline",
            "validate -> train -> forecast -> optimize -> backtest -> report",
            ("data", *_RUN),
            run_pipeline,
        ),
        Stage("bench", "accuracy, speed and memory against peer libraries", ("data", *_RUN), issue=9),
    )
}
PIPELINE_ORDER: tuple[str, ...] = ("validate", "train", "forecast", "optimize", "backtest", "report")
