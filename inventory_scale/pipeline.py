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

from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.errors import StageNotBuiltError
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
            "train", "train one global LSTM per shard", ("data", "model", "trainer", "ray", *_RUN), issue=4
        ),
        Stage(
            "forecast",
            "sample paths, quantiles and protection-interval demand",
            ("data", "forecast", "ray", *_RUN),
            issue=4,
        ),
        Stage(
            "optimize", "per-warehouse constrained reorder plans", ("data", "policy", "ray", *_RUN), issue=6
        ),
        Stage(
            "backtest",
            "rolling-origin accuracy and policy A/B",
            ("data", "backtest", "policy", *_RUN),
            issue=4,
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
