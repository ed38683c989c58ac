"""Sweeps (issue #7): Ray Tune + Optuna + ASHA on the tiny marketplace, overlay, key checks, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import torch
from conftest import TINY

from inventory_scale.cli import load_config, main
from inventory_scale.errors import ConfigError
from inventory_scale.sweep import check_sweep
from inventory_scale.sweep_results import results_table
from inventory_scale.sweep_space import apply_overrides, default_point, parse_space

pytestmark = pytest.mark.ray

SWEEP = ["sweep=tiny", "ray.num_cpus=2"]
# TINY without the model/trainer keys an overlay sets (command-line overrides beat an overlay)
TINY_DATA = [o for o in TINY if not o.startswith(("model.", "trainer."))]


def _trial_dirs(run: Path) -> list[Path]:
    return sorted((run / "sweeps" / "tiny" / "tune").glob("trial_*"))


def _result_lines(trial: Path) -> int:
    path = trial / "result.json"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_space_keys_are_checked_against_the_config() -> None:
    cfg = load_config(["sweep=tiny"])
    params = parse_space(cfg.sweep.space, cfg)
    assert [p.key for p in params] == ["model.hidden_size", "model.learning_rate", "model.dropout"]
    trial = apply_overrides(cfg, {"model.hidden_size": 16, "ray.shard_size": 50, "model.dropout": 0})
    assert (trial.model.hidden_size, trial.ray.shard_size, trial.model.dropout) == (16, "50", 0.0)
    assert cfg.model.hidden_size == 64  # the base config is left as it was
    bad = {
        "model.hiden_size": {"type": "int", "low": 1, "high": 4},
        "trainer.max_epoch": {"type": "choice", "values": [1, 2]},
        "model.dropout": {"type": "uniform", "low": 0.0, "high": 1.5},
        "model.num_layers": {"type": "uniform", "low": 1, "high": 3},
        "run.dir": {"type": "choice", "values": ["/x"]},
    }
    for key, spec in bad.items():
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_space({key: spec}, cfg)
    mixed = parse_space({"ray.shard_size": {"type": "choice", "values": [500, 2000, "all"]}}, cfg)
    assert default_point(mixed, cfg) == {"ray.shard_size": 2000}  # the config's "2000"
    rows = [
        {"trial_id": t, "status": "complete", "rmsse": r, "point": {"ray.shard_size": v}}
        for t, r, v in (("a", 0.9, 500), ("b", 0.8, "all"))
    ]
    table = results_table(rows, ["ray.shard_size"], "rmsse")
    assert table["trial_id"].to_list() == ["b", "a"] and table["ray.shard_size"].to_list() == ["all", "500"]
    cfg.sweep.overrides = {"trainer.max_epochz": 2}
    with pytest.raises(ConfigError, match=r"trainer\.max_epochz"):
        check_sweep(cfg)


def test_unknown_space_key_fails_before_any_trial(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    rc = main(
        [
            "sweep",
            *TINY,
            *SWEEP,
            f"data.root={tiny_data}",
            f"run.dir={run}",
            "+sweep.space.model.hiden_size={type:int,low:4,high:16}",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "model.hiden_size" in err and "hiden_size" in err
    assert not (run / "sweeps").exists()  # nothing ran: no Tune state, no trial
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_tiny_sweep_best_is_table_minimum_and_overlay_runs(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    base = [*TINY, *SWEEP, f"data.root={tiny_data}", f"run.dir={run}"]
    assert main(["sweep", *base]) == 0
    out = run / "sweeps" / "tiny"
    table = pl.read_parquet(out / "results.parquet")
    assert table.height == 4 and len(_trial_dirs(run)) == 4
    assert set(table["status"]) <= {"complete", "stopped"}
    complete = table.filter(pl.col("status") == "complete")
    assert complete.height >= 1 and complete["rmsse"].null_count() == 0
    assert (
        table.filter(pl.col("status") != "complete")["rmsse"].null_count() == table.height - complete.height
    )
    state = json.loads((out / "sweep.json").read_text())
    assert state["best"]["rmsse"] == pytest.approx(table["rmsse"].min())
    assert table.row(0, named=True)["trial_id"] == state["best"]["trial_id"]  # sorted best first
    # the first trial is the base config (include_default): hidden 8 (TINY), lr 1e-3, dropout 0.1
    assert (
        table.filter((pl.col("model.hidden_size") == 8) & (pl.col("model.learning_rate") == 1e-3)).height >= 1
    )
    # the overlay composes onto the config and runs
    overlay = out / "experiment" / "tiny_best.yaml"
    text = overlay.read_text()
    assert text.startswith("# @package _global_")
    best = table.row(0, named=True)
    search = [f"hydra.searchpath=[file://{out}]", "+experiment=tiny_best"]
    cfg = load_config([*TINY_DATA, f"data.root={tiny_data}", f"run.dir={tmp_path / 'best'}", *search])
    assert cfg.model.hidden_size == best["model.hidden_size"]
    assert cfg.model.learning_rate == pytest.approx(best["model.learning_rate"])
    assert cfg.model.dropout == pytest.approx(best["model.dropout"])
    assert (cfg.trainer.max_epochs, cfg.trainer.steps_per_epoch) == (2, 3)  # sweep.overrides kept
    assert (cfg.model.num_layers, cfg.model.batch_size) == (2, 512)  # the rest: conf defaults
    assert main(["train", *TINY_DATA, f"data.root={tiny_data}", f"run.dir={tmp_path / 'best'}", *search]) == 0
    ckpt = next((tmp_path / "best" / "models").rglob("model.ckpt"))
    hparams = torch.load(ckpt, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hparams["net_config"]["hidden_size"] == best["model.hidden_size"]
    assert hparams["learning_rate"] == pytest.approx(best["model.learning_rate"])


def test_interrupted_sweep_resumes_without_redoing_finished_trials(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    # one trial at a time, no ASHA stop (rung at 40 epochs > the 2 of the budget): a finished
    # trial is one whose last report says complete
    args = [*TINY, *SWEEP, "sweep.max_concurrent=1", "sweep.grace_period=40"]
    args += [f"data.root={tiny_data}", f"run.dir={run}"]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inventory_scale.cli", "sweep", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # Ctrl-C once two trials have finished
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(_is_complete(t) for t in _trial_dirs(run)) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 1  # interrupted: exit 1, state kept
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = {t.name: _result_lines(t) for t in _trial_dirs(run)}
    finished = {t.name for t in _trial_dirs(run) if _is_complete(t)}
    assert 2 <= len(finished) < 4
    assert main(["sweep", *args]) == 0
    table = pl.read_parquet(run / "sweeps" / "tiny" / "results.parquet")
    after = {t.name: _result_lines(t) for t in _trial_dirs(run)}
    assert table.height == 4 and len(after) == 4
    for name in finished:  # finished trials kept as they were, not run again
        assert after[name] == before[name]
    state = json.loads((run / "sweeps" / "tiny" / "sweep.json").read_text())
    assert state["best"]["rmsse"] == pytest.approx(table["rmsse"].min())
    # the same folder with another space is refused before Ray starts, naming what changed
    extra = "+sweep.space.model.weight_decay={type:loguniform,low:1e-5,high:1e-3}"
    assert main(["sweep", *args, extra]) == 2
    assert "space.model.weight_decay" in capsys.readouterr().err
    assert {t.name for t in _trial_dirs(run)} == set(after)


def _is_complete(trial: Path) -> bool:
    """The trial's last report says it scored every unit to the end of its budget."""
    path = trial / "result.json"
    lines = path.read_text().splitlines() if path.exists() else []
    return bool(lines) and bool(json.loads(lines[-1]).get("complete"))
