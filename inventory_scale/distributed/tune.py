"""Ray Tune for sweeps: OptunaSearch (TPE) + ASHA over a plain trial objective, resumable.

:func:`run_tune` takes a :class:`~inventory_scale.sweep.SweepPlan` (checked and planned without
Ray) and runs ``sweep.num_samples`` trials of :func:`~inventory_scale.sweep.run_trial`, at most
``sweep.max_concurrent`` at a time, each declaring ``sweep.cpus_per_trial`` CPUs and
``sweep.gpus_per_trial`` GPUs (torch threads follow the CPUs). Trials report after every epoch;
ASHA compares them on ``budget`` (epochs of training budget used) and stops the weak ones.

The experiment lives under ``<run.dir>/sweeps/<sweep.name>/tune`` (``storage_path``; a local
path or ``s3://`` through pyarrow's S3 filesystem with the ``storage`` options). When a restorable
experiment is there, it is continued with ``Tuner.restore``: finished trials are kept as they
are, unfinished ones start over, new ones are drawn until ``num_samples``.

Ray is started (``ray=local``, 127.0.0.1) or connected (``ray=cluster``) by
:func:`~inventory_scale.distributed.runner.ray_session`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from typing import TYPE_CHECKING, Any

from inventory_scale.data import io
from inventory_scale.distributed.runner import _set_threads, import_ray, ray_session
from inventory_scale.sweep_space import Param, default_point

if TYPE_CHECKING:
    from inventory_scale.sweep import SweepPlan

log = logging.getLogger(__name__)

EXPERIMENT = "tune"


def experiment_dir(storage: str) -> str:
    """The Tune experiment folder under a sweep's folder."""
    return io.join(storage, EXPERIMENT)


def _distribution(p: Param) -> Any:
    """A Tune search-space object for one parameter (int bounds inclusive)."""
    from ray import tune

    low, high = float(p.low or 0.0), float(p.high or 0.0)
    if p.kind == "choice":
        return tune.choice(list(p.values))
    if p.kind == "uniform":
        return tune.uniform(low, high)
    if p.kind == "loguniform":
        return tune.loguniform(low, high)
    if p.kind == "int":
        return tune.randint(int(low), int(high) + 1)
    return tune.lograndint(int(low), int(high) + 1)


def _trial(config: dict[str, Any], plan: SweepPlan, threads: int) -> None:
    """Tune function trainable: one trial of the plan, reporting through ``tune.report``."""
    from ray import tune

    from inventory_scale.distributed.tasks import _quiet_lightning
    from inventory_scale.sweep import run_trial

    _set_threads(threads)
    _quiet_lightning()
    run_trial(plan, dict(config), lambda metrics: tune.report(metrics))


def _dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _callback(metric: str) -> Any:
    from ray import tune

    class TrialLog(tune.Callback):
        """One log line per finished, stopped or failed trial."""

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            res = trial.last_result or {}
            state = "complete" if res.get("complete") else "stopped early"
            log.info(
                "sweep: trial %s %s: %s %.4f after %s epoch(s) of budget, %s",
                trial.trial_id,
                state,
                metric,
                float(res.get(metric, math.nan)),
                res.get("budget"),
                trial.config,
            )

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            log.error("sweep: trial %s failed: %s", trial.trial_id, trial.config)

    return TrialLog()


def _rows(grid: Any, metric: str, unfinished: set[str]) -> list[dict[str, Any]]:
    """One plain dict per trial of a ResultGrid (status, final and last metric, point, error)."""
    rows: list[dict[str, Any]] = []
    for res in grid:
        m = dict(res.metrics or {})
        trial_id = m.get("trial_id") or str(res.path).rstrip("/").rsplit("trial_", 1)[-1]
        if res.error is not None:
            status = "error"
        elif trial_id in unfinished:
            status = "interrupted"
        elif not m:
            status = "not run"
        else:
            status = "complete" if m.get("complete") else "stopped"
        last = m.get(metric)
        rows.append(
            {
                "trial_id": trial_id,
                "status": status,
                metric: float(last) if status == "complete" and last is not None else None,
                f"last_{metric}": float(last) if last is not None else None,
                "budget": m.get("budget"),
                "reports": m.get("training_iteration"),
                "seconds": m.get("time_total_s"),
                "error": None if res.error is None else f"{type(res.error).__name__}: {res.error}"[:500],
                "point": dict(res.config or {}),
            }
        )
    return rows


def run_tune(
    plan: SweepPlan, storage: str, opts: io.StorageOptions | None, restore: bool
) -> tuple[list[dict[str, Any]], bool]:
    """Run (or, with ``restore``, continue) the sweep's Tune experiment; one row per trial.

    Args:
        plan: the checked plan every trial shares.
        storage: the sweep folder (``<run.dir>/sweeps/<name>``), local or ``s3://``.
        opts: storage options for ``s3://``.
        restore: continue the experiment found under ``storage`` instead of starting one.

    Returns:
        ``(rows, interrupted)``: rows with ``trial_id``, ``status`` (complete / stopped / error /
        not run), the metric (final, complete trials only), ``last_<metric>``, ``budget``,
        ``reports``, ``seconds``, ``error`` and ``point`` (the trial's values of the searched
        keys); ``interrupted`` when the run was stopped (Ctrl-C) with trials unfinished.
    """
    cfg = plan.cfg
    with ray_session(cfg.ray):
        import_ray()
        import optuna
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search.optuna import OptunaSearch

        fs, fs_path = io._filesystem(storage, opts)
        storage_fs = fs if io.is_remote(storage) else None
        cpus, gpus = cfg.sweep.cpus_per_trial, cfg.sweep.gpus_per_trial
        trainable = tune.with_resources(
            tune.with_parameters(_trial, plan=plan, threads=max(1, int(cpus))), {"cpu": cpus, "gpu": gpus}
        )
        if restore:
            path = experiment_dir(fs_path if storage_fs is not None else storage)
            log.info("sweep %s: resuming the Tune experiment in %s", cfg.sweep.name, experiment_dir(storage))
            tuner = tune.Tuner.restore(
                path,
                trainable=trainable,
                resume_unfinished=True,
                restart_errored=True,
                storage_filesystem=storage_fs,
            )
        else:
            point = default_point(list(plan.params), cfg) if cfg.sweep.include_default else None
            searcher = OptunaSearch(
                sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                points_to_evaluate=[point] if point else None,
            )
            scheduler = ASHAScheduler(
                time_attr="budget",
                max_t=plan.max_budget,
                grace_period=cfg.sweep.grace_period,
                reduction_factor=cfg.sweep.reduction_factor,
            )
            tuner = tune.Tuner(
                trainable,
                param_space={p.key: _distribution(p) for p in plan.params},
                tune_config=tune.TuneConfig(
                    metric=plan.metric,
                    mode="min",
                    search_alg=searcher,
                    scheduler=scheduler,
                    num_samples=cfg.sweep.num_samples,
                    max_concurrent_trials=cfg.sweep.max_concurrent,
                    time_budget_s=cfg.sweep.time_budget_s,
                    trial_dirname_creator=_dirname,
                ),
                run_config=tune.RunConfig(
                    name=EXPERIMENT,
                    storage_path=fs_path if storage_fs is not None else storage,
                    storage_filesystem=storage_fs,
                    verbose=0,
                    callbacks=[_callback(plan.metric)],
                    failure_config=tune.FailureConfig(max_failures=0),
                ),
            )
        t0 = time.monotonic()
        with contextlib.redirect_stdout(sys.stderr):  # Tune's banners: stdout stays the summary JSON
            grid = tuner.fit()
        unfinished = unfinished_trials(storage, opts)
        budget = cfg.sweep.time_budget_s
        if unfinished and budget is not None and time.monotonic() - t0 >= budget:
            log.warning(
                "sweep %s: time budget of %.0fs reached with %d trial(s) unfinished (run the same "
                "command again to continue them)",
                cfg.sweep.name,
                budget,
                len(unfinished),
            )
            return _rows(grid, plan.metric, unfinished), False
        if unfinished:
            log.warning(
                "sweep %s: interrupted with %d unfinished trial(s); run the same command again to resume",
                cfg.sweep.name,
                len(unfinished),
            )
        return _rows(grid, plan.metric, unfinished), bool(unfinished)


def can_restore(storage: str, opts: io.StorageOptions | None) -> bool:
    """True when a restorable Tune experiment is under the sweep folder ``storage``."""
    return io.exists(io.join(storage, EXPERIMENT, "tuner.pkl"), opts)


def unfinished_trials(storage: str, opts: io.StorageOptions | None) -> set[str]:
    """Ids of the trials the last saved experiment state holds as not finished.

    After Ctrl-C Tune saves its state (trials still ``RUNNING`` or ``PENDING``) and then ends
    the run, marking every trial terminated in memory; the saved state tells the two apart.
    """
    files = [f.path for f in io.list_files(experiment_dir(storage), opts, suffix=".json")]
    states = sorted(f for f in files if f.rsplit("/", 1)[-1].startswith("experiment_state-"))
    if not states:
        return set()
    uri = states[-1] if not io.is_remote(storage) else f"{io.S3_SCHEME}{states[-1]}"
    state = json.loads(io.read_bytes(uri, opts))
    out: set[str] = set()
    for entry in state.get("trial_data", []):
        trial = entry[0] if isinstance(entry, list | tuple) else entry
        trial = json.loads(trial) if isinstance(trial, str) else trial
        if trial.get("status") not in ("TERMINATED", "ERROR"):
            out.add(str(trial.get("trial_id")))
    return out
