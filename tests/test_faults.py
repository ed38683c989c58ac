"""Faults and resume: a corrupt shard, a driver killed mid-run, a worker node lost mid-run.

Each test is bounded: subprocesses and waits have timeouts; Ray is bound to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import TINY, TINY_SERIES

from inventory_scale import schema as S
from inventory_scale.cli import load_config, main
from inventory_scale.data import io
from inventory_scale.distributed.sharding import assign_shards, prepare_sales, shard_slice_uri
from inventory_scale.forecast import last_sales_date, list_series
from inventory_scale.manifest import read_manifest

pytestmark = pytest.mark.ray

CLI = str(Path(sys.executable).parent / "inventory-scale")


def _forecasts(run: Path) -> pl.DataFrame:
    cfg = load_config([*TINY, f"run.dir={run}"])
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    return io.read_table(str(run), spec).sort(spec.key)


def _checkpoints(run: Path) -> list[Path]:
    return sorted((run / "models").glob("shard=*/model.ckpt"))


def test_corrupt_shard_fails_with_reason_others_complete(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = [*TINY, f"data.root={tiny_data}", f"run.dir={run}", "ray.shard_size=8"]  # 3 shards
    cutoff = last_sales_date(str(tiny_data))
    shards = assign_shards(list_series(str(tiny_data), cutoff), "8")
    prepare_sales(str(tiny_data), shards, cutoff, str(run))  # the stage reuses this prepared copy
    bad = Path(shard_slice_uri(str(run), 1))
    for part in bad.glob("*.parquet"):
        part.write_bytes(b"PAR1 this is not parquet")

    assert main(["train", *args]) == 1
    err = capsys.readouterr().err
    assert "ShardError" in err and "1 of 3 shard(s) failed: 1 (SchemaError" in err and str(bad) in err
    manifest = read_manifest(str(run / "models"))
    assert manifest is not None
    assert [s["status"] for s in manifest["shards"]] == ["ok", "failed", "ok"]
    assert manifest["shards"][1]["attempts"] == 1  # a data error is not retried
    assert str(bad) in manifest["shards"][1]["reason"]
    assert [p.parent.name for p in _checkpoints(run)] == ["shard=00000", "shard=00002"]


def test_raw_and_bucketed_layouts_and_inprocess_give_the_same_forecasts(
    tiny_data: Path, tmp_path: Path
) -> None:
    base = [*TINY, f"data.root={tiny_data}", "ray.shard_size=10", "ray.mode=inprocess"]
    frames = []
    for layout in ("raw", "bucketed"):
        run = tmp_path / layout
        args = [*base, f"run.dir={run}", f"ray.sales_layout={layout}"]
        assert main(["train", *args]) == 0
        assert main(["forecast", *args]) == 0
        frames.append(_forecasts(run))
    assert frames[0].height == TINY_SERIES * 7
    assert frames[0].equals(frames[1])
    assert not (tmp_path / "raw" / "prepared").exists() and (tmp_path / "bucketed" / "prepared").exists()


def _wait_for(predicate: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_driver_killed_mid_run_then_rerun_skips_finished_and_matches(tiny_data: Path, tmp_path: Path) -> None:
    # 6 shards, each long enough (40 steps) that the kill lands while most are unfinished
    base = [*TINY, f"data.root={tiny_data}", "ray.shard_size=4", "trainer.steps_per_epoch=40"]
    ref = tmp_path / "ref"
    assert main(["train", *base, f"run.dir={ref}", "ray.mode=inprocess"]) == 0
    assert main(["forecast", *base, f"run.dir={ref}", "ray.mode=inprocess"]) == 0

    run = tmp_path / "run"
    args = [*base, f"run.dir={run}", "ray.num_cpus=2"]
    log_path = tmp_path / "killed.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([CLI, "train", *args], stdout=log, stderr=log, start_new_session=True)
        try:
            assert _wait_for(lambda: len(_checkpoints(run)) >= 1, 180), log_path.read_text()[-3000:]
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its embedded Ray
            proc.wait(timeout=30)
    # a Ray worker outside the process group may still finish the shard it holds: count once the
    # checkpoints stop changing (bounded)
    killed_with, deadline = len(_checkpoints(run)), time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(2)
        now = len(_checkpoints(run))
        if now == killed_with:
            break
        killed_with = now
    assert 1 <= killed_with < 6
    assert read_manifest(str(run / "models")) is None  # unfinished: no stage manifest

    rerun = subprocess.run([CLI, "train", *args], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    found = re.search(r"train: skipping (\d+) finished task\(s\) of 6", rerun.stderr)
    assert found is not None and killed_with <= int(found.group(1)) < 6
    manifest = read_manifest(str(run / "models"))
    assert manifest is not None and manifest["shards_skipped"] == int(found.group(1))
    assert manifest["shards_ok"] == 6 - int(found.group(1))

    assert main(["forecast", *args, "ray.mode=inprocess"]) == 0
    got, want = _forecasts(run), _forecasts(ref)
    assert got.height == TINY_SERIES * 7 and got.select(S.SKU_ID, S.WAREHOUSE_ID, S.DS).is_unique().all()
    assert got.equals(want)
    assert (got[S.CUTOFF] == dt.date(2024, 5, 29)).all()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_worker_node_lost_mid_run_completes_once_and_counts_retries(tiny_data: Path, tmp_path: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster
    from ray.experimental.internal_kv import _internal_kv_list

    from inventory_scale.distributed.runner import KV_NAMESPACE
    from inventory_scale.pipeline import run_forecast, run_train

    loopback = {"node_ip_address": "127.0.0.1"}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={**loopback, "num_cpus": 0, "dashboard_host": "127.0.0.1", "include_dashboard": False},
    )
    try:
        workers = [cluster.add_node(num_cpus=1, **loopback) for _ in range(3)]
        cluster.wait_for_nodes()
        ray.init(address=cluster.address)
        run = tmp_path / "run"
        cfg = load_config(
            [
                *TINY,
                f"data.root={tiny_data}",
                f"run.dir={run}",
                "ray=cluster",
                f"ray.address={cluster.address}",
                "ray.shard_size=4",  # 6 shards on 3 one-CPU worker nodes
                "ray.max_retries=3",
                "trainer.steps_per_epoch=40",
            ]
        )
        outcome: dict[str, object] = {}

        def train() -> None:
            try:
                outcome["summary"] = run_train(cfg)
            except BaseException as e:  # surfaced by the assertions below
                outcome["error"] = e

        thread = threading.Thread(target=train, daemon=True)
        thread.start()
        # every worker node is running a shard whose body has started (its attempt is counted)
        started = _wait_for(lambda: len(_internal_kv_list("train/", namespace=KV_NAMESPACE)) >= 3, 240)
        assert started and "error" not in outcome, outcome
        cluster.remove_node(workers[0], allow_graceful=False)
        thread.join(timeout=400)
        assert not thread.is_alive() and "error" not in outcome, outcome
        summary = outcome["summary"]
        assert isinstance(summary, dict)
        assert summary["shards_ok"] == 6 and summary["shards_failed"] == 0
        assert summary["shards_retried"] >= 1  # the shard in flight on the lost node ran again
        manifest = read_manifest(str(run / "models"))
        assert manifest is not None and sum(s["attempts"] > 1 for s in manifest["shards"]) >= 1
        files = sorted(p.relative_to(run / "models").as_posix() for p in (run / "models").rglob("*"))
        assert [f for f in files if f.endswith("model.ckpt")] == [
            f"shard={i:05d}/model.ckpt" for i in range(6)
        ]  # exactly one checkpoint per shard, no temp files left
        assert not [f for f in files if "/.tmp-" in f]

        fc = run_forecast(cfg)
        assert fc["shards_ok"] == 6 and fc["rows"] == TINY_SERIES * 7
        got = _forecasts(run)
        assert got.height == TINY_SERIES * 7
        assert got.select(S.SKU_ID, S.WAREHOUSE_ID, S.DS).is_unique().all()  # no duplicate rows
    finally:
        ray.shutdown()
        cluster.shutdown()
