"""inventory-scale bench: the tiny preset end to end, and the pieces it is made of."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.bench import peers
from inventory_scale.bench.child import lstm_flops_per_window
from inventory_scale.bench.harness import apply_overrides, check_models
from inventory_scale.bench.table import RATIO_OF, with_ratios
from inventory_scale.cli import load_config
from inventory_scale.config import Config
from inventory_scale.errors import ConfigError
from inventory_scale.pipeline import run_stage

QS = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


def test_levels_cover_every_quantile() -> None:
    assert peers.levels(QS) == [20.0, 40.0, 60.0, 80.0, 90.0]


def test_peer_output_becomes_the_forecast_frame() -> None:
    """lo/hi bounds land on the right quantiles, clipped at 0 and non-decreasing; steps 1..H."""
    days = pd.date_range("2025-01-02", periods=3, freq="D")
    out = pd.DataFrame({"unique_id": ["a/w1"] * 3, "ds": days, "M": [2.0, -1.0, 3.0]})
    for level in (20, 40, 60, 80, 90):
        out[f"M-lo-{level}"] = out["M"] - level / 10
        out[f"M-hi-{level}"] = out["M"] + level / 10
    keys = pl.DataFrame({S.UNIQUE_ID: ["a/w1"], S.SKU_ID: ["a"], S.WAREHOUSE_ID: ["w1"]})
    result = peers.PeerResult(out, "M", 1.0, 0.5)
    frame = peers.to_forecast_frame(result, keys, dt.date(2025, 1, 1), QS)
    assert frame[S.STEP].to_list() == [1, 2, 3]
    assert frame[S.MEAN].to_list() == [2.0, 0.0, 3.0]
    assert frame["q0.05"][0] == pytest.approx(0.0)  # 2 - 9 clipped
    assert frame["q0.95"][0] == pytest.approx(11.0)  # hi-90
    assert frame["q0.9"][2] == pytest.approx(11.0)  # hi-80: 3 + 8
    assert frame["q0.5"][2] == pytest.approx(3.0)  # no median column: the point forecast
    q = frame.select([S.quantile_column(v) for v in QS]).to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    point_only = peers.to_forecast_frame(
        peers.PeerResult(out[["unique_id", "ds", "M"]], "M", 1, 1), keys, dt.date(2025, 1, 1), QS
    )
    assert "q0.5" not in point_only.columns


def test_missing_peer_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(peers, "available", lambda name: name != "autoets")
    with pytest.raises(ConfigError, match=r"pip install -e '\.\[bench\]'"):
        check_models(["ours", "autoets", "seasonal_naive"], require=True)
    assert check_models(["ours", "autoets", "seasonal_naive"], require=False) == ["ours", "seasonal_naive"]


def test_overrides_coerce_and_validate() -> None:
    cfg = apply_overrides(
        Config(), {"model.hidden_size": 16, "ray.shard_size": 500, "trainer.gradient_clip_val": 1}
    )
    assert (cfg.model.hidden_size, cfg.ray.shard_size, cfg.trainer.gradient_clip_val) == (16, "500", 1.0)
    with pytest.raises(ConfigError, match=r"model\.nope"):
        apply_overrides(Config(), {"model.nope": 1})
    with pytest.raises(ConfigError, match=r"model\.hidden_size"):
        apply_overrides(Config(), {"model.hidden_size": -1})


def test_lstm_flops_formula() -> None:
    # one layer, D=10, H=4, 5 steps: 3 x 5 x 2 x 4H x (D + H) = 3 x 5 x 2 x 16 x 14
    assert lstm_flops_per_window(10, 4, 1, 5) == 3 * 5 * 2 * 16 * 14
    assert lstm_flops_per_window(10, 4, 2, 5) == 3 * 5 * 2 * 16 * (14 + 8)


def test_ratios_are_ours_over_each_row() -> None:
    frame = pl.DataFrame(
        {
            "dataset": ["d", "d", "e"],
            "model": ["ours", "peer", "peer"],
            **{c: [2.0, 4.0, 1.0] for c in RATIO_OF},
        }
    )
    out = with_ratios(frame)
    assert out["ratio_rmsse"].to_list() == [1.0, 0.5, None]  # no ours on dataset e


def _child_means(work: Path, dataset: str, model: str) -> dict[str, float]:
    result = json.loads((work / dataset / model / "result.json").read_text())
    cuts = result["cutoffs"]
    return {k: sum(c[k] for c in cuts) / len(cuts) for k in ("fit_seconds", "predict_seconds")}


def test_tiny_preset_table(tmp_path: Path) -> None:
    """The tiny preset runs every installed model; the table has one row per model (and the
    oracle), and every ratio is ours / that row, from figures this run measured."""
    cfg = load_config(["bench=tiny", f"paths.data_dir={tmp_path / 'data'}", f"run.dir={tmp_path / 'run'}"])
    expected = [m for m in cfg.bench.models if m == "ours" or peers.available(m)]
    assert "seasonal_naive" in expected, "statsforecast (bench extra) should be installed"
    summary = run_stage("bench", cfg)
    out = tmp_path / "run" / "bench"
    table = pl.read_parquet(out / "results.parquet")
    dataset = cfg.bench.datasets[0].key
    assert sorted(table["model"].to_list()) == sorted([*expected, "oracle"])
    assert (table["status"] == "ok").all() and (table["dataset"] == dataset).all()
    assert (
        table["n_series"].min() > 0
        and table["rmsse"].is_not_null().all()
        and table["wrmsse"].is_not_null().all()
    )
    for col in ("machine", "versions", "command", "git_revision", "created_utc"):
        assert table[col].n_unique() == 1 and table[col][0]
    assert "torch=" in table["versions"][0]

    ours = table.filter(pl.col("model") == "ours").row(0, named=True)
    work = out / "work"
    for row in table.iter_rows(named=True):
        if row["model"] == "oracle":
            assert row["fit_s"] is None and row["ratio_fit_s"] is None
            continue
        measured = _child_means(work, dataset, row["model"])  # written by this run's child process
        assert row["fit_s"] == pytest.approx(measured["fit_seconds"])
        assert row["predict_s"] == pytest.approx(measured["predict_seconds"])
        assert row["peak_rss_mib"] > 50  # a Python process with numpy at least
        for c in RATIO_OF:
            if row[c] is not None and ours[c] is not None:
                assert row[f"ratio_{c}"] == pytest.approx(ours[c] / row[c])
    assert ours["ratio_rmsse"] == pytest.approx(1.0)
    probabilistic = table.filter(pl.col("model").is_in(["ours", "seasonal_naive", "oracle"]))
    assert probabilistic["crps"].is_not_null().all() and probabilistic["coverage_90"].is_not_null().all()

    hw = pl.read_parquet(out / "hardware.parquet").row(0, named=True)
    assert hw["sgemm_peak_gflops"] > 0 and hw["train_windows_per_s"] > 0 and hw["paths_per_s"] > 0
    assert hw["train_peak_share"] == pytest.approx(hw["train_gflops"] / hw["sgemm_peak_gflops"])
    md = (out / "results.md").read_text()
    assert "## Ratios ours / model" in md and "sgemm peak" in md and "## Targets" in md
    assert {r["model"] for r in summary["rows"]} == set(table["model"].to_list())
