"""Composition of the real conf/ tree: every group option and experiment composes; bad keys,
types and values fail at compose time with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory_scale.cli import conf_dir, load_config
from inventory_scale.config import Config, DataConfig
from inventory_scale.errors import ConfigError

CONF = conf_dir()
GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(CONF.iterdir())
    if group.is_dir()
    for option in sorted(group.glob("*.yaml"))
]


def test_defaults_compose_to_typed_config() -> None:
    cfg = load_config([])
    assert isinstance(cfg, Config) and isinstance(cfg.data, DataConfig)
    assert cfg.data.name == "synthetic" and cfg.data.horizon == 28
    assert Path(cfg.data.root).is_absolute() and cfg.data.root.endswith("datasets/synthetic")
    assert cfg.run.dir.endswith("outputs/synthetic")
    assert cfg.ray.address == "local"
    assert all(0 < q < 1 for q in cfg.forecast.quantiles)


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_group_option_composes(group: str, option: str) -> None:
    extra = ["data.root=/tmp/x"] if (group, option) == ("data", "parquet") else []
    cfg = load_config([f"{group}={option}", *extra])
    assert isinstance(cfg, Config)
    if group == "data":
        assert cfg.data.name == option


def test_group_options_exist_for_issue_groups() -> None:
    groups = {g for g, _ in GROUP_OPTIONS}
    assert {
        "data",
        "model",
        "trainer",
        "ray",
        "policy",
        "backtest",
        "sweep",
        "experiment",
        "debug",
        "paths",
    } <= groups
    data = {o for g, o in GROUP_OPTIONS if g == "data"}
    assert data == {"synthetic", "m5", "walmart_weekly", "store_item", "carparts", "parquet"}


def test_experiment_overlay_wins_and_both_spellings_work() -> None:
    a = load_config(["+experiment=smoke"])
    b = load_config(["experiment=smoke"])
    assert a == b
    assert a.seed == 7 and a.data.n_skus == 60 and a.run.dir.endswith("outputs/smoke")
    # command-line overrides beat the overlay
    c = load_config(["+experiment=smoke", "data.n_skus=10", "seed=3"])
    assert c.data.n_skus == 10 and c.seed == 3


def test_weekly_and_monthly_data_defaults() -> None:
    assert load_config(["data=walmart_weekly"]).data.freq == "1w"
    carparts = load_config(["data=carparts"]).data
    assert (carparts.freq, carparts.season_length, carparts.horizon) == ("1mo", 12, 6)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.horizon=-3", "data.horizon"),
        ("data.n_skus=0", "data.n_skus"),
        ("forecast.quantiles=[0.1,1.5]", "forecast.quantiles"),
        ("forecast.protection_quantiles=[0.0]", "forecast.protection_quantiles"),
        ("model.dropout=1.5", "model.dropout"),
        ("model.likelihood=gaussian", "model.likelihood"),
        ("ray.shard_size=lots", "ray.shard_size"),
        ("validate.mode=ignore", "validate.mode"),
        ("run.cutoff=2024-02-30", "run.cutoff"),
        ("data.freq=2d", "data.freq"),
        ("seed=-1", "seed"),
    ],
)
def test_bad_values_fail_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        load_config([override])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("model.hidden_size=big", "model.hidden_size"),
        ("data.days=1.5", "data.days"),
        ("trainer.deterministic=maybe", "trainer.deterministic"),
    ],
)
def test_wrong_types_fail_naming_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}'"):
        load_config([override])


@pytest.mark.parametrize("override", ["data.horizn=3", "model.hiden_size=3", "nonsense=1"])
def test_unknown_keys_fail_naming_the_key(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        load_config([override])


def test_unknown_group_option_is_named() -> None:
    with pytest.raises(ConfigError, match="data/nosuch"):
        load_config(["data=nosuch"])


def test_parquet_data_requires_root() -> None:
    with pytest.raises(ConfigError, match=r"data\.root"):
        load_config(["data=parquet"])


def test_s3_uris_are_kept_verbatim() -> None:
    cfg = load_config(["data.root=s3://bucket/ds", "run.dir=s3://bucket/runs/1"])
    assert cfg.data.root == "s3://bucket/ds" and cfg.run.dir == "s3://bucket/runs/1"
