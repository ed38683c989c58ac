"""Scale benchmark: generate -> train -> forecast -> optimize at 10k, 30k, 100k series x 730 days.

Run (``make bench-scale`` passes ``ARGS`` here)::

    .venv/bin/python benchmarks/bench_scale.py --sizes 10000 30000 100000 --compare-size 10000

Every stage runs as its own ``inventory-scale <stage>`` command (so Ray's start is counted) while
a sampler walks the process tree every 0.25 s (``/proc``): peak RSS of the driver, of the largest
Ray worker, and of the whole tree (driver + Ray's GCS, raylet, agents and workers; RSS counts
shared pages once per process, so the tree figure is an upper bound). Per stage: wall time,
series/s; per size: seconds per 1,000 series end to end.

Configurations (``--compare-size`` only, train and forecast):

- ``ray2``: embedded Ray, ``ray.num_cpus=2`` (two shard tasks at a time on the 2 cores); every size;
- ``ray1``: embedded Ray, ``ray.num_cpus=1``, the whole process tree pinned to one core;
- ``inprocess``: ``ray=inprocess`` (the same shard functions, one after another, no Ray), pinned to
  the same core.

Scale model settings (fixed work per shard, so cost per series is flat by construction of the
model and what varies is the system): shards of 1,000 series, LSTM hidden 16 x 1 layer, batch 256,
one epoch of 30 steps per shard, 100 sample paths, horizon 28, context 112.

Writes ``<run-dir>/bench/bench_scale.json`` and ``.md`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

CLI = str(Path(sys.executable).parent / "inventory-scale")
WAREHOUSES = 5
SCALE_SETTINGS = [
    "data.days=730",
    "data.horizon=28",
    "data.context_length=112",
    "model.hidden_size=16",
    "model.num_layers=1",
    "model.batch_size=256",
    "trainer.max_epochs=1",
    "trainer.steps_per_epoch=30",
    "forecast.num_paths=100",
    "ray.shard_size=1000",
    "seed=1",
]
MODES: dict[str, list[str]] = {
    "ray2": ["ray=local", "ray.num_cpus=2"],
    "ray1": ["ray=local", "ray.num_cpus=1"],
    "inprocess": ["ray=inprocess"],
}
PINNED = {"ray1", "inprocess"}  # run on one core (taskset-like affinity for the whole tree)


PAGE = os.sysconf("SC_PAGE_SIZE")


def _procs() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, RSS bytes, command line) of every process, from /proc."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry.name}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (ppid, rss, cmd)
    return out


class TreeSampler(threading.Thread):
    """Peak RSS of a process, its largest Ray worker and its whole process tree, sampled from /proc."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.driver = self.worker = self.tree = 0
        self.workers_seen: set[int] = set()
        self._stop_event = threading.Event()

    @staticmethod
    def _is_worker(cmd: str) -> bool:
        return "default_worker.py" in cmd or (cmd.startswith("ray::") and "Agent" not in cmd)

    def sample(self) -> None:
        procs = _procs()
        tree, frontier = {self.pid}, {self.pid}
        while frontier:
            frontier = {p for p, (ppid, _, _) in procs.items() if ppid in frontier and p not in tree}
            tree |= frontier
        total = 0
        for pid in tree & procs.keys():
            _, rss, cmd = procs[pid]
            total += rss
            if pid == self.pid:
                self.driver = max(self.driver, rss)
            elif self._is_worker(cmd):
                self.worker = max(self.worker, rss)
                self.workers_seen.add(pid)
        self.tree = max(self.tree, total)

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.sample()

    def stop(self) -> dict[str, Any]:
        self._stop_event.set()
        self.join()
        mib = 1 << 20
        return {
            "driver_peak_mib": round(self.driver / mib),
            "worker_peak_mib": round(self.worker / mib),
            "tree_peak_mib": round(self.tree / mib),
            "workers_seen": len(self.workers_seen),
        }


def run_stage(stage: str, overrides: list[str], pin: bool, log_dir: Path) -> dict[str, Any]:
    """Run one ``inventory-scale`` stage, sampled; returns wall time, memory and its summary."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cores = [min(os.sched_getaffinity(0))] if pin else None
    log_path = log_dir / f"{stage}.log"
    t0 = time.perf_counter()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [CLI, stage, *overrides],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        out, _ = proc.communicate(timeout=3600)
        mem = sampler.stop()
    wall = time.perf_counter() - t0
    err = log_path.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{stage} failed ({proc.returncode}); log {log_path}:\n{err[-3000:]}")
    start = re.search(r"embedded instance on 127\.0\.0\.1 with .* in ([\d.]+)s", err)
    return {
        "stage": stage,
        "wall_s": round(wall, 1),
        "ray_start_s": float(start.group(1)) if start else None,
        **mem,
        "summary": _summary(out),
    }


def _summary(stdout: str) -> dict[str, Any]:
    start = stdout.find("{")
    try:
        value: dict[str, Any] = json.loads(stdout[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}
    return value


def bench_size(
    n: int, modes: list[str], data_dir: Path, run_dir: Path, optimize: bool, keep: bool
) -> list[dict[str, Any]]:
    """Generate ``n`` series once, then run the stages in every mode; one record per mode."""
    root = data_dir / f"series-{n}"
    base = [*SCALE_SETTINGS, f"data.n_skus={n // WAREHOUSES}", f"data.n_warehouses={WAREHOUSES}"]
    base.append(f"data.root={root}")
    logs = run_dir / "bench" / "logs" / f"series-{n}"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    gen = run_stage("generate", base, False, logs)
    records = []
    for mode in modes:
        out = run_dir / f"series-{n}-{mode}"
        shutil.rmtree(out, ignore_errors=True)
        args = [*base, *MODES[mode], f"run.dir={out}"]
        mode_logs = logs / mode
        mode_logs.mkdir(exist_ok=True)
        stages = [gen] if mode == modes[0] else []
        for stage in ("train", "forecast", *(("optimize",) if optimize and mode == "ray2" else ())):
            print(f"[bench-scale] {n} series, {mode}: {stage} ...", flush=True)
            stages.append(run_stage(stage, args, mode in PINNED, mode_logs))
        records.append(_record(n, mode, stages))
        print(f"[bench-scale] {json.dumps(records[-1]['totals'])}", flush=True)
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return records


def _record(n: int, mode: str, stages: list[dict[str, Any]]) -> dict[str, Any]:
    for s in stages:
        s["series_per_s"] = round(n / s["wall_s"], 1) if s["wall_s"] else None
    sharded = [s for s in stages if s["stage"] in ("train", "forecast")]
    e2e = [s for s in stages if s["stage"] != "generate"]
    tf = sum(s["wall_s"] for s in sharded)
    total = sum(s["wall_s"] for s in stages)
    return {
        "series": n,
        "mode": mode,
        "stages": stages,
        "totals": {
            "series": n,
            "mode": mode,
            "train_forecast_s": round(tf, 1),
            "train_forecast_series_per_s": round(n / tf, 1),
            "stages_s": round(total, 1),
            "s_per_1k_series": round(1000 * sum(s["wall_s"] for s in e2e) / n, 2),
            "tree_peak_mib": max(s["tree_peak_mib"] for s in stages),
            "driver_peak_mib": max(s["driver_peak_mib"] for s in stages),
            "worker_peak_mib": max(s["worker_peak_mib"] for s in stages),
        },
    }


def compare(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios the targets speak of: 2 workers vs 1, Ray vs in-process, cost per series by size."""
    by = {(r["series"], r["mode"]): r["totals"] for r in records}
    out: dict[str, Any] = {}
    for n in sorted({r["series"] for r in records}):
        if (n, "ray2") in by and (n, "ray1") in by:
            out[f"speedup_2_vs_1_workers@{n}"] = round(
                by[(n, "ray1")]["train_forecast_s"] / by[(n, "ray2")]["train_forecast_s"], 2
            )
        if (n, "ray1") in by and (n, "inprocess") in by:
            out[f"ray1_over_inprocess@{n}"] = round(
                by[(n, "ray1")]["train_forecast_s"] / by[(n, "inprocess")]["train_forecast_s"], 3
            )
    ray2 = sorted((n, t["s_per_1k_series"]) for (n, m), t in by.items() if m == "ray2")
    if len(ray2) >= 2:
        out["s_per_1k_series_ray2"] = dict(ray2)
        out["cost_per_series_largest_over_smallest"] = round(ray2[-1][1] / ray2[0][1], 3)
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# bench-scale",
        "",
        f"machine: {result['machine']}",
        f"command: `{result['command']}`",
        f"settings: {' '.join(result['settings'])}",
        "",
        "| series | mode | stage | wall (s) | series/s | Ray start (s) | driver peak (MiB) "
        "| worker peak (MiB) | tree peak (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["records"]:
        for s in r["stages"]:
            lines.append(
                f"| {r['series']} | {r['mode']} | {s['stage']} | {s['wall_s']} | {s['series_per_s']} | "
                f"{s['ray_start_s'] if s['ray_start_s'] is not None else '-'} | {s['driver_peak_mib']} | "
                f"{s['worker_peak_mib']} | {s['tree_peak_mib']} |"
            )
    lines += ["", "| series | mode | train+forecast (s) | series/s | s per 1k series (excl. generate) |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for r in result["records"]:
        t = r["totals"]
        lines.append(
            f"| {t['series']} | {t['mode']} | {t['train_forecast_s']} | {t['train_forecast_series_per_s']} | "
            f"{t['s_per_1k_series']} |"
        )
    lines += ["", "comparisons: " + json.dumps(result["comparisons"])]
    return "\n".join(lines)


def _optimize_works() -> bool:
    proc = subprocess.run([CLI, "optimize", "--help"], capture_output=True, text=True, timeout=120)
    return proc.returncode == 0 and "not built yet" not in proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000, 100000])
    parser.add_argument("--compare-size", type=int, default=10000, help="size of the ray1/inprocess runs")
    parser.add_argument("--no-compare", action="store_true")
    parser.add_argument("--no-optimize", action="store_true")
    parser.add_argument("--data-dir", default="datasets/bench_scale")
    parser.add_argument("--run-dir", default="outputs/bench_scale")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and run outputs")
    args = parser.parse_args()
    data_dir, run_dir = Path(args.data_dir).absolute(), Path(args.run_dir).absolute()
    optimize = not args.no_optimize and _optimize_works()
    mem_gib = os.sysconf("SC_PHYS_PAGES") * PAGE / (1 << 30)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU(s), {mem_gib:.0f} GiB RAM, no GPU used, "
        f"{platform.system()} {platform.release()}"
    )
    result: dict[str, Any] = {
        "machine": machine,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": [*SCALE_SETTINGS, f"data.n_warehouses={WAREHOUSES}"],
        "optimize": optimize,
        "load_avg_start": os.getloadavg(),
        "records": [],
    }
    out = run_dir / "bench"
    out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        modes = ["ray2"]
        if not args.no_compare and n == args.compare_size:
            modes += ["ray1", "inprocess"]
        result["records"] += bench_size(n, modes, data_dir, run_dir, optimize, args.keep)
        result["comparisons"] = compare(result["records"])
        result["load_avg_end"] = os.getloadavg()
        (out / "bench_scale.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / "bench_scale.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    print(f"\nwrote {out / 'bench_scale.json'} and {out / 'bench_scale.md'}")


if __name__ == "__main__":
    main()
