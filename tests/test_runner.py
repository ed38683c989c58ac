"""The runner: results per item, application errors vs system failures, retries, backpressure, threads.

One embedded Ray (127.0.0.1) serves the module; the same functions also run in-process.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray.cloudpickle

from inventory_scale.config import RayConfig
from inventory_scale.distributed.progress import Progress
from inventory_scale.distributed.runner import ray_session, run_tasks, summarize
from inventory_scale.errors import DataQualityError

pytestmark = pytest.mark.ray
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/

RAY = RayConfig(num_cpus=2, max_retries=2)
_POLARS_ENV = os.environ.get("POLARS_MAX_THREADS")  # as the test session found it
INPROCESS = RayConfig(mode="inprocess")


def square(item: int, shared: dict[str, Any]) -> dict[str, Any]:
    """ok for most items, a data error for item 3, a skip for item 4."""
    import polars as pl
    import torch

    if item == 3:
        raise DataQualityError(f"shard {item}: 2 negative units in sales.parquet column units_sold")
    if item == 4:
        return {"status": "skipped"}
    return {
        "value": item * item * shared["k"],
        "threads": torch.get_num_threads(),
        "polars_threads": pl.thread_pool_size(),
    }


def buggy(item: int, shared: Any) -> dict[str, Any]:
    raise ValueError(f"bug on {item}")


def timed(item: int, shared: Any) -> dict[str, Any]:
    t0 = time.time()
    time.sleep(0.3)
    return {"start": t0, "end": time.time()}


def crash_once(item: int, shared: str) -> dict[str, Any]:
    """Kill the worker process on the first attempt (a system failure), succeed on the retry."""
    marker = Path(shared) / f"attempted-{item}"
    if item == 1 and not marker.exists():
        marker.write_text("1")
        os._exit(1)
    return {"value": item}


def crash_always(item: int, shared: Any) -> dict[str, Any]:
    os._exit(1)


@pytest.fixture(scope="module")
def ray_up() -> Iterator[None]:
    with ray_session(RAY):
        yield


def test_results_statuses_and_application_errors_not_retried(ray_up: None) -> None:
    res = run_tasks(
        square, list(range(6)), ray_cfg=RAY, stage="sq", shared={"k": 10}, label=lambda i: f"item {i}"
    )
    assert [r["task"] for r in res] == [f"item {i}" for i in range(6)]
    assert [r["status"] for r in res] == ["ok", "ok", "ok", "failed", "skipped", "ok"]
    assert [r.get("value") for r in res] == [0, 10, 40, None, None, 250]
    assert res[3]["reason"].startswith("DataQualityError: shard 3: 2 negative units")
    assert all(r["attempts"] == 1 for r in res)  # the data error ran once
    assert {r["threads"] for r in res if r["status"] == "ok"} == {1}  # torch threads = num_cpus
    # Polars' pool in the workers = CPUs per task; the driver's environment is given back
    assert {r["polars_threads"] for r in res if r["status"] == "ok"} == {1}
    assert os.environ.get("POLARS_MAX_THREADS") == _POLARS_ENV
    counts = summarize(res)
    assert counts["tasks_ok"] == 4 and counts["tasks_failed"] == 1 and counts["tasks_skipped"] == 1
    assert counts["failed"] == ["item 3"] and counts["tasks_retried"] == 0


def test_inprocess_matches_ray(ray_up: None) -> None:
    keys = ("task", "status", "value", "attempts")
    ray_res = run_tasks(square, list(range(6)), ray_cfg=RAY, stage="sq", shared={"k": 2})
    local = run_tasks(square, list(range(6)), ray_cfg=INPROCESS, stage="sq", shared={"k": 2})
    assert [{k: r.get(k) for k in keys} for r in local] == [{k: r.get(k) for k in keys} for r in ray_res]


def test_unexpected_exception_is_reported_once_with_its_type(ray_up: None) -> None:
    res = run_tasks(buggy, [7, 8], ray_cfg=RAY, stage="bug")
    assert [r["status"] for r in res] == ["failed", "failed"]
    assert res[0]["reason"].startswith("ValueError: bug on 7") and res[1]["attempts"] == 1


def test_backpressure_keeps_one_task_in_flight(ray_up: None) -> None:
    cfg = RayConfig(num_cpus=2, max_in_flight=1)
    res = run_tasks(timed, list(range(4)), ray_cfg=cfg, stage="bp")
    spans = sorted((r["start"], r["end"]) for r in res)
    assert all(b[0] >= a[1] for a, b in itertools.pairwise(spans))  # never overlapping


def test_worker_crash_is_retried_and_counted(ray_up: None, tmp_path: Path) -> None:
    res = run_tasks(crash_once, [0, 1, 2], ray_cfg=RAY, stage="crash", shared=str(tmp_path))
    assert [r["status"] for r in res] == ["ok", "ok", "ok"]
    assert [r["attempts"] for r in res] == [1, 2, 1]
    assert summarize(res)["retried"] == ["crash 1"]


def test_system_failure_after_retries_is_reported_failed(ray_up: None) -> None:
    cfg = RayConfig(num_cpus=2, max_retries=1)
    res = run_tasks(crash_always, [0], ray_cfg=cfg, stage="dead")
    assert res[0]["status"] == "failed" and res[0]["reason"].startswith("system failure")
    assert res[0]["attempts"] == 2  # the first run and one retry both started


def test_progress_logs_plain_lines_without_a_tty(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="inventory_scale.distributed.runner")
    with Progress("train", 3, interval_s=0.0, rich=False) as p:
        for status in ("ok", "failed", "ok"):
            p.update(status)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.rsplit(" eta ", 1)[0] for line in lines] == [
        "train: 1/3 tasks done, 0 failed,",
        "train: 2/3 tasks done, 1 failed,",
    ]  # the last task is reported by the stage summary, not the progress
