"""Benchmark seed ensembles in the train stage: members as parallel Ray tasks vs one after another.

``make bench-ensemble`` runs::

    .venv/bin/python benchmarks/bench_ensemble.py --series 400 --members 2 --steps 300

It generates a synthetic marketplace (``--series`` = SKUs x 4 warehouses, two years), then trains
one global model (``ray.shard_size=all``) with ``model.ensemble=--members`` twice into fresh run
folders: with ``ray=local`` (every (shard, member) is its own Ray task, so the members of the one
shard train at the same time, one CPU each) and with ``ray=inprocess`` (the same task functions
in a loop, one member after another, each with all the machine's cores for its torch threads).
Both train the same members from the same seeds.
It reports the wall time of each ``train`` stage, the speed-up, each member's fit seconds and
validation loss, and the largest difference between the two runs' member weights.

Prints one JSON object (``--json`` writes it to a file too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from inventory_scale.cli import main
from inventory_scale.manifest import read_manifest
from inventory_scale.models.module import load_forecaster


def _train(args: list[str], ray: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    if main(["train", *args, f"ray={ray}"]) != 0:
        raise SystemExit(f"train with ray={ray} failed")
    seconds = time.perf_counter() - t0
    run_dir = next(a.split("=", 1)[1] for a in args if a.startswith("run.dir="))
    manifest = read_manifest(str(Path(run_dir) / "models"))
    assert manifest is not None
    (shard,) = manifest["shards"]
    return seconds, shard


def _weight_gap(a: Path, b: Path) -> float:
    """Largest absolute difference between the two runs' member weights (thread counts differ, so
    floating-point sums may differ in the last bits; the seeds and data are the same)."""
    names = sorted(p.name for p in a.glob("models/shard=00000/*.ckpt"))
    if names != sorted(p.name for p in b.glob("models/shard=00000/*.ckpt")):
        raise SystemExit(f"the runs wrote different checkpoints: {names}")
    gap = 0.0
    for name in names:
        sa = load_forecaster(a / "models" / "shard=00000" / name).state_dict()
        sb = load_forecaster(b / "models" / "shard=00000" / name).state_dict()
        gap = max(gap, *(float((sa[k] - sb[k]).abs().max()) for k in sa if sa[k].is_floating_point()))
    return gap


def run(series: int, members: int, steps: int, hidden: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ensemble-") as tmp:
        base = Path(tmp)
        n_skus = max(1, series // 4)
        common = [
            "data=synthetic",
            f"data.root={base / 'data'}",
            f"data.n_skus={n_skus}",
            "data.n_warehouses=4",
            "data.days=730",
            "data.context_length=56",
            f"seed={seed}",
        ]
        if main(["generate", *common]) != 0:
            raise SystemExit("generate failed")
        train = [
            *common,
            "ray.shard_size=all",
            f"model.ensemble={members}",
            f"model.hidden_size={hidden}",
            "model.batch_size=256",
            "model.learning_rate=0.003",
            f"trainer.max_epochs={max(1, steps // 100)}",
            f"trainer.steps_per_epoch={min(100, steps)}",
            "trainer.early_stopping_patience=100",
        ]
        parallel_s, parallel = _train([*train, f"run.dir={base / 'ray'}"], "local")
        cores = f"ray.num_cpus_per_task={os.cpu_count() or 1}"  # one member at a time on every core
        serial_s, serial = _train([*train, cores, f"run.dir={base / 'inprocess'}"], "inprocess")
        gap = _weight_gap(base / "ray", base / "inprocess")
    return {
        "benchmark": "ensemble members: parallel Ray tasks vs sequential (train stage)",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "series": n_skus * 4,
        "members": members,
        "steps_per_member": steps,
        "hidden_size": hidden,
        "ray_local_seconds": round(parallel_s, 1),
        "inprocess_seconds": round(serial_s, 1),
        "speedup": round(serial_s / parallel_s, 2),
        "member_val_loss_ray": parallel.get("member_val_loss"),
        "member_val_loss_inprocess": serial.get("member_val_loss"),
        "max_weight_difference": gap,
    }


def cli() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--series", type=int, default=400)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300, help="training steps per member")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    a = parser.parse_args()
    out = run(a.series, a.members, a.steps, a.hidden, a.seed)
    text = json.dumps(out, indent=2)
    print(text)
    if a.json is not None:
        a.json.write_text(text + "\n")


if __name__ == "__main__":
    cli()
