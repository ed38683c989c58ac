"""Benchmark the synthetic marketplace generator: wall time, peak memory, rows and bytes on disk.

Run (100,000 series x 730 days)::

    .venv/bin/python benchmarks/bench_synth.py --n-skus 20000 --n-warehouses 5 --days 730 \
        --root /tmp/bench_synth

Prints one summary line and writes the same figures as JSON (``--json``, default
``<root>.bench.json``). Peak RSS is reported twice: the kernel's high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, whole process including imports) and the maximum of
``/proc/self/statm`` sampled every 50 ms during generation, next to the RSS before it started.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import threading
import time
from pathlib import Path

from inventory_scale.config import DataConfig
from inventory_scale.data.synth import generate_marketplace

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process (0 where ``/proc`` is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


class RssSampler(threading.Thread):
    """Samples the RSS every ``interval`` seconds until stopped; keeps the maximum."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak = rss_bytes()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, rss_bytes())
        return self.peak


def dir_bytes(root: Path) -> int:
    """Total size of the files under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-skus", type=int, default=20_000)
    parser.add_argument("--n-warehouses", type=int, default=5)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--root", default="/tmp/bench_synth")
    parser.add_argument("--chunk-series", type=int, default=DataConfig.chunk_series)
    parser.add_argument("--start-date", default=DataConfig.start_date)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="where to write the figures (default <root>.bench.json)")
    parser.add_argument(
        "--keep", action="store_true", help="keep an existing root instead of clearing it first"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")

    root = Path(args.root)
    if root.exists() and not args.keep:
        shutil.rmtree(root)
    cfg = DataConfig(
        n_skus=args.n_skus,
        n_warehouses=args.n_warehouses,
        days=args.days,
        start_date=args.start_date,
        chunk_series=args.chunk_series,
    )
    baseline = rss_bytes()
    sampler = RssSampler()
    sampler.start()
    t0 = time.perf_counter()
    rows = generate_marketplace(cfg, str(root), seed=args.seed)
    wall = time.perf_counter() - t0
    sampled_peak = sampler.stop()
    disk = dir_bytes(root)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    result: dict[str, object] = {
        "n_skus": cfg.n_skus,
        "n_warehouses": cfg.n_warehouses,
        "series": cfg.n_skus * cfg.n_warehouses,
        "days": cfg.days,
        "chunk_series": cfg.chunk_series,
        "seed": args.seed,
        "wall_s": round(wall, 2),
        "rows": rows,
        "sales_rows_per_s": round(rows["sales"] / wall),
        "peak_rss_mib": round(maxrss / 2**20, 1),
        "sampled_peak_rss_mib": round(sampled_peak / 2**20, 1),
        "rss_before_mib": round(baseline / 2**20, 1),
        "bytes_on_disk": disk,
        "cpu_count": os.cpu_count(),
    }
    out = Path(args.json) if args.json else root.with_name(root.name + ".bench.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"bench_synth: {result['series']:,} series x {cfg.days} days in {wall:.1f} s, "
        f"{rows['sales']:,} sales rows ({result['sales_rows_per_s']:,}/s), "
        f"peak RSS {result['peak_rss_mib']} MiB (sampled {result['sampled_peak_rss_mib']} MiB, "
        f"before {result['rss_before_mib']} MiB), {disk / 2**20:.1f} MiB on disk -> {out}"
    )
    return result


if __name__ == "__main__":
    main()
