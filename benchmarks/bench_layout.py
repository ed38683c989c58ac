"""Sales layout for shard tasks: bucketed by shard (``prepare`` once) vs pushdown on the raw table.

What a train or forecast task spends reading its inputs, both ways, on an existing dataset::

    .venv/bin/python benchmarks/bench_layout.py --root /tmp/bench_scale/data-10000 --shard-size 1000

- ``raw``: every task scans ``sales/`` with predicate pushdown (its SKUs and warehouses, dates up
  to the cutoff) and semi-joins its keys (``forecast.load_shard``);
- ``bucketed``: ``prepare_sales`` writes the sales once bucketed by shard (one pass over the raw
  table, partition by partition), then every task reads its own folder (``tasks.read_shard``).

Reads run one after another in this process, like tasks on one CPU. ``--max-shards`` reads only
the first N shards of each layout (the per-shard figures; totals are then given for those N and
extrapolated to every shard, labelled as such). Prints a Markdown table and writes JSON
(``--json``, default ``<root>.layout.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from inventory_scale.config import Config, DataConfig, RayConfig, RunConfig
from inventory_scale.distributed.sharding import assign_shards, prepare_sales
from inventory_scale.distributed.tasks import ShardItem, StageInputs, read_shard
from inventory_scale.forecast import last_sales_date, list_series
from inventory_scale.pipeline import _shard_items


def _time_reads(items: list[ShardItem], inp: StageInputs) -> tuple[list[float], int]:
    seconds, rows = [], 0
    for item in items:
        t0 = time.perf_counter()
        data = read_shard(item, inp)
        seconds.append(time.perf_counter() - t0)
        rows += data.sales.height
    return seconds, rows


def measure(root: str, shard_size: int, max_shards: int | None, run_dir: str) -> dict[str, Any]:
    """Per-shard read times of both layouts (and the prepare pass) for ``root``."""
    cutoff = last_sales_date(root)
    shards = assign_shards(list_series(root, cutoff), str(shard_size))
    items = _shard_items(shards)
    sample = items[:max_shards] if max_shards else items
    cfg = Config(data=DataConfig(root=root), ray=RayConfig(), run=RunConfig(dir=run_dir))
    out: dict[str, Any] = {
        "root": root,
        "series": shards.height,
        "shards": len(items),
        "shard_size": shard_size,
        "shards_read": len(sample),
    }
    raw, raw_rows = _time_reads(sample, StageInputs(cfg, cutoff, bucketed=False))
    t0 = time.perf_counter()
    info = prepare_sales(root, shards, cutoff, run_dir)
    prepare_s = time.perf_counter() - t0
    bucketed, b_rows = _time_reads(sample, StageInputs(cfg, cutoff, bucketed=True))
    if raw_rows != b_rows:
        raise RuntimeError(f"layouts read different rows: raw {raw_rows}, bucketed {b_rows}")
    scale = len(items) / len(sample)
    for name, secs, extra in (("raw", raw, 0.0), ("bucketed", bucketed, prepare_s)):
        out[name] = {
            "per_shard_s_median": round(statistics.median(secs), 3),
            "per_shard_s_max": round(max(secs), 3),
            "reads_s": round(sum(secs), 2),
            "prepare_s": round(extra, 2),
            "total_s": round(sum(secs) * scale + extra, 2),
            "total_extrapolated": scale != 1.0,
        }
    out["rows_read"] = raw_rows
    out["prepare_rows"] = info["rows"]
    out["bucketed_speedup"] = round(out["raw"]["total_s"] / out["bucketed"]["total_s"], 2)
    return out


def markdown(r: dict[str, Any]) -> str:
    ext = " (extrapolated from the shards read)" if r["raw"]["total_extrapolated"] else ""
    lines = [
        f"{r['series']} series, {r['shards']} shards of {r['shard_size']}, {r['shards_read']} shard(s) read",
        "",
        f"| layout | read per shard, median (s) | max (s) | prepare (s) | total for all shards (s){ext} |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("raw", "bucketed"):
        m = r[name]
        cells = [name, m["per_shard_s_median"], m["per_shard_s_max"], m["prepare_s"], m["total_s"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append(f"\ntotal raw / total bucketed = {r['bucketed_speedup']} (> 1: bucketed is faster)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="dataset root (a generated marketplace)")
    parser.add_argument("--shard-size", type=int, default=1000)
    parser.add_argument("--max-shards", type=int, default=None, help="read only the first N shards")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    run_dir = tempfile.mkdtemp(prefix="bench-layout-")
    try:
        result = measure(args.root, args.shard_size, args.max_shards, run_dir)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    print(markdown(result))
    path = Path(args.json or f"{args.root.rstrip('/')}.layout.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
