"""`make cluster-up` -> `make submit` (a small pipeline as a Ray job) -> outputs -> `make cluster-down`.

A head and two worker nodes started with `ray start` on 127.0.0.1; every listening socket of the
cluster must be on loopback, and `cluster-down` must leave none of its processes behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from conftest import TINY, TINY_SERIES

from inventory_scale import schema as S
from inventory_scale.cli import load_config
from inventory_scale.data import io
from inventory_scale.distributed.cluster import _cluster_pids
from inventory_scale.manifest import read_manifest

REPO = Path(__file__).resolve().parent.parent
LOOPBACK_HOSTS = {"127.0.0.1", "[::ffff:127.0.0.1]"}

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _make(state: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = ["make", "-C", str(REPO), "-o", ".venv/.setup-done", f"RAY_STATE={state}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _listening(pids: list[int]) -> list[str]:
    """Local addresses of the TCP sockets those processes listen on (via ss)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, timeout=30).stdout
    wanted = {f"pid={p}," for p in pids}
    return [line.split()[3] for line in out.splitlines() if any(w in line for w in wanted)]


@pytest.mark.timeout(600)
def test_cluster_up_submit_pipeline_down(tiny_data: Path, tmp_path: Path) -> None:
    state, run = tmp_path / "ray", tmp_path / "run"
    args = [*TINY, f"data.root={tiny_data}", f"run.dir={run}", "ray.shard_size=10", "backtest.cutoffs=1"]
    try:
        up = _make(state, "cluster-up", "WORKERS=2", timeout=240)
        assert up.returncode == 0, up.stderr[-3000:]
        info = json.loads((state / "cluster.json").read_text())
        assert (state / "address").read_text().strip() == info["dashboard"]
        assert info["dashboard"].startswith("http://127.0.0.1:") and info["gcs_address"].startswith(
            "127.0.0.1:"
        )
        if shutil.which("ss"):
            addrs = _listening(_cluster_pids(info["temp_dir"]))
            hosts = {a.rsplit(":", 1)[0] for a in addrs}
            assert addrs and hosts <= LOOPBACK_HOSTS, addrs  # loopback only (gRPC: IPv4-mapped)

        sub = _make(state, "submit", f"ARGS={' '.join(args)}", timeout=420)
        log = sub.stdout + sub.stderr
        assert sub.returncode == 0, log[-4000:]
        assert "succeeded" in log and "ray: connecting to 127.0.0.1:" in log
    finally:
        down = _make(state, "cluster-down", timeout=120)
    assert down.returncode == 0, down.stderr[-2000:]
    assert _cluster_pids(info["temp_dir"]) == [] and not (state / "cluster.json").exists()

    cfg = load_config([*args])
    models = read_manifest(str(run / "models"))
    assert models is not None and [s["status"] for s in models["shards"]] == ["ok"] * 3
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    fc = io.read_table(str(run), spec)
    assert fc.height == TINY_SERIES * 7 and fc.select(S.SKU_ID, S.WAREHOUSE_ID, S.DS).is_unique().all()
    metrics = io.read_table(str(run / "backtest"), S.BACKTEST_METRICS)
    assert metrics.filter(pl.col(S.GROUP) == "all")[S.MODEL].n_unique() >= 3
