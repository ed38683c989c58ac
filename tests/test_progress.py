"""Progress everywhere: epoch lines from every shard's fit (throttled), and a final summary table
per stage on stderr (stdout keeps the JSON summary)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import TINY

from inventory_scale import cli
from inventory_scale.cli import main
from inventory_scale.models.progress import EpochProgress


def _trainer(epoch: int, stop: bool = False) -> SimpleNamespace:
    metrics = {"train_loss": torch.tensor(1.25 - 0.1 * epoch), "val_loss": torch.tensor(1.5 - 0.1 * epoch)}
    return SimpleNamespace(
        sanity_checking=False, current_epoch=epoch, should_stop=stop, callback_metrics=metrics
    )


def test_epoch_lines_are_throttled_and_name_the_fit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="inventory_scale.models.progress")
    every = EpochProgress("shard 3", max_epochs=5, interval_s=0.0)
    every.on_train_start(None, None)  # type: ignore[arg-type]
    every.on_validation_epoch_end(SimpleNamespace(sanity_checking=True), None)  # type: ignore[arg-type]
    for e in range(5):
        every.on_validation_epoch_end(_trainer(e), None)  # type: ignore[arg-type]
    assert every.lines == 5  # the sanity check is not an epoch
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("train shard 3: epoch 1/5, train_loss 1.2500, val_loss 1.5000,")
    assert "eta" in lines[0] and "eta" not in lines[-1] and lines[-1].startswith("train shard 3: epoch 5/5")

    quiet = EpochProgress("shard 4", max_epochs=20, interval_s=3600.0)
    quiet.on_train_start(None, None)  # type: ignore[arg-type]
    for e in range(6):  # early stopping after 7 epochs: only the last is logged
        quiet.on_validation_epoch_end(_trainer(e, stop=e == 5), None)  # type: ignore[arg-type]
    assert quiet.lines == 1


def test_training_logs_epoch_progress_per_shard(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [*TINY, f"data.root={tiny_data}", f"run.dir={tmp_path}", "ray=inprocess", "ray.shard_size=12"]
    assert main(["train", *args]) == 0  # the CLI logs to stderr (plain lines: not a terminal)
    err = capsys.readouterr().err
    lines = [ln.split(": ", 1)[1] for ln in err.splitlines() if "models.progress" in ln]
    epochs = sorted(ln.split(",")[0] for ln in lines if ": epoch " in ln)
    assert epochs == ["train shard 0: epoch 1/1", "train shard 1: epoch 1/1"]
    starts = sorted(ln for ln in lines if "up to" in ln)
    assert starts == [f"train shard {i}: up to 1 epochs of 3 steps on cpu" for i in (0, 1)]


def test_stage_prints_a_summary_table_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", f"run.dir={tmp_path / 'run'}", f"data.root={tmp_path / 'none'}"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["stage"] == "report"  # stdout stays machine-readable
    assert "report summary" in err and "sections.overview" in err and "images" in err


def test_pipeline_gets_one_table_per_stage_and_record_lists_their_own() -> None:
    summary = {
        "stage": "backtest",
        "cutoffs": ["2024-01-01"],
        "summary": [{"model": "lstm", "mase": 0.9}, {"model": "seasonal_ma", "mase": 1.1}],
        "policy": {"output": "x", "nested": {"a": 1}},
    }
    tables = cli._summary_tables(summary)
    assert [t.title for t in tables] == ["backtest summary", "backtest: summary"]
    assert tables[0].row_count == 2 and tables[1].row_count == 2  # cutoffs + policy.output; 2 models
    assert [c.header for c in tables[1].columns] == ["model", "mase"]
