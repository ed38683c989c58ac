"""train -> forecast -> backtest stages on a tiny synthetic marketplace (tiny network, CPU)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.cli import load_config, main
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.forecast import list_series, load_shard
from inventory_scale.manifest import read_manifest

TINY = [
    "data.n_skus=12",
    "data.n_warehouses=2",
    "data.days=150",
    "data.horizon=7",
    "data.context_length=28",
    "model.hidden_size=8",
    "model.num_layers=1",
    "model.batch_size=32",
    "trainer.max_epochs=1",
    "trainer.steps_per_epoch=3",
    "forecast.num_paths=30",
    "forecast.quantiles=[0.05,0.1,0.5,0.9,0.95]",
    "ray.shard_size=10",
    "seed=11",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, list[str]]:
    base = tmp_path_factory.mktemp("fc")
    args = [*TINY, f"data.root={base / 'data'}", f"run.dir={base / 'run'}"]
    assert main(["generate", *args]) == 0
    assert main(["train", *args]) == 0
    assert main(["forecast", *args]) == 0
    return load_config(args), args


def test_training_writes_one_checkpoint_per_shard(run: tuple[Config, list[str]]) -> None:
    cfg, _ = run
    shards = io.read_table(cfg.run.dir, S.SHARDS)
    assert shards.height == 24 and shards[S.SHARD].n_unique() == 3  # 24 series / shard_size 10
    assert shards.group_by(S.SHARD).len()["len"].max() <= 10  # type: ignore[operator]
    manifest = read_manifest(io.join(cfg.run.dir, "models"))
    assert manifest is not None
    assert [s["status"] for s in manifest["shards"]] == ["ok"] * 3
    budget = cfg.trainer.max_epochs * cfg.trainer.steps_per_epoch
    for shard in manifest["shards"]:  # fit statistics travel with each shard's result
        assert 0 < shard["steps"] <= budget and shard["device"] == "cpu"
        # fit_seconds is rounded to 1 ms: on a tiny fast fit that alone moves the ratio by > 1%
        assert shard["windows_per_s"] == pytest.approx(
            shard["steps"] * cfg.model.batch_size / shard["fit_seconds"],
            rel=max(0.01, 0.0006 / shard["fit_seconds"]),
        )
    for sid in range(3):
        assert (Path(cfg.run.dir) / "models" / f"shard={sid:05d}" / "model.ckpt").stat().st_size > 0


def test_forecast_frame_values(run: tuple[Config, list[str]]) -> None:
    cfg, _ = run
    fc = io.read_table(
        cfg.run.dir, S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    )
    assert fc.height == 24 * 7
    assert fc[S.STEP].min() == 1 and fc[S.STEP].max() == 7
    last = io.scan_table(cfg.data.root, S.SALES).select(pl.col(S.DATE).max()).collect().item()
    assert (fc[S.CUTOFF] == last).all()
    assert fc.filter(pl.col(S.STEP) == 1)[S.DS].to_list() == [last + dt.timedelta(days=1)] * 24
    qcols = [S.quantile_column(q) for q in cfg.forecast.quantiles]
    q = fc.select(qcols).to_numpy()
    assert (np.diff(q, axis=1) >= 0).all() and (q >= 0).all()  # monotone, non-negative
    pcols = [S.protection_quantile_column(p) for p in cfg.forecast.protection_quantiles]
    assert (np.diff(fc.select(pcols).to_numpy(), axis=1) >= 0).all()
    # pi_mean is the mean of per-path sums = the sum of the step means over the interval
    per = fc.sort(S.SKU_ID, S.WAREHOUSE_ID, S.STEP).group_by(S.SKU_ID, S.WAREHOUSE_ID, maintain_order=True)
    check = per.agg(
        pl.col(S.MEAN).filter(pl.col(S.STEP) <= pl.col(S.PI_STEPS)).sum().alias("sum_means"),
        pl.col(S.PI_MEAN).first(),
    )
    np.testing.assert_allclose(check["sum_means"], check[S.PI_MEAN], rtol=1e-4, atol=1e-3)


def test_rerun_skips_finished_shards_and_forecast_is_deterministic(run: tuple[Config, list[str]]) -> None:
    cfg, args = run
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    before = io.read_table(cfg.run.dir, spec).sort(spec.key)
    assert main(["train", *args]) == 0
    manifest = read_manifest(io.join(cfg.run.dir, "models"))
    assert manifest is not None and [s["status"] for s in manifest["shards"]] == ["skipped"] * 3
    assert main(["forecast", *args]) == 0
    assert io.read_table(cfg.run.dir, spec).sort(spec.key).equals(before)


def test_shard_reads_nothing_after_the_cutoff(run: tuple[Config, list[str]]) -> None:
    cfg, _ = run
    cutoff = dt.date(2024, 4, 1)
    series = list_series(cfg.data.root, cutoff)
    data = load_shard(cfg.data.root, series.head(5), cutoff)
    assert data.sales[S.DATE].max() <= cutoff  # type: ignore[operator]
    assert data.sales.select(S.SKU_ID, S.WAREHOUSE_ID).unique().height <= 5


def test_backtest_scores_every_model_and_the_oracle(
    run: tuple[Config, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, args = run
    capsys.readouterr()
    out = tmp_path / "bt"
    assert (
        main(
            [
                "backtest",
                *args,
                f"run.dir={out}",
                "backtest.cutoffs=2",
                "backtest.step=7",
                "ray.shard_size=all",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["cutoffs"] == ["2024-05-15", "2024-05-22"]  # last date 2024-05-29, H = 7, step 7
    metrics = io.read_table(str(out / "backtest"), S.BACKTEST_METRICS)
    assert set(metrics[S.MODEL].unique()) == {"lstm", "seasonal_naive", "seasonal_ma", "oracle"}
    assert set(metrics[S.CUTOFF].unique().to_list()) == {dt.date(2024, 5, 15), dt.date(2024, 5, 22)}
    overall = metrics.filter((pl.col(S.GROUP) == "all") & (pl.col(S.METRIC) == S.MASE))
    assert overall.height == 8 and overall[S.VALUE].is_finite().all()
    # the oracle knows the demand mean: no model beats it on average
    by_model = overall.group_by(S.MODEL).agg(pl.col(S.VALUE).mean())
    oracle = by_model.filter(pl.col(S.MODEL) == "oracle")[S.VALUE].item()
    assert oracle <= by_model[S.VALUE].min() + 1e-9  # type: ignore[operator]


def test_last_year_covariates_follow_the_history_rule(run: tuple[Config, list[str]], tmp_path: Path) -> None:
    from inventory_scale.data.last_year import LAST_YEAR_FEATURES
    from inventory_scale.forecast import forecast_shard, module_uses_last_year, train_shard

    _, args = run
    cutoff = dt.date(2024, 5, 1)
    for years, expected in ((1.0, False), (0.0, True)):  # 150 days of history: < 1 year + H
        cfg = load_config([*args, f"model.last_year_min_years={years}"])
        data = load_shard(cfg.data.root, list_series(cfg.data.root, cutoff).head(6), cutoff)
        module, _, _ = train_shard(data, cfg, cutoff=cutoff, shard_id=0, ckpt_dir=str(tmp_path / str(years)))
        assert module_uses_last_year(module) is expected
        names = (module.scaler_state or {})["feature_names"]
        assert (names[-2:] == list(LAST_YEAR_FEATURES)) is expected
        assert module.net.config.num_time_features == len(names)
        frame, paths = forecast_shard(module, data, cfg, cutoff=cutoff, shard_id=0)
        assert paths.shape == (6, cfg.forecast.num_paths, cfg.data.horizon) and np.isfinite(paths).all()
        assert frame.height == 6 * cfg.data.horizon


def test_named_event_features_travel_in_the_checkpoint(run: tuple[Config, list[str]], tmp_path: Path) -> None:
    from inventory_scale.data.features import event_names, named_event_features, time_features
    from inventory_scale.data.listing import OFFSET
    from inventory_scale.forecast import forecast_shard, module_events, module_uses_last_year, train_shard
    from inventory_scale.forecast_cold import pack_launch

    _, args = run
    cutoff = dt.date(2024, 5, 1)
    cfg = load_config([*args, "model.named_events=true"])
    data = load_shard(cfg.data.root, list_series(cfg.data.root, cutoff).head(6), cutoff)
    events = event_names(data.calendar)
    assert len(events) >= 3  # the generator's calendar: shopping events, holidays, ...
    module, _, _ = train_shard(data, cfg, cutoff=cutoff, shard_id=0, ckpt_dir=str(tmp_path))
    names = (module.scaler_state or {})["feature_names"]
    base = len(time_features(cfg.data.freq))
    assert names[base : base + 2 * len(events)] == list(named_event_features(events))
    assert module_events(module) == events and module.net.config.num_time_features == len(names)
    # forecasting follows the checkpoint, whatever the config says
    plain = load_config(args)
    frame, paths = forecast_shard(module, data, plain, cutoff=cutoff, shard_id=0)
    assert paths.shape == (6, cfg.forecast.num_paths, cfg.data.horizon) and np.isfinite(paths).all()
    assert frame.height == 6 * cfg.data.horizon
    # cold-start packs carry the same features (new SKUs are forecast by this module)
    cold = data.series.head(2).with_columns(pl.lit(1).alias(OFFSET))
    vocab = (module.scaler_state or {})["vocab"]
    packed = pack_launch(
        cold, data, plain, cutoff, vocab, False, module_uses_last_year(module), events=events
    )
    assert list(packed.feature_names) == names and packed.time_feat.shape[1] == base + 2 * len(events)


def test_subcategory_and_group_last_year_travel_in_the_checkpoint(
    run: tuple[Config, list[str]], tmp_path: Path
) -> None:
    from inventory_scale.data.last_year import GROUP_LAST_YEAR_FEATURES
    from inventory_scale.forecast import forecast_shard, module_uses_group, train_shard
    from inventory_scale.models.module import load_forecaster

    _, args = run
    cutoff = dt.date(2024, 5, 1)
    group = ["model.last_year_group=true", "model.last_year_min_years=0"]
    cfg = load_config([*args, "model.subcategory=true", *group])
    data = load_shard(cfg.data.root, list_series(cfg.data.root, cutoff).head(6), cutoff)
    module, ckpt, _ = train_shard(data, cfg, cutoff=cutoff, shard_id=0, ckpt_dir=str(tmp_path))
    vocab = (module.scaler_state or {})["vocab"]
    subs = sorted(data.products.join(data.series, on=S.SKU_ID, how="semi")[S.SUBCATEGORY].unique().to_list())
    assert vocab[S.SUBCATEGORY] == ["<unknown>", *subs]
    assert module.net.config.cardinalities[-1] == len(subs) + 1 and len(module.net.config.cardinalities) == 4
    assert module_uses_group(module)
    assert (module.scaler_state or {})["feature_names"][-2:] == list(GROUP_LAST_YEAR_FEATURES)
    frame, paths = forecast_shard(module, data, cfg, cutoff=cutoff, shard_id=0)
    # the forecast config need not say it: the checkpoint's vocabulary does
    plain = load_config(args)
    again, paths_again = forecast_shard(load_forecaster(ckpt), data, plain, cutoff=cutoff, shard_id=0)
    np.testing.assert_array_equal(paths, paths_again)
    assert frame.equals(again)
