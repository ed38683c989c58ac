"""Seed ensembles (``model.ensemble``): member seeds, the mixture's paths, training and the stages."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import torch

from inventory_scale import schema as S
from inventory_scale.cli import load_config, main
from inventory_scale.data import io
from inventory_scale.distributed import outputs
from inventory_scale.distributed.tasks import merge_members
from inventory_scale.errors import ConfigError, SchemaError
from inventory_scale.forecast import forecast_shard, list_series, load_shard, train_ensemble, train_shard
from inventory_scale.manifest import read_manifest
from inventory_scale.models.ensemble import Ensemble, as_forecaster, member_seed, path_counts
from inventory_scale.models.lstm import LSTMConfig
from inventory_scale.models.module import ForecastModule, load_forecaster

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers:UserWarning",
    "ignore:.*number of training batches.*:UserWarning",
)

TINY = [
    "data.n_skus=8",
    "data.n_warehouses=2",
    "data.days=120",
    "data.horizon=7",
    "data.context_length=21",
    "model.hidden_size=8",
    "model.num_layers=1",
    "model.batch_size=16",
    "trainer.max_epochs=1",
    "trainer.steps_per_epoch=3",
    "forecast.num_paths=9",
    "ray.shard_size=all",
    "seed=5",
]


def _module(seed: int, horizon: int = 5, state: dict[str, object] | None = None) -> ForecastModule:
    torch.manual_seed(seed)
    cfg = LSTMConfig(3, [2], embedding_dim=3, hidden_size=8, num_layers=1, context_length=10, horizon=horizon)
    return ForecastModule(
        dataclasses.asdict(cfg), 1e-3, 0.0, 10, scaler_state=state or {"feature_names": ["a", "b", "c"]}
    ).eval()


def _batch(b: int, horizon: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "past_target": torch.poisson(torch.full((b, 10), 5.0), generator=g),
        "past_observed": torch.ones(b, 10),
        "past_time_feat": torch.randn(b, 10, 3, generator=g),
        "future_time_feat": torch.randn(b, horizon, 3, generator=g),
        "static_cat": torch.zeros(b, 1, dtype=torch.long),
    }


def test_member_seeds_and_path_split() -> None:
    assert member_seed(1234, 0) == 1234  # member 0 is the single model of ensemble=1
    seeds = [member_seed(1234, k) for k in range(5)]
    assert len(set(seeds)) == 5 and all(0 <= s < 2**31 for s in seeds)
    assert member_seed(1234, 3) == seeds[3]  # stable
    assert path_counts(200, 3) == [67, 67, 66]
    assert path_counts(9, 2) == [5, 4] and path_counts(4, 4) == [1, 1, 1, 1] and path_counts(7, 1) == [7]
    with pytest.raises(ValueError, match="3 members"):
        path_counts(2, 3)


def test_ensemble_draws_each_members_share_in_order() -> None:
    a, b = _module(1), _module(2)
    batch = _batch(4)
    ens = as_forecaster([a, b])
    assert isinstance(ens, Ensemble) and len(ens) == 2 and as_forecaster([a]) is a
    paths = ens.sample(batch, 5, generator=torch.Generator().manual_seed(7))
    assert paths.shape == (4, 5, 5)
    g = torch.Generator().manual_seed(7)  # the same generator, consumed member after member
    expected = torch.cat([a.sample(batch, 3, generator=g), b.sample(batch, 2, generator=g)], dim=1)
    assert torch.equal(paths, expected)
    # the members differ, so the mixture is not one member's paths
    assert not torch.equal(paths, a.sample(batch, 5, generator=torch.Generator().manual_seed(7)))
    assert ens.device == a.device and ens.net is a.net and ens.scaler_state == a.scaler_state


def test_members_of_different_runs_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"member 1 .*feature layout"):
        Ensemble([_module(1), _module(2, state={"feature_names": ["a", "b", "x"]})])
    with pytest.raises(SchemaError, match="member 1 forecasts 6 periods, member 0 5"):
        Ensemble([_module(1), _module(2, horizon=6)])


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match=r"model\.ensemble"):
        load_config(["model.ensemble=0"])
    with pytest.raises(ConfigError, match=r"forecast\.num_paths"):
        load_config(["model.ensemble=3", "forecast.num_paths=2"])


@pytest.fixture(scope="module")
def data_args(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    base = tmp_path_factory.mktemp("ens")
    args = [*TINY, f"data.root={base / 'data'}"]
    assert main(["generate", *args]) == 0
    return args


def test_train_ensemble_member0_is_the_single_model(data_args: list[str], tmp_path: Path) -> None:
    cfg = load_config([*data_args, "model.ensemble=3"])
    cutoff = dt.date(2024, 4, 10)
    data = load_shard(cfg.data.root, list_series(cfg.data.root, cutoff), cutoff)
    ens, ckpts, info = train_ensemble(data, cfg, cutoff=cutoff, shard_id=0, ckpt_dir=str(tmp_path / "e"))
    single, _, _ = train_shard(data, cfg, cutoff=cutoff, shard_id=0, ckpt_dir=str(tmp_path / "s"))
    assert isinstance(ens, Ensemble) and len(ckpts) == 3 and len({Path(c).parent for c in ckpts}) == 3
    states = [m.state_dict() for m in ens.members]
    for k, v in single.state_dict().items():
        torch.testing.assert_close(states[0][k], v, rtol=0, atol=0)  # same seed, same weights
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert any(not torch.equal(states[1][k], states[2][k]) for k in states[0])
    assert info["members"] == 3 and len(info["member_val_loss"]) == 3
    assert info["steps"] == sum([3, 3, 3])  # 1 epoch x 3 steps per member
    frame, paths = forecast_shard(ens, data, cfg, cutoff=cutoff, shard_id=0)
    n = data.series.height
    assert paths.shape == (n, 9, 7) and np.isfinite(paths).all() and frame.height == n * 7
    # the pooled paths are the members' shares drawn in turn: member 0's 3 paths come first
    three = dataclasses.replace(cfg, forecast=dataclasses.replace(cfg.forecast, num_paths=3))
    _, first = forecast_shard(ens.members[0], data, three, cutoff=cutoff, shard_id=0)
    np.testing.assert_array_equal(first, paths[:, :3])
    assert not np.array_equal(paths[:, 3:6], paths[:, :3])
    reloaded = as_forecaster([load_forecaster(c) for c in ckpts])
    _, again = forecast_shard(reloaded, data, cfg, cutoff=cutoff, shard_id=0)
    np.testing.assert_array_equal(again, paths)


def test_train_and_forecast_stages_keep_every_member(data_args: list[str], tmp_path: Path) -> None:
    base = [*data_args, "model.ensemble=2", f"run.dir={tmp_path / 'run'}"]
    args = [*base, "ray=inprocess"]  # the same task functions, without a Ray start per stage
    cfg = load_config(args)
    assert main(["train", *base]) == 0  # the members: two Ray tasks of one shard
    folder = tmp_path / "run" / "models" / "shard=00000"
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["member-01.ckpt", "model.ckpt"]
    manifest = read_manifest(io.join(cfg.run.dir, "models"))
    assert manifest is not None
    (shard,) = manifest["shards"]
    assert shard["status"] == "ok" and shard["members"] == 2 and len(shard["member_val_loss"]) == 2
    assert main(["forecast", *args]) == 0
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    fc = io.read_table(cfg.run.dir, spec).sort(spec.key)
    assert fc.height == 16 * 7
    # the stage forecasts the mixture of both checkpoints: the same rows as sampling them here
    cutoff = fc[S.CUTOFF][0]
    data = load_shard(cfg.data.root, list_series(cfg.data.root, cutoff), cutoff)
    ens = as_forecaster([load_forecaster(folder / "model.ckpt"), load_forecaster(folder / "member-01.ckpt")])
    direct, _ = forecast_shard(ens, data, cfg, cutoff=cutoff, shard_id=0)
    np.testing.assert_allclose(direct.sort(spec.key)[S.MEAN].to_numpy(), fc[S.MEAN].to_numpy(), rtol=1e-6)
    assert shard["member_status"] == ["ok", "ok"] and shard["steps"] == 6  # 2 members x 3 steps
    # each member is the model train_shard fits with that member's seed (what backtests train)
    solo, _, _ = train_shard(data, cfg, cutoff=cutoff, shard_id=0, ckpt_dir=str(tmp_path / "solo"), member=1)
    for k, v in solo.state_dict().items():
        torch.testing.assert_close(ens.members[1].state_dict()[k], v, rtol=0, atol=0)
    # a rerun skips the trained shard and reproduces the forecast
    assert main(["train", *args]) == 0
    manifest = read_manifest(io.join(cfg.run.dir, "models"))
    assert manifest is not None and manifest["shards"][0]["status"] == "skipped"
    assert main(["forecast", *args]) == 0
    assert io.read_table(cfg.run.dir, spec).sort(spec.key).equals(fc)
    # a lost member: the shard is not finished, only that member retrains, the forecast reruns
    (folder / "member-01.ckpt").unlink()
    assert outputs.finished_checkpoints(cfg.run.dir, None, 2) == {}
    assert set(outputs.finished_checkpoints(cfg.run.dir, None, 1)) == {0}
    assert main(["train", *args]) == 0
    manifest = read_manifest(io.join(cfg.run.dir, "models"))
    assert manifest is not None and manifest["shards"][0]["member_status"] == ["skipped", "ok"]
    assert manifest["shards"][0]["status"] == "ok"
    assert main(["forecast", *args]) == 0
    forecast_manifest = read_manifest(io.join(cfg.run.dir, spec.name))
    assert forecast_manifest is not None and forecast_manifest["shards"][0]["status"] == "ok"
    assert io.read_table(cfg.run.dir, spec).sort(spec.key).equals(fc)  # deterministic retraining


def test_merge_members_folds_one_result_per_shard() -> None:
    results = [
        {"shard": 0, "status": "ok", "val_loss": 1.5, "epochs": 3, "steps": 30, "seconds": 2.0},
        {"shard": 0, "member": 1, "status": "ok", "val_loss": 1.4, "epochs": 4, "steps": 40, "seconds": 3.0},
        {"shard": 1, "status": "skipped", "checkpoint": "x"},
        {"shard": 1, "member": 1, "status": "failed", "reason": "boom"},
        {"shard": 2, "status": "ok", "val_loss": 2.0, "steps": 5, "seconds": 1.0},
    ]
    zero, one, two = merge_members(results)
    assert zero["status"] == "ok" and zero["members"] == 2 and zero["member_val_loss"] == [1.5, 1.4]
    assert zero["steps"] == 70 and zero["seconds"] == 5.0 and zero["member_epochs"] == [3, 4]
    assert "member" not in zero and zero["val_loss"] == 1.5  # member 0's own metrics stay
    assert one["status"] == "failed" and one["reason"] == "member 1: boom"
    assert one["member_status"] == ["skipped", "failed"]
    assert two == results[4]  # one member: unchanged
