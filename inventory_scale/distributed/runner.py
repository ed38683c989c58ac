"""Fan plain per-item functions out as Ray tasks (or run them in-process), with results per item.

This module and ``tune.py`` are the only Ray importers. Stages hand :func:`run_tasks` a plain,
picklable, module-level function and a list of work items (a shard of series, a warehouse)::

    def train_one(item: ShardItem, shared: TrainShared) -> dict[str, Any]:
        ...  # read only this item's slice, write its outputs atomically
        return {"status": "ok", "series": 1800, "val_loss": 0.41}

    results = run_tasks(train_one, items, ray_cfg=cfg.ray, stage="train", shared=shared,
                        label=lambda it: f"shard {it.shard}")

What the runner does (DESIGN.md section 6):

- ``ray.mode=local`` (default): starts an embedded Ray with ``address="local"`` bound to
  127.0.0.1 (its dashboard too with ``ray.dashboard``), sized by ``ray.num_cpus`` (null = the
  machine), and shuts it down at the end of the call; ``ray.mode=cluster``: connects to
  ``ray.address`` or ``RAY_ADDRESS``. A Ray that is already initialised (tests, ``ray job
  submit`` drivers, a pipeline that wraps several stages in :func:`ray_session`) is reused and
  left running.
- ``ray.mode=inprocess``: the same wrapper runs each item sequentially in this process, no Ray
  (the baseline of the Ray-overhead benchmark, and the fastest way to debug a stage).
- One task per item with declared ``num_cpus`` / fractional ``num_gpus``; torch (and OpenMP)
  threads = ``num_cpus`` inside the task; at most ``ray.max_in_flight`` tasks in flight
  (``ray.wait`` backpressure, default 2 x cluster CPUs / num_cpus); ``shared`` goes to the object
  store once (``ray.put``) and every task gets the same reference.
- Application errors (:class:`~inventory_scale.errors.InventoryScaleError`) are caught inside the
  task and returned as ``status="failed"`` with the reason: reported once, never retried. Other
  exceptions in user code are reported failed the same way (``retry_exceptions=False``) with
  their type. System failures (worker crash, node loss) are retried up to ``ray.max_retries``
  times by Ray; a task that still fails is reported failed with the Ray error.
- Retries are counted honestly: each attempt that starts executing increments a per-item counter
  in Ray's GCS key-value store (on the head node, so it survives the loss of a worker node);
  ``attempts > 1`` in a result means Ray re-ran the task. An attempt killed before its body
  started (e.g. while fetching arguments) is not counted.

Every result dict carries ``task`` (the label), ``status`` (``ok`` / ``skipped`` / ``failed``),
``reason`` (when failed), ``seconds`` (inside the task), ``attempts`` and ``node`` on top of what
the function returned. :func:`summarize` counts them for a stage summary.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from inventory_scale.config import RayConfig
from inventory_scale.distributed.progress import Progress
from inventory_scale.errors import ConfigError, InventoryScaleError

log = logging.getLogger(__name__)

TaskFn = Callable[[Any, Any], dict[str, Any]]
Result = dict[str, Any]
STATUSES = ("ok", "skipped", "failed")
KV_NAMESPACE = "inventory_scale"


def run_tasks(
    fn: TaskFn,
    items: Sequence[Any],
    *,
    ray_cfg: RayConfig,
    stage: str,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    shared: Any = None,
    label: Callable[[Any], str] | None = None,
) -> list[Result]:
    """Run ``fn(item, shared)`` for every item, one task each; return one result per item, in order.

    Args:
        fn: a plain, picklable, module-level function ``(item, shared) -> dict``. It returns a
            dict with ``status`` (``"ok"`` when absent; ``"skipped"`` when its output already
            existed) and any metrics; it raises :class:`InventoryScaleError` for bad data.
            It must write its own outputs atomically and idempotently (a retried task overwrites).
        items: the work items (small, picklable: shard ids with their series keys, warehouse ids).
        ray_cfg: the ``ray`` config group (mode, address, num_cpus, max_retries, max_in_flight).
        stage: name used in task names, progress and logs (``"train"``, ``"optimize"``).
        num_cpus: CPUs per task (default ``ray_cfg.num_cpus_per_task``); torch threads follow it.
        num_gpus: GPUs per task, fractional allowed (default ``ray_cfg.num_gpus_per_task``).
        shared: read-only input every task needs (the config, a calendar); put in the object
            store once.
        label: ``item -> str`` naming an item in results and logs (default ``"<stage> <i>"``).

    Returns:
        ``len(items)`` result dicts in item order: ``fn``'s dict plus ``task``, ``status``,
        ``reason`` (failed only), ``seconds``, ``attempts``, ``node``.

    Raises:
        ConfigError: ``ray.mode=cluster`` without an address, or a Ray that cannot be reached.
    """
    cpus = float(ray_cfg.num_cpus_per_task if num_cpus is None else num_cpus)
    gpus = float(ray_cfg.num_gpus_per_task if num_gpus is None else num_gpus)
    labels = [label(it) if label is not None else f"{stage} {i}" for i, it in enumerate(items)]
    t0 = time.perf_counter()
    with Progress(stage, len(items)) as progress:
        if ray_cfg.mode == "inprocess":
            results = _run_inprocess(fn, items, labels, shared, cpus, progress)
        else:
            with ray_session(ray_cfg):
                results = _run_ray(fn, items, labels, shared, cpus, gpus, ray_cfg, stage, progress)
    counts = summarize(results)
    log.info(
        "%s: %d task(s) in %.1fs: %d ok, %d skipped, %d failed, %d retried",
        stage,
        len(results),
        time.perf_counter() - t0,
        counts["tasks_ok"],
        counts["tasks_skipped"],
        counts["tasks_failed"],
        counts["tasks_retried"],
    )
    return results


def summarize(results: Sequence[Result]) -> dict[str, Any]:
    """Counts for a stage summary: ok / skipped / failed / retried tasks and the names of each."""
    by = {s: [r for r in results if r["status"] == s] for s in STATUSES}
    retried = [r for r in results if int(r.get("attempts", 1)) > 1]
    return {
        "tasks": len(results),
        "tasks_ok": len(by["ok"]),
        "tasks_skipped": len(by["skipped"]),
        "tasks_failed": len(by["failed"]),
        "tasks_retried": len(retried),
        "failed": [r["task"] for r in by["failed"]],
        "retried": [r["task"] for r in retried],
    }


# -- inside a task (also the in-process path) ------------------------------------------------------


def _set_threads(n: int) -> None:
    """torch / OpenMP / MKL threads = the task's CPUs (env for a torch imported later)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)


def _mark_attempt(key: str | None) -> int:
    """Count this attempt in the GCS key-value store; returns the attempt number (1 = first)."""
    if key is None:
        return 1
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_put

    prev = _internal_kv_get(key, namespace=KV_NAMESPACE)
    n = int(prev or 0) + 1
    _internal_kv_put(key, str(n), overwrite=True, namespace=KV_NAMESPACE)
    return n


def _node() -> str:
    with contextlib.suppress(Exception):
        import ray

        if ray.is_initialized():
            return str(ray.get_runtime_context().get_node_id())[:12]
    return socket.gethostname()


def execute(fn: TaskFn, item: Any, shared: Any, threads: int, label: str, attempt_key: str | None) -> Result:
    """Run one item: count the attempt, set threads, time it, turn application errors into results."""
    attempt = _mark_attempt(attempt_key)
    _set_threads(threads)
    t0 = time.perf_counter()
    try:
        out = dict(fn(item, shared))
    except InventoryScaleError as e:
        log.error("%s failed: %s", label, e)
        out = {"status": "failed", "reason": f"{type(e).__name__}: {e}"}
    out.setdefault("status", "ok")
    out.setdefault("seconds", round(time.perf_counter() - t0, 3))
    out.update(task=label, attempts=attempt, node=_node())
    return out


# -- driver side ----------------------------------------------------------------------------------


def _run_inprocess(
    fn: TaskFn, items: Sequence[Any], labels: list[str], shared: Any, cpus: float, progress: Progress
) -> list[Result]:
    threads = max(1, int(cpus))
    saved_env = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    torch = sys.modules.get("torch")
    saved_threads = torch.get_num_threads() if torch is not None else None
    results: list[Result] = []
    try:
        for item, name in zip(items, labels, strict=True):
            try:
                res = _check(execute(fn, item, shared, threads, name, None), name)
            except Exception as e:  # same contract as a Ray task: unexpected errors fail the item
                log.exception("%s raised", name)
                res = _failed(name, f"{type(e).__name__}: {e}", 1)
            results.append(res)
            progress.update(res["status"])
    finally:  # this process is the caller's: give it its thread settings back
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(saved_threads or os.cpu_count() or 1)
    return results


def _check(res: Result, name: str) -> Result:
    if res.get("status") not in STATUSES:
        raise ValueError(f"{name}: task returned status {res.get('status')!r}, expected one of {STATUSES}")
    if res["status"] == "failed":
        res.setdefault("reason", "no reason given")
    return res


def _failed(name: str, reason: str, attempts: int) -> Result:
    return {"task": name, "status": "failed", "reason": reason, "attempts": attempts}


def _run_ray(
    fn: TaskFn,
    items: Sequence[Any],
    labels: list[str],
    shared: Any,
    cpus: float,
    gpus: float,
    ray_cfg: RayConfig,
    stage: str,
    progress: Progress,
) -> list[Result]:
    ray = import_ray()
    from ray.exceptions import RayError, RayTaskError
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get

    run_id = f"{stage}/{uuid.uuid4().hex[:12]}"
    remote = ray.remote(execute)
    shared_ref = ray.put(shared)
    limit = ray_cfg.max_in_flight or max(1, int(2 * ray.cluster_resources().get("CPU", 1) / cpus))
    results: list[Result | None] = [None] * len(items)
    pending: dict[Any, int] = {}
    next_i = 0
    try:
        while next_i < len(items) or pending:
            while next_i < len(items) and len(pending) < limit:
                ref = remote.options(
                    num_cpus=cpus,
                    num_gpus=gpus,
                    max_retries=ray_cfg.max_retries,
                    retry_exceptions=False,
                    name=f"{stage}:{labels[next_i]}",
                ).remote(
                    fn, items[next_i], shared_ref, max(1, int(cpus)), labels[next_i], f"{run_id}/{next_i}"
                )
                pending[ref] = next_i
                next_i += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                i = pending.pop(ref)
                try:
                    res = _check(ray.get(ref), labels[i])
                except RayTaskError as e:  # an exception in user code: reported once, not retried
                    cause = e.cause if e.cause is not None else e
                    log.error("%s raised %s", labels[i], e)
                    res = _failed(labels[i], f"{type(cause).__name__}: {cause}", 1)
                except RayError as e:  # system failure left after max_retries
                    log.error("%s: system failure after retries: %s", labels[i], e)
                    res = _failed(labels[i], f"system failure ({type(e).__name__}): {e}", 1)
                results[i] = res
                progress.update(res["status"])
    except BaseException:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        for i, done in enumerate(results):  # attempts as counted by the tasks themselves
            n = _internal_kv_get(f"{run_id}/{i}", namespace=KV_NAMESPACE)
            if done is not None and n is not None:
                done["attempts"] = int(n)
        with contextlib.suppress(Exception):
            _internal_kv_del(f"{run_id}/", del_by_prefix=True, namespace=KV_NAMESPACE)
    return [r for r in results if r is not None]


# -- Ray lifecycle --------------------------------------------------------------------------------


def import_ray(loopback: bool = False) -> Any:
    """Import Ray; with ``loopback``, set ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` first.

    Ray reads that variable once, at import: with it, "127.0.0.1" stays the node IP instead of
    being resolved to the machine's external interface (DESIGN.md section 6). It is right for the
    embedded instance and for clusters on this machine's loopback (``make cluster-up``), wrong for
    a driver on a real multi-node cluster, whose node IP must be its routable one.
    """
    if loopback:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    return ray


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]")


def _address(ray_cfg: RayConfig) -> str:
    addr = ray_cfg.address if ray_cfg.address not in (None, "", "local") else os.environ.get("RAY_ADDRESS")
    if not addr:
        raise ConfigError(
            "config key 'ray.address' must name the cluster (e.g. ray://head:10001 or 127.0.0.1:6379) "
            "when ray.mode=cluster, or set RAY_ADDRESS"
        )
    return addr


def init_ray(ray_cfg: RayConfig) -> bool:
    """Start or connect Ray for ``ray_cfg``; returns True when this call started it.

    Already initialised: reused (returns False). ``ray.mode=local``: a fresh embedded instance on
    127.0.0.1 (``address="local"``, never a stale cluster). ``ray.mode=cluster``: connect.
    """
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return False
    if ray_cfg.mode == "cluster":  # the job's runtime env (make submit) is left as it is
        addr = _address(ray_cfg)
        ray = import_ray(loopback=_is_loopback(addr))
        log.info("ray: connecting to %s", addr)
        ray.init(address=addr, logging_level=logging.WARNING)
        return True
    if ray_cfg.mode != "local":
        raise ConfigError(f"config key 'ray.mode' must be local, cluster or inprocess, got {ray_cfg.mode!r}")
    ray = import_ray(loopback=True)
    # workers inherit the environment of the raylet this driver starts: no runtime_env needed, so
    # Ray's prestarted workers serve the tasks (a runtime_env starts new ones, seconds each)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    t0 = time.perf_counter()
    with _worker_env({"POLARS_MAX_THREADS": str(max(1, int(ray_cfg.num_cpus_per_task)))}):
        ray.init(
            address="local",
            num_cpus=ray_cfg.num_cpus,
            _node_ip_address="127.0.0.1",
            dashboard_host="127.0.0.1",
            include_dashboard=ray_cfg.dashboard,
            logging_level=logging.WARNING,
        )
    log.info(
        "ray: embedded instance on 127.0.0.1 with %s CPU(s), %s GPU(s) in %.1fs",
        ray.cluster_resources().get("CPU", 0),
        ray.cluster_resources().get("GPU", 0),
        time.perf_counter() - t0,
    )
    return True


@contextlib.contextmanager
def _worker_env(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` (those the user has not set) while Ray starts, so the raylet and the workers
    it forks inherit them, and restore this process's environment after.

    ``POLARS_MAX_THREADS`` = CPUs per task: Polars sizes its thread pool once, at first use, to
    every core of the machine; two workers on two cores each with a 2-thread pool oversubscribe
    them (forecast stage ~10% slower at 4,000 series, ``benchmarks/bench_scale.py``). The driver's
    own pool (the prepare step) keeps every core.
    """
    added = [k for k in values if k not in os.environ]
    os.environ.update({k: values[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


@contextlib.contextmanager
def ray_session(ray_cfg: RayConfig) -> Iterator[None]:
    """Ray up for the block; shut down at the end only if this block started it."""
    if ray_cfg.mode == "inprocess":
        yield
        return
    started = init_ray(ray_cfg)
    ray = import_ray()
    try:
        yield
    finally:
        if started:
            ray.shutdown()
