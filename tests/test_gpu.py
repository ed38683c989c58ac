"""The GPU path: Lightning on CUDA inside Ray tasks that share one GPU by fractional ``num_gpus``.

Skipped where no CUDA device is present (CI). Verified on an H100 (see the issue #5 note).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY, TINY_SERIES

from inventory_scale import schema as S
from inventory_scale.cli import load_config, main
from inventory_scale.data import io
from inventory_scale.manifest import read_manifest

pytestmark = [
    pytest.mark.ray,
    pytest.mark.gpu,  # excluded from make test; run with make test-gpu on a GPU machine
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def test_shards_train_and_sample_on_cuda_with_fractional_gpus(tiny_data: Path, tmp_path: Path) -> None:
    args = [
        *TINY,
        f"data.root={tiny_data}",
        f"run.dir={tmp_path / 'run'}",
        "trainer=gpu",
        "trainer.max_epochs=1",
        "trainer.steps_per_epoch=3",
        "ray.shard_size=10",
        "ray.num_gpus_per_task=0.25",
    ]
    assert main(["train", *args]) == 0
    assert main(["forecast", *args]) == 0
    cfg = load_config(args)
    models = read_manifest(str(tmp_path / "run" / "models"))
    assert models is not None and len(models["shards"]) == 3
    assert all(s["status"] == "ok" and s["device"].startswith("cuda") for s in models["shards"])
    forecasts = read_manifest(str(tmp_path / "run" / "forecasts"))
    assert forecasts is not None
    assert all(s["device"].startswith("cuda") and s["paths_per_s"] > 0 for s in forecasts["shards"])
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    fc = io.read_table(cfg.run.dir, spec)
    assert fc.height == TINY_SERIES * cfg.data.horizon
    assert (fc[S.MEAN] >= 0).all() and fc[S.MEAN].is_finite().all()
