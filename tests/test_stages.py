"""Stages end to end through the CLI: generate -> validate -> pipeline, and a bad input's exit."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.cli import EXIT_ERROR, main
from inventory_scale.config import ForecastConfig
from inventory_scale.data import io
from inventory_scale.manifest import read_manifest


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mk")
    args = [
        "generate",
        f"data.root={root}",
        "data.n_skus=30",
        "data.n_warehouses=2",
        "data.days=120",
        "seed=5",
    ]
    assert main(args) == 0
    return root


def test_generate_writes_all_tables_and_manifest(generated: Path) -> None:
    for spec in (*S.INPUT_TABLES, S.TRUTH):
        assert io.table_files(str(generated), spec), spec.name
    manifest = read_manifest(str(generated))
    assert manifest is not None
    assert manifest["stage"] == "generate" and manifest["seed"] == 5
    assert manifest["rows"][S.SALES.name] == io.read_table(str(generated), S.SALES).height
    assert manifest["config"]["data"]["n_skus"] == 30


def test_validate_then_pipeline(generated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["validate", f"data.root={generated}", f"run.dir={run}"]) == 0
    report = json.loads((run / "validate" / "report.json").read_text())
    assert report["ok"] and report["series"] == 60 and report["frequency"] == "1d"
    assert read_manifest(str(run / "validate")) is not None
    capsys.readouterr()
    small = [
        "trainer.max_epochs=1",
        "trainer.steps_per_epoch=3",
        "model.batch_size=32",
        "model.hidden_size=16",
        "forecast.num_paths=20",
        "backtest.cutoffs=1",
        "ray.shard_size=all",
    ]
    assert main(["pipeline", f"data.root={generated}", f"run.dir={run}", *small]) == 0
    out = json.loads(capsys.readouterr().out)
    stages = [s["stage"] for s in out["stages"]]
    assert stages[:5] == ["validate", "train", "forecast", "optimize", "backtest"]
    defaults = ForecastConfig()
    forecast = io.read_table(str(run), S.forecast_spec(defaults.quantiles, defaults.protection_quantiles))
    assert forecast.select(S.SKU_ID, S.WAREHOUSE_ID).n_unique() == 60
    plans = io.read_table(str(run), S.PLANS)
    assert plans.height == 60 and plans.select(S.SKU_ID, S.WAREHOUSE_ID).n_unique() == 60
    assert (plans[S.ORDER_QTY] >= 0).all() and (plans[S.ORDER_QTY] > 0).any()
    assert (plans[S.ORDER_UP_TO] >= 0).all()
    assert plans[S.EXPECTED_FILL_RATE].is_between(0, 1).all()
    assert set(plans[S.BINDING_CONSTRAINT]) <= set(S.BINDING_VALUES)
    assert (plans[S.REASON].str.len_chars() > 0).all()
    policy = pl.read_parquet(run / "backtest" / "policy.parquet")
    assert set(policy[S.POLICY]) == {"newsvendor"}
    assert (policy.filter(pl.col(S.KPI) == S.FILL_RATE)[S.VALUE].is_between(0, 1)).all()


def test_bad_input_exits_nonzero_and_writes_nothing(
    generated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad"
    for spec in S.INPUT_TABLES:
        frame = io.read_table(str(generated), spec)
        if spec is S.SALES:
            frame = frame.with_columns(
                pl.when(pl.int_range(pl.len()) < 3)
                .then(-1.0)
                .otherwise(pl.col(S.UNITS_SOLD))
                .alias(S.UNITS_SOLD)
            )
        io.write_table(frame, str(bad), spec)
    run = tmp_path / "run"
    assert main(["validate", f"data.root={bad}", f"run.dir={run}"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "units_sold" in err and "3 rows" in err and "sales" in err
    assert not run.exists()
