"""Stage functions: ``run_<stage>(cfg) -> summary``, plain Python (no Hydra, no Ray).

The CLI composes a typed :class:`~inventory_scale.config.Config` and calls one of these; tests call
them directly. Each stage reads its inputs from URIs in the config (``data.root``, ``run.dir``),
writes its outputs atomically with a ``manifest.json``, and returns a JSON-able summary dict.

Stages that later issues build are registered with the issue that brings them; calling one before
it lands raises :class:`~inventory_scale.errors.StageNotBuiltError` with that message, and
``pipeline`` runs every stage that exists, in order, and names the ones it skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from inventory_scale import schema as S
from inventory_scale.config import Config, RayConfig
from inventory_scale.data import io
from inventory_scale.errors import ShardError, StageNotBuiltError
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


def _planned_fingerprint(cfg: Config, opts: io.StorageOptions) -> str | None:
    """Digest of the ``planned_prices`` table when forecasts read it (so a new plan re-forecasts)."""
    from inventory_scale.manifest import fingerprint

    uri = io.join(cfg.data.root, S.PLANNED_PRICES.name)
    if cfg.data.planned_prices != "table" or not io.table_files(cfg.data.root, S.PLANNED_PRICES, opts):
        return None
    return fingerprint(uri, opts)["sha256"]


def resolve_cutoff(cfg: Config, opts: io.StorageOptions) -> dt.date:
    """``run.cutoff`` or, when null, the last sales date of ``data.root``."""
    from inventory_scale.data.listing import last_sales_date

    return dt.date.fromisoformat(cfg.run.cutoff) if cfg.run.cutoff else last_sales_date(cfg.data.root, opts)


def _ray_cfg(cfg: Config) -> RayConfig:
    """The ``ray`` group for shard tasks: a GPU trainer with no GPU per task asks for one each."""
    if cfg.trainer.accelerator in ("gpu", "cuda") and cfg.ray.num_gpus_per_task == 0:
        log.warning(
            "trainer.accelerator=%s with ray.num_gpus_per_task=0: requesting 1 GPU per task "
            "(set ray.num_gpus_per_task=0.25 to share a GPU between 4 shards)",
            cfg.trainer.accelerator,
        )
        return dataclasses.replace(cfg.ray, num_gpus_per_task=1.0)
    return cfg.ray


def _shard_items(shards: Any) -> list[Any]:
    from inventory_scale.distributed.tasks import ShardItem

    return [
        ShardItem(int(part[S.SHARD][0]), part.select(S.SKU_ID, S.WAREHOUSE_ID))
        for part in shards.partition_by(S.SHARD, maintain_order=True)
    ]


def _prepare(
    cfg: Config, shards: Any, cutoff: dt.date, n_todo: int, opts: io.StorageOptions
) -> dict[str, Any]:
    """Bucket the sales by shard when the layout asks for it and more than one shard is to run."""
    from inventory_scale.distributed.sharding import prepare_sales

    if cfg.ray.sales_layout != "bucketed" or n_todo <= 1:
        return {"sales_layout": "raw"}
    info = prepare_sales(cfg.data.root, shards, cutoff, cfg.run.dir, opts)
    return {"sales_layout": "bucketed", "prepare_seconds": info["seconds"]}


def _run_shards(
    stage: str, fn: Any, cfg: Config, todo: list[Any], inputs: Any, done: list[Summary]
) -> list[Summary]:
    """Fan ``todo`` out through the runner; merge with the shards ``done`` earlier, by shard id."""
    from inventory_scale.distributed.runner import run_tasks
    from inventory_scale.distributed.tasks import shard_label

    if done:
        log.info("%s: skipping %d finished task(s) of %d", stage, len(done), len(done) + len(todo))
    results = (
        run_tasks(fn, todo, ray_cfg=_ray_cfg(cfg), stage=stage, shared=inputs, label=shard_label)
        if todo
        else []
    )
    for item, res in zip(todo, results, strict=True):
        res["shard"] = item.shard
        if item.member:  # an ensemble member of a train stage (tasks.merge_members folds them)
            res["member"] = item.member
    return sorted([*done, *results], key=lambda r: (int(r["shard"]), int(r.get("member", 0))))


def _finish(
    stage: str, cfg: Config, out: str, results: list[Summary], opts: io.StorageOptions, **extra: Any
) -> Summary:
    """Write the stage manifest with per-shard status; raise naming the failed shards."""
    failed = [r for r in results if r["status"] == "failed"]
    retried = [r for r in results if int(r.get("attempts", 1)) > 1]
    counts = {
        "shards_ok": sum(r["status"] == "ok" for r in results),
        "shards_skipped": sum(r["status"] == "skipped" for r in results),
        "shards_failed": len(failed),
        "shards_retried": len(retried),
    }
    inputs = [io.join(cfg.data.root, S.SALES.name)]
    manifest = build_manifest(stage, cfg, cfg.seed, inputs, opts, shards=results, **counts, **extra)
    write_manifest(out, manifest, opts)
    if retried:
        log.warning(
            "%s: %d shard(s) retried after system failures: %s",
            stage,
            len(retried),
            ", ".join(str(r["shard"]) for r in retried[:5]),
        )
    if failed:
        names = ", ".join(f"{r['shard']} ({r['reason']})" for r in failed[:5])
        raise ShardError(int(failed[0]["shard"]), f"{len(failed)} of {len(results)} shard(s) failed: {names}")
    return {"stage": stage, "output": out, **counts, **extra}


def run_train(cfg: Config) -> Summary:
    """Train one global LSTM per shard on the history up to the cutoff, one runner task per shard.

    Writes ``<run.dir>/shards/`` (series -> shard) and ``<run.dir>/models/shard=N/model.ckpt``.
    Resumable: a shard whose checkpoint exists is skipped (the count is logged); a change of
    config, cutoff, shard assignment or sales input clears ``models/`` first. A shard whose data
    is bad is reported failed with its reason, the others go on, and the stage ends non-zero
    naming it. With ``ray.sales_layout=bucketed`` the sales are first bucketed by shard.
    """
    from inventory_scale.data.listing import list_series
    from inventory_scale.distributed import outputs, tasks
    from inventory_scale.distributed.sharding import assign_shards, plan_hash, shards_digest
    from inventory_scale.manifest import fingerprint

    opts = storage_options(cfg)
    cutoff = resolve_cutoff(cfg, opts)
    _warm_text_cache(cfg)
    shards = assign_shards(list_series(cfg.data.root, cutoff, opts), cfg.ray.shard_size, cfg.ray.group_by)
    io.write_table(shards, cfg.run.dir, S.SHARDS, opts)
    out = io.join(cfg.run.dir, outputs.MODELS)
    plan = plan_hash(
        cutoff=cutoff,
        seed=cfg.seed,
        data=dataclasses.asdict(cfg.data),
        model=dataclasses.asdict(cfg.model),
        trainer=dataclasses.asdict(cfg.trainer),
        shards=shards_digest(shards),
        sales=fingerprint(io.join(cfg.data.root, S.SALES.name), opts)["sha256"],
    )
    outputs.reset_if_plan_changed(out, plan, opts, "train")
    finished = outputs.finished_members(cfg.run.dir, opts)
    items = [
        dataclasses.replace(it, member=k) for it in _shard_items(shards) for k in range(cfg.model.ensemble)
    ]
    todo = [it for it in items if (it.shard, it.member) not in finished]
    done = [
        {
            "shard": it.shard,
            "member": it.member,
            "status": "skipped",
            "checkpoint": outputs.member_uri(cfg.run.dir, it.shard, it.member),
        }
        for it in items
        if (it.shard, it.member) in finished
    ]
    layout: dict[str, Any] = {}
    if todo:
        outputs.invalidate_manifest(out, opts)
        layout = _prepare(cfg, shards, cutoff, len(todo), opts)
    inputs = tasks.StageInputs(cfg, cutoff, layout.get("sales_layout") == "bucketed")
    results = tasks.merge_members(_run_shards("train", tasks.train_task, cfg, todo, inputs, done))
    return _finish(
        "train", cfg, out, results, opts, cutoff=cutoff.isoformat(), n_shards=len(results), **layout
    )


def _warm_text_cache(cfg: Config) -> None:
    """Embed every product's text once here, so shard tasks only read the cache (text features on)."""
    if cfg.model.text_features:
        from inventory_scale.text.features import warm_cache

        log.info("text embeddings: %s", warm_cache(cfg.data.root, cfg))


def _with_cold(cfg: Config, items: list[Any], cutoff: dt.date, opts: io.StorageOptions) -> list[Any]:
    """Attach to each shard the cold-start series (launched after the cutoff) its model forecasts."""
    if not cfg.forecast.cold_start or not items:
        return items
    from inventory_scale.data.listing import cold_series
    from inventory_scale.distributed.sharding import assign_cold

    cold = cold_series(cfg.data.root, cutoff, cfg.data.freq, cfg.data.horizon, opts)
    if cold.is_empty():
        return items
    cold = assign_cold(cold, [it.shard for it in items])
    log.info("forecast: %d cold-start series (launched after %s)", cold.height, cutoff)
    by_shard = {int(p[S.SHARD][0]): p.drop(S.SHARD) for p in cold.partition_by(S.SHARD)}
    return [dataclasses.replace(it, cold=by_shard.get(it.shard)) for it in items]


def run_forecast(cfg: Config) -> Summary:
    """Sample paths for every series of every trained shard; write ``<run.dir>/forecasts/``.

    One runner task per shard loads its checkpoint (``weights_only=True``), forecasts its series
    in one batched tensor and writes its rows as one Parquet part per warehouse
    (``forecasts/warehouse_id=W/part-shardNNNNN.parquet``, atomic) and then a shard marker; the
    table reads as one with ``io.read_table(run.dir, forecast_spec(...))``. Resumable: shards
    whose marker matches their current checkpoint are skipped, a retried or re-run shard
    overwrites its own parts, so rows are never duplicated. ``forecast.keep_paths=true`` also
    writes ``paths/`` the same way.
    """
    from inventory_scale.distributed import outputs, tasks
    from inventory_scale.distributed.sharding import plan_hash, shards_digest

    opts = storage_options(cfg)
    cutoff = resolve_cutoff(cfg, opts)
    shards = io.read_table(cfg.run.dir, S.SHARDS, opts)
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    out = io.join(cfg.run.dir, spec.name)
    _warm_text_cache(cfg)
    items = _with_cold(cfg, _shard_items(shards), cutoff, opts)
    train_plan_uri = io.join(cfg.run.dir, outputs.MODELS, outputs.PLAN)
    plan = plan_hash(
        cutoff=cutoff,
        seed=cfg.seed,
        data=dataclasses.asdict(cfg.data),
        forecast=dataclasses.asdict(cfg.forecast),
        shards=shards_digest(shards),
        cold=[len(it.cold) for it in items if it.cold is not None],
        planned=_planned_fingerprint(cfg, opts),
        models=io.read_json(train_plan_uri, opts).get("hash") if io.exists(train_plan_uri, opts) else None,
    )
    if outputs.reset_if_plan_changed(out, plan, opts, "forecast"):
        io.remove(io.join(cfg.run.dir, S.PATHS.name), opts)
    ckpts = outputs.finished_checkpoints(cfg.run.dir, opts, cfg.model.ensemble)
    markers = outputs.finished_markers(out, opts)
    fresh = {
        sid for sid, m in markers.items() if ckpts.get(sid) is not None and m.get("checkpoint") == ckpts[sid]
    }
    todo = [it for it in items if it.shard not in fresh]
    done = [
        {"shard": it.shard, "status": "skipped", "rows": markers[it.shard]["rows"]}
        for it in items
        if it.shard in fresh
    ]
    layout: dict[str, Any] = {}
    if todo:
        outputs.invalidate_manifest(out, opts)
        layout = _prepare(cfg, shards, cutoff, len(todo), opts)
    inputs = tasks.StageInputs(cfg, cutoff, layout.get("sales_layout") == "bucketed", checkpoints=ckpts)
    results = _run_shards("forecast", tasks.forecast_task, cfg, todo, inputs, done)
    rows = sum(int(r.get("rows", 0)) for r in results if r["status"] != "failed")
    return _finish("forecast", cfg, out, results, opts, cutoff=cutoff.isoformat(), rows=rows, **layout)


def run_optimize(cfg: Config) -> Summary:
    """Per-warehouse reorder plans from the run's forecasts -> ``<run.dir>/plans/`` (inventory/optimize)."""
    from inventory_scale.inventory.optimize import run_optimize as optimize

    return optimize(cfg, storage_options(cfg))


def run_backtest(cfg: Config) -> Summary:
    """Rolling-origin accuracy of the LSTM and the baselines (see evaluation/backtest.py)."""
    from inventory_scale.evaluation.backtest import run_backtest as backtest

    opts = storage_options(cfg)
    summary = backtest(cfg, opts)
    inputs = [io.join(cfg.data.root, S.SALES.name)]
    write_manifest(summary["output"], build_manifest("backtest", cfg, cfg.seed, inputs, opts), opts)
    return summary


def run_sweep(cfg: Config) -> Summary:
    """Hyperparameter search over ``sweep.space`` with Ray Tune + Optuna + ASHA (see sweep.py).

    Writes ``<run.dir>/sweeps/<sweep.name>/`` (Tune state, ``results.parquet``, the best config
    as ``experiment/<name>_best.yaml``); an interrupted sweep resumes from that state.
    """
    from inventory_scale.sweep import run_sweep as sweep

    return sweep(cfg, storage_options(cfg))


def run_report(cfg: Config) -> Summary:
    """One self-contained HTML report and a Markdown summary of ``run.dir`` (evaluation/report.py)."""
    from inventory_scale.evaluation.report import run_report as report

    return report(cfg, storage_options(cfg))


def run_monitor(cfg: Config) -> Summary:
    """New sales against the last forecast -> ``<run.dir>/monitor/exceptions/`` (monitor.py)."""
    from inventory_scale.monitor import run_monitor as monitor

    return monitor(cfg, storage_options(cfg))


def run_bench(cfg: Config) -> Summary:
    """Ours against the peer libraries on the same data and cutoffs (see bench/harness.py).

    Needs the ``bench`` extra for the peers (``pip install -e .[bench]``); writes
    ``<run.dir>/bench/results.{parquet,md}`` and ``hardware.parquet``.
    """
    from inventory_scale.bench.harness import run_bench as bench

    return bench(cfg)


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
    """Run validate and every later stage that exists, in order; name the stages skipped.

    Ray is started (``ray=local``) or connected (``ray=cluster``) once for all stages.
    """
    from inventory_scale.distributed.runner import ray_session

    results: list[Summary] = []
    skipped: list[str] = []
    with ray_session(cfg.ray):  # one Ray start (or connection) for every stage, not one each
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
            "optimize",
            "per-warehouse constrained reorder plans",
            ("data", "forecast", "policy", "ray", *_RUN),
            run_optimize,
        ),
        Stage(
            "backtest",
            "rolling-origin accuracy and policy A/B",
            ("data", "backtest", "model", "trainer", "forecast", *_RUN),
            run_backtest,
        ),
        Stage("report", "HTML and Markdown run report", ("data", "report", *_RUN), run_report),
        Stage(
            "monitor",
            "compare new sales with the last forecast: exceptions for planners",
            ("data", "monitor", "forecast", "policy", "ray", *_RUN),
            run_monitor,
        ),
        Stage(
            "sweep",
            "hyperparameter search with Ray Tune + Optuna",
            ("sweep", "data", "model", "trainer", "ray", *_RUN),
            run_sweep,
        ),
        Stage(
            "pipeline",
            "validate -> train -> forecast -> optimize -> backtest -> report",
            ("data", *_RUN),
            run_pipeline,
        ),
        Stage(
            "bench",
            "accuracy, speed and memory against peer libraries",
            ("bench", "model", "trainer", "forecast", "ray", *_RUN),
            run_bench,
        ),
    )
}
PIPELINE_ORDER: tuple[str, ...] = ("validate", "train", "forecast", "optimize", "backtest", "report")
