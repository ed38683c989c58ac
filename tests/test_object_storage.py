"""The smoke pipeline end to end on object storage (moto's S3 server on 127.0.0.1, DESIGN.md section 1).

``data.root`` and ``run.dir`` are both ``s3://...``; nothing is written to local disk but scratch
files that are gone at the end; the endpoint and the credentials (from config in one test, from
``AWS_*`` variables in the other) never show in logs, progress lines or manifests.

- ``test_smoke_pipeline_on_s3_credentials_from_config``: generate, then ``pipeline`` in-process
  (``ray.mode=inprocess``), credentials as ``storage.*`` config keys; forecasts equal those of the
  same run on local disk (~30 s).
- ``test_smoke_pipeline_on_s3_with_ray_subprocess``: the ``inventory-scale`` command in a clean
  working directory, embedded Ray (worker processes), credentials from the environment; Ray's own
  session logs are searched too (~30 s on 2 cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import polars as pl
import pytest
from conftest import S3_ACCESS_KEY, S3_SECRET, TINY, TINY_SERIES

from inventory_scale import schema as S
from inventory_scale.cli import load_config, main
from inventory_scale.data import io

CLI = str(Path(sys.executable).parent / "inventory-scale")
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")
OUTPUTS = ("validate", "models", "forecasts", "plans", "backtest")


def _leaks(text: str, endpoint: str) -> list[str]:
    """Which secrets (access key, secret key, endpoint host:port) occur in ``text``."""
    host = endpoint.split("://", 1)[1]
    return [
        name
        for name, s in (("access key", S3_ACCESS_KEY), ("secret", S3_SECRET), ("endpoint", host))
        if s in text
    ]


def _local_files(folder: Path) -> list[Path]:
    """Files a run left under a local folder, torch's compile cache (``torchinductor_<user>``) aside."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    return [p for p in files if "torchinductor_" not in str(p.relative_to(folder))]


def _object_texts(root: str, opts: io.StorageOptions) -> dict[str, str]:
    """Every JSON object (manifests, plans, markers, reports) under ``root``, as text."""
    prefix = "s3://"
    return {f.path: io.read_bytes(prefix + f.path, opts).decode() for f in io.list_files(root, opts, ".json")}


def _check_outputs(data: str, run: str, opts: io.StorageOptions, endpoint: str) -> pl.DataFrame:
    """Every stage output is on S3 with a manifest; forecasts are whole and sane; nothing leaks."""
    cfg = load_config(TINY)
    for out in OUTPUTS:
        assert io.exists(io.join(run, out, "manifest.json"), opts), out
    assert io.exists(io.join(data, "manifest.json"), opts)
    manifest = io.read_json(io.join(run, "models", "manifest.json"), opts)
    assert [s["status"] for s in manifest["shards"]] == ["ok"] * 3
    assert manifest["config"]["run"]["dir"] == run and manifest["config"]["data"]["root"] == data

    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    fc = io.read_table(run, spec, opts).sort(spec.key)
    assert fc.height == TINY_SERIES * 7 and fc.select(S.SKU_ID, S.WAREHOUSE_ID, S.DS).is_unique().all()
    q = [c for c in fc.columns if c.startswith("q0.")]
    assert (fc[S.MEAN] >= 0).all() and fc.select(pl.col(q[0]) <= pl.col(q[-1])).to_series().all()

    plans = io.read_table(run, S.PLANS, opts)
    assert plans.select(S.SKU_ID, S.WAREHOUSE_ID).unique().height == TINY_SERIES
    metrics = io.read_table(io.join(run, "backtest"), S.BACKTEST_METRICS, opts)
    assert {"lstm", "seasonal_naive"} <= set(metrics[S.MODEL].unique().to_list())
    assert io.read_json(io.join(run, "validate", "report.json"), opts)["ok"] is True

    texts = {**_object_texts(data, opts), **_object_texts(run, opts)}
    assert len(texts) >= len(OUTPUTS) + 1
    leaked = {path: _leaks(t, endpoint) for path, t in texts.items() if _leaks(t, endpoint)}
    assert not leaked, leaked
    redacted = json.loads(texts[f"{run[5:]}/models/manifest.json"])["config"]["storage"]
    assert redacted["secret_access_key"] in (None, "<redacted>")
    return fc


def test_smoke_pipeline_on_s3_credentials_from_config(
    s3_server: str,
    tiny_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for var in AWS_VARS:  # only the config carries the endpoint and credentials
        monkeypatch.delenv(var, raising=False)
    storage = [
        f"storage.endpoint_url={s3_server}",
        f"storage.access_key_id={S3_ACCESS_KEY}",
        f"storage.secret_access_key={S3_SECRET}",
        "storage.region=us-east-1",
    ]
    opts = io.StorageOptions(s3_server, S3_ACCESS_KEY, S3_SECRET, "us-east-1")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # checkpoints pass through here
    monkeypatch.chdir(scratch)
    prefix = f"s3://inv/{uuid.uuid4().hex[:8]}"
    data, run = f"{prefix}/data", f"{prefix}/run"
    args = [*TINY, *storage, f"data.root={data}", f"run.dir={run}", "ray.shard_size=10", "backtest.cutoffs=1"]

    assert main(["generate", *args]) == 0
    assert main(["pipeline", *args, "ray=inprocess"]) == 0
    logs = capfd.readouterr()
    assert "stage 'optimize'" in logs.err and "s3://inv/" in logs.err  # the logs are there ...
    assert _leaks(logs.out + logs.err, s3_server) == []  # ... without secrets
    assert _local_files(scratch) == []  # no local outputs, scratch files cleaned up

    fc = _check_outputs(data, run, opts, s3_server)
    local = tmp_path / "local"  # the same run on local disk gives the same forecasts
    local_args = [*TINY, f"data.root={tiny_data}", f"run.dir={local}", "ray.shard_size=10", "ray=inprocess"]
    assert main(["train", *local_args]) == 0 and main(["forecast", *local_args]) == 0
    cfg = load_config(TINY)
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    assert fc.equals(io.read_table(str(local), spec).sort(spec.key))


@pytest.mark.ray
@pytest.mark.timeout(420)
def test_smoke_pipeline_on_s3_with_ray_subprocess(s3_server: str, tmp_path: Path) -> None:
    cwd, scratch = tmp_path / "cwd", tmp_path / "scratch"
    cwd.mkdir()
    scratch.mkdir()
    ray_tmp = Path(tempfile.mkdtemp(prefix="isray-", dir="/tmp"))  # short: Ray's socket paths
    env = {**os.environ, "TMPDIR": str(scratch), "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    prefix = f"s3://inv/{uuid.uuid4().hex[:8]}"
    data, run = f"{prefix}/data", f"{prefix}/run"
    args = [*TINY, f"data.root={data}", f"run.dir={run}", "ray.shard_size=10", "backtest.cutoffs=1"]
    try:
        logs = ""
        for stage in ("generate", "pipeline"):
            proc = subprocess.run(
                [CLI, stage, *args, "ray.num_cpus=2"],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=360,
            )
            logs += proc.stdout + proc.stderr
            assert proc.returncode == 0, logs[-4000:]
        assert "ray: embedded instance on 127.0.0.1" in logs and logs.count("ray: embedded instance") == 1
        assert _leaks(logs, s3_server) == []
        ray_logs = [
            p for p in ray_tmp.rglob("*") if p.is_file() and p.suffix in (".log", ".out", ".err", ".json")
        ]
        assert ray_logs  # Ray's own session logs, searched too
        leaked = [str(p) for p in ray_logs if _leaks(p.read_text(errors="replace"), s3_server)]
        assert not leaked, leaked
        assert list(cwd.iterdir()) == [] and _local_files(scratch) == []
        _check_outputs(data, run, io.StorageOptions(), s3_server)
    finally:
        subprocess.run(["rm", "-rf", str(ray_tmp)], timeout=60, check=False)
