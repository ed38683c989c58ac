"""The benchmark run: every model on the same data, horizon and cutoffs, scored by our metric code.

For each dataset of ``bench.datasets`` (generated or imported under ``<paths.data_dir>/bench/``
when absent), the cutoffs are those of the rolling-origin backtest
(``evaluation.backtest.backtest_cutoffs``: ``cutoffs`` origins ``step`` days apart, the last
window ending at the last sales date). Every model runs in its own process (:mod:`.child`) over
all cutoffs while :class:`~inventory_scale.bench.memory.TreeSampler` records the peak RSS of that
process and its descendants (Ray's processes included for ours). The forecast frames are scored
here with ``evaluation.metrics.evaluate_forecasts`` / ``aggregate_metrics`` on the series every
model forecast and that have actuals on every horizon date; synthetic data adds the oracle row.
CRPS is the quantile form (``scores.quantile_crps``) on the ``forecast.quantiles`` grid for every
probabilistic model, ours included, so the figures compare like with like.

Settings shared with the peers: the horizon, ours' context length (the neural peers' input
size), hidden size, layers, learning rate and windows per step, and a training-step budget of
``ceil(bench.peer_steps_factor x trainer.max_epochs x trainer.steps_per_epoch)``, at least ours.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl

from inventory_scale import schema as S
from inventory_scale.bench import peers
from inventory_scale.bench.child import RESULT, ChildSpec, forecast_path
from inventory_scale.bench.memory import TreeSampler
from inventory_scale.config import BenchDatasetConfig, Config, DataConfig
from inventory_scale.data import io
from inventory_scale.errors import ConfigError, InventoryScaleError
from inventory_scale.evaluation.backtest import ORACLE, backtest_cutoffs, summarize
from inventory_scale.evaluation.metrics import aggregate_metrics, evaluate_forecasts, oracle_forecasts
from inventory_scale.evaluation.scales import series_scales
from inventory_scale.manifest import read_manifest

log = logging.getLogger(__name__)

KEYS = [S.SKU_ID, S.WAREHOUSE_ID]


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> Any:
    """``cfg`` with dotted keys replaced (``{"model.hidden_size": 128}``), each section re-validated.

    Raises:
        ConfigError: a key that names no field.
    """
    for key, value in overrides.items():
        cfg = _replace(cfg, key.split("."), value, key)
    return cfg


def _replace(obj: Any, parts: list[str], value: Any, key: str) -> Any:
    if not dataclasses.is_dataclass(obj) or parts[0] not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError(f"config key 'bench.datasets.ours.{key}' names no config field")
    current = getattr(obj, parts[0])
    if len(parts) > 1:
        return dataclasses.replace(obj, **{parts[0]: _replace(current, parts[1:], value, key)})  # type: ignore[type-var]
    if isinstance(current, str) and isinstance(value, int | float):
        value = str(value)
    elif isinstance(current, float) and isinstance(value, int):
        value = float(value)
    return dataclasses.replace(obj, **{parts[0]: value})  # type: ignore[type-var]


def dataset_config(cfg: Config, ds: BenchDatasetConfig) -> DataConfig:
    """The ``data`` section of one benchmark dataset (root under ``<paths.data_dir>/bench/``)."""
    return DataConfig(
        name=ds.name,
        root=io.join(cfg.paths.data_dir, "bench", ds.key),
        source_dir=cfg.paths.shared_data_dir,
        freq="1d",
        horizon=ds.horizon,
        context_length=ds.context_length,
        season_length=7,
        max_series=ds.max_series,
        n_skus=ds.n_skus,
        n_warehouses=ds.n_warehouses,
        days=ds.days,
    )


def ensure_dataset(cfg: Config) -> None:
    """Generate (synthetic) or import (real) ``cfg.data`` unless its root holds the same dataset."""
    from inventory_scale.pipeline import run_generate

    synthetic = cfg.data.name == "synthetic"
    fields = ("name", "max_series") + (("n_skus", "n_warehouses", "days") if synthetic else ())
    manifest = read_manifest(cfg.data.root)
    if manifest is not None:
        made = manifest.get("config", {}).get("data", {})
        same = all(made.get(f) == getattr(cfg.data, f) for f in fields)
        if same and (not synthetic or manifest.get("seed") == cfg.seed):
            return
        io.remove(cfg.data.root)
    log.info("bench: writing dataset %s to %s", cfg.data.name, cfg.data.root)
    run_generate(cfg)


def check_models(models: list[str], require: bool) -> list[str]:
    """The models to run: every peer's library must be installed, or (``require=False``) it is skipped.

    Raises:
        ConfigError: a peer's library is missing and ``require`` is set; names the extra.
    """
    missing = [m for m in models if m != "ours" and not peers.available(m)]
    if missing and require:
        libs = sorted({peers.LIBRARY[m] for m in missing})
        raise ConfigError(
            f"bench models {missing} need {', '.join(libs)}: install the bench extra "
            f"({peers.EXTRA_HINT}) or set bench.require_peers=false to skip them"
        )
    for m in missing:
        log.warning("bench: skipping %s (%s not installed; %s)", m, peers.LIBRARY[m], peers.EXTRA_HINT)
    return [m for m in models if m not in missing]


def peer_settings(cfg: Config, threads: int) -> peers.PeerSettings:
    """What the peers are told, from ours' config on this dataset."""
    budget = cfg.trainer.max_epochs * cfg.trainer.steps_per_epoch
    return peers.PeerSettings(
        horizon=cfg.data.horizon,
        season_length=cfg.data.season_length,
        context_length=cfg.data.context_length,
        hidden_size=cfg.model.hidden_size,
        num_layers=cfg.model.num_layers,
        learning_rate=cfg.model.learning_rate,
        windows_per_step=cfg.model.batch_size,
        max_steps=math.ceil(cfg.bench.peer_steps_factor * budget),
        quantiles=tuple(cfg.forecast.quantiles),
        threads=threads,
        seed=cfg.seed,
        lightgbm_estimators=cfg.bench.lightgbm_estimators,
        lightgbm_conformal_windows=cfg.bench.lightgbm_conformal_windows,
    )


def child_env(threads: int) -> dict[str, str]:
    """Environment of every child: ``threads`` OpenMP/MKL threads, passive OpenMP waiting.

    ``OMP_WAIT_POLICY=PASSIVE`` (unless set already): with the default spin-waiting, an LSTM on 2
    threads of a machine that other processes also load ran 15-40x slower here (every time step
    ends in a barrier that waits for a descheduled thread); passive waiting costs little on an
    idle machine. Every model gets the same environment.
    """
    env = {
        **os.environ,
        **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")},
    }
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def run_model(spec: ChildSpec, threads: int) -> dict[str, Any]:
    """Run one child process; returns its result with ``peak_rss_mib`` and ``wall_seconds``.

    A failing child gives ``status = "failed"`` and the tail of its log as ``reason``.
    """
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / "spec.pkl"
    spec_path.write_bytes(pickle.dumps(spec))
    log_path = out / "child.log"
    t0 = time.perf_counter()
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inventory_scale.bench.child", str(spec_path)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=child_env(threads),
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.stop()
    wall = time.perf_counter() - t0
    peaks = sampler.peaks()
    peak = peaks["tree_peak_mib"]
    if rc != 0 or not (out / RESULT).exists():
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        log.error("bench: %s failed (exit %d), see %s: %s", spec.model, rc, log_path, " | ".join(tail))
        return {
            "model": spec.model,
            "status": "failed",
            "reason": " | ".join(tail)[-300:],
            "wall_seconds": wall,
        }
    result: dict[str, Any] = json.loads((out / RESULT).read_text())
    log.info("bench: %s done in %.1fs, peak RSS %d MiB", spec.model, wall, peak)
    return {
        **result,
        "status": "ok",
        "peak_rss_mib": peak,
        "worker_peak_mib": peaks["worker_peak_mib"] or None,
        "wall_seconds": wall,
    }


def _complete(actuals: pl.DataFrame, horizon: int) -> pl.DataFrame:
    return actuals.group_by(KEYS).len().filter(pl.col("len") == horizon).select(KEYS)


def score_dataset(
    cfg: Config, cutoffs: list[dt.date], frames: dict[str, dict[dt.date, pl.DataFrame]]
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Mean over cutoffs of every model's overall metrics, on the series all models forecast.

    Args:
        cfg: config with the dataset as ``data``.
        cutoffs: the forecast origins.
        frames: model -> cutoff -> forecast frame.

    Returns:
        ``(summary, n_series)``: ``backtest.summarize`` of the metrics (one row per model, one
        column per metric incl. ``wrmsse``), and the series scored per cutoff (the last cutoff).
    """
    root, h, qs = cfg.data.root, cfg.data.horizon, cfg.forecast.quantiles
    sales = io.scan_table(root, S.SALES).select(*KEYS, S.DATE, S.UNITS_SOLD, S.PRICE)
    products = io.read_table(root, S.PRODUCTS, columns=[S.SKU_ID, S.CATEGORY])
    has_truth = bool(io.table_files(root, S.TRUTH))
    aggregated, counts = [], {}
    for cutoff in cutoffs:
        end = cutoff + dt.timedelta(days=h)
        history = sales.filter(pl.col(S.DATE) <= cutoff).collect()
        actuals = sales.filter((pl.col(S.DATE) > cutoff) & (pl.col(S.DATE) <= end)).collect()
        scales = series_scales(history, season_length=cfg.data.season_length)
        by_model = {m: f[cutoff] for m, f in frames.items() if cutoff in f}
        if has_truth:
            truth = (
                io.scan_table(root, S.TRUTH)
                .filter((pl.col(S.DATE) > cutoff) & (pl.col(S.DATE) <= end))
                .collect()
                .filter(pl.len().over(KEYS) >= h)
            )
            by_model[ORACLE] = oracle_forecasts(truth, cutoff=cutoff, horizon=h, quantiles=qs)
        common = _complete(actuals, h).join(scales.select(KEYS), on=KEYS, how="semi")
        for frame in by_model.values():
            common = common.join(frame.select(KEYS).unique(), on=KEYS, how="semi")
        counts[cutoff.isoformat()] = common.height
        log.info(
            "bench %s %s: scoring %d series x %d models", cfg.data.name, cutoff, common.height, len(by_model)
        )
        scored = [
            evaluate_forecasts(
                frame.join(common, on=KEYS, how="semi"), actuals, scales, quantiles=qs, samples=None, model=m
            )
            for m, frame in by_model.items()
        ]
        per_series = pl.concat(scored, how="diagonal_relaxed")
        aggregated.append(
            aggregate_metrics(per_series.drop(S.CUTOFF, strict=False), products).with_columns(
                pl.lit(cutoff).alias(S.CUTOFF)
            )
        )
    return summarize(pl.concat(aggregated, how="diagonal_relaxed")), counts


def bench_dataset(
    cfg: Config, ds: BenchDatasetConfig, models: list[str], work: Path, threads: int
) -> list[dict]:
    """Run and score every model on one dataset; one row per model (and the oracle)."""
    data_cfg = dataset_config(cfg, ds)
    base = dataclasses.replace(cfg, data=data_cfg)
    ensure_dataset(base)
    ours_cfg = apply_overrides(base, {"ray.num_cpus": threads, **ds.ours})
    if ours_cfg.ray.num_cpus_per_task > threads:  # a task must fit in the cores the models get
        ours_cfg = apply_overrides(ours_cfg, {"ray.num_cpus_per_task": float(threads)})
    last = io.scan_table(data_cfg.root, S.SALES).select(pl.col(S.DATE).max()).collect().item()
    cutoffs = backtest_cutoffs(last, "1d", ds.horizon, ds.cutoffs, ds.step)
    settings = peer_settings(ours_cfg, threads)
    results: dict[str, dict[str, Any]] = {}
    frames: dict[str, dict[dt.date, pl.DataFrame]] = {}
    for model in models:
        out = work / ds.key / model
        spec = ChildSpec(model, ours_cfg, tuple(cutoffs), str(out), settings)
        log.info("bench %s: running %s over %d cutoff(s)", ds.key, model, len(cutoffs))
        results[model] = run_model(spec, threads)
        if results[model]["status"] == "ok":
            frames[model] = {c: pl.read_parquet(forecast_path(out, c)) for c in cutoffs}
    summary, counts = score_dataset(ours_cfg, cutoffs, frames)
    rows = []
    for rec in summary.to_dicts():
        model = rec.pop(S.MODEL)
        res = results.get(model, {"status": "ok"})
        per_cut = res.get("cutoffs", [])

        def mean(key: str, rows_: list[dict[str, Any]] = per_cut) -> float | None:
            vals = [float(r[key]) for r in rows_ if r.get(key) is not None]
            return sum(vals) / len(vals) if vals else None

        rows.append(
            {
                "dataset": ds.key,
                "model": model,
                "status": res["status"],
                "n_series": min(counts.values()),
                "cutoffs": len(cutoffs),
                "horizon": ds.horizon,
                **{
                    k: rec.get(k)
                    for k in ("rmsse", "wrmsse", "mase", "spl", "crps", "coverage_80", "coverage_90")
                },
                "bias": rec.get("bias"),
                "fit_s": mean("fit_seconds"),
                "predict_s": mean("predict_seconds"),
                "peak_rss_mib": res.get("peak_rss_mib"),
                "ray_worker_peak_mib": res.get("worker_peak_mib"),
                "wall_s": res.get("wall_seconds"),
                "train_steps": mean("steps"),
                "train_windows_per_s": mean("train_windows_per_s"),
                "train_gflops": mean("train_gflops"),
                "paths_per_s": mean("paths_per_s"),
            }
        )
    for model, res in results.items():
        if res["status"] != "ok":
            rows.append({"dataset": ds.key, "model": model, "status": "failed", "reason": res["reason"]})
    return rows


def failures(rows: list[dict[str, Any]]) -> list[str]:
    """``dataset/model`` of every row whose model failed."""
    return [f"{r['dataset']}/{r['model']}" for r in rows if r.get("status") == "failed"]


def raise_failures(rows: list[dict[str, Any]]) -> None:
    """Raise naming the failed models (after the tables are written)."""
    failed = failures(rows)
    if failed:
        raise InventoryScaleError(f"bench: {len(failed)} model run(s) failed: {', '.join(failed[:5])}")


def measure_hardware(shape: Any, threads: int, seconds: float, work: Path) -> dict[str, Any]:
    """:func:`.hardware.lstm_efficiency` in a child process with the models' environment."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "hardware.json"
    args = json.dumps({"shape": dataclasses.asdict(shape), "threads": threads, "seconds": seconds})
    cmd = [sys.executable, "-m", "inventory_scale.bench.hardware", args, str(out)]
    proc = subprocess.run(cmd, env=child_env(threads), capture_output=True, text=True)
    if proc.returncode != 0:
        raise InventoryScaleError(f"bench: hardware measurement failed: {proc.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def run_bench(cfg: Config) -> dict[str, Any]:
    """``inventory-scale bench``: hardware figures, then every model on every dataset; write tables.

    Returns:
        Summary with the output folder, the table paths and per row the headline figures.

    Raises:
        ConfigError: a peer's library is missing (with ``bench.require_peers``) or the output is remote.
        InventoryScaleError: a model failed (after the tables are written, naming it).
    """
    from inventory_scale.bench.hardware import LSTMShape
    from inventory_scale.bench.table import build_results, markdown, provenance, write_tables

    bench = cfg.bench
    models = check_models(list(bench.models), bench.require_peers)
    threads = bench.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    out = bench.out_dir or io.join(cfg.run.dir, "bench")
    if io.is_remote(out):
        raise ConfigError(
            f"config key 'bench.out_dir' must be a local folder (child processes write there), got {out}"
        )
    prov = provenance()
    hardware = None
    if bench.hardware:
        first = apply_overrides(
            dataclasses.replace(cfg, data=dataset_config(cfg, bench.datasets[0])), bench.datasets[0].ours
        )
        shape = LSTMShape(
            hidden_size=first.model.hidden_size,
            num_layers=first.model.num_layers,
            context_length=first.data.context_length,
            horizon=first.data.horizon,
            batch_size=first.model.batch_size,
            num_paths=min(100, first.forecast.num_paths),
        )
        hardware = measure_hardware(shape, threads, bench.hardware_seconds, Path(out) / "work")
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for ds in bench.datasets:
        rows += bench_dataset(cfg, ds, models, Path(out) / "work", threads)
    results = build_results(rows, prov)
    paths = write_tables(results, hardware, out)
    log.info(
        "bench: %d rows in %.0fs -> %s\n%s",
        results.height,
        time.perf_counter() - t0,
        out,
        markdown(results, hardware),
    )
    raise_failures(rows)
    headline = ["dataset", "model", "rmsse", "wrmsse", "crps", "fit_s", "predict_s", "peak_rss_mib"]
    return {
        "stage": "bench",
        "output": out,
        **paths,
        "seconds": round(time.perf_counter() - t0, 1),
        "rows": results.select(headline).to_dicts(),
    }
