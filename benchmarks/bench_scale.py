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
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from inventory_scale.bench.memory import TreeSampler

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


# The sharded stages run in one driver process with one Ray session, as `inventory-scale pipeline`
# runs them: Ray starts (and its workers import torch) once, not once per stage.
DRIVER = """
import json, logging, sys, time
from inventory_scale.cli import load_config
from inventory_scale.distributed.runner import ray_session
from inventory_scale.pipeline import run_stage
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
stages, cfg = json.loads(sys.argv[1]), load_config(sys.argv[2:])
out = {"stages": []}
t0 = time.time()
with ray_session(cfg.ray):
    out["ray_start"] = [t0, time.time()]
    for stage in stages:
        t = time.time()
        summary = run_stage(stage, cfg)
        out["stages"].append({"stage": stage, "start": t, "end": time.time(), "summary": summary})
    t = time.time()
out["ray_shutdown"] = [t, time.time()]
print(json.dumps(out, default=str))
"""


def run_driver(cmd: list[str], pin: bool, log_path: Path) -> tuple[str, TreeSampler, float, float]:
    """Run ``cmd`` sampled (pinned to one core with ``pin``); returns stdout, sampler, start, end."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    cores = [min(os.sched_getaffinity(0))] if pin else None
    t0 = time.time()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
        sampler = TreeSampler(proc.pid)
        sampler.start()
        out, _ = proc.communicate(timeout=3600)
        sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{cmd[:3]} failed ({proc.returncode}); log {log_path}:\n{log_path.read_text()[-3000:]}"
        )
    return out, sampler, t0, time.time()


def run_generate(overrides: list[str], log_dir: Path) -> dict[str, Any]:
    """``inventory-scale generate`` as its own command."""
    out, sampler, t0, t1 = run_driver([CLI, "generate", *overrides], False, log_dir / "generate.log")
    return {"stage": "generate", "wall_s": round(t1 - t0, 1), **sampler.peaks(), "summary": _summary(out)}


def run_stages(stages: list[str], overrides: list[str], pin: bool, log_dir: Path) -> list[dict[str, Any]]:
    """The sharded stages in one driver with one Ray session; per-stage wall time and peaks."""
    cmd = [sys.executable, "-c", DRIVER, json.dumps(stages), *overrides]
    out, sampler, t0, t1 = run_driver(cmd, pin, log_dir / "stages.log")
    timings = _summary(out)
    records = []
    ray_start = timings["ray_start"][1] - timings["ray_start"][0]
    records.append(
        {"stage": "ray start+stop", "wall_s": round(ray_start, 1), **sampler.peaks(*timings["ray_start"])}
    )
    shutdown = timings["ray_shutdown"][1] - timings["ray_shutdown"][0]
    records[-1]["wall_s"] = round(ray_start + shutdown, 1)
    for st in timings["stages"]:
        records.append(
            {
                "stage": st["stage"],
                "wall_s": round(st["end"] - st["start"], 1),
                **sampler.peaks(st["start"], st["end"]),
                "summary": st["summary"],
            }
        )
    records.append(
        {
            "stage": "process (all of it)",
            "wall_s": round(t1 - t0, 1),
            **sampler.peaks(),
            "cpu_s": sampler.cpu_seconds(),
        }
    )
    return records


def _summary(stdout: str) -> dict[str, Any]:
    start = stdout.find("{")
    try:
        value: dict[str, Any] = json.loads(stdout[start:]) if start >= 0 else {}
    except json.JSONDecodeError:
        return {}
    return value


def bench_size(
    n: int,
    modes: list[str],
    data_dir: Path,
    run_dir: Path,
    optimize: bool,
    keep: bool,
    extra: list[str] | None = None,
    repeat: int = 1,
) -> list[dict[str, Any]]:
    """Generate ``n`` series once, then run the stages in every mode ``repeat`` times.

    One record per mode and repetition. Repetitions alternate the order of the modes (a, b, c,
    then c, b, a, ...) so a slow drift of the machine's speed weighs on every mode alike.
    """
    root = data_dir / f"series-{n}"
    base = [*SCALE_SETTINGS, f"data.n_skus={n // WAREHOUSES}", f"data.n_warehouses={WAREHOUSES}"]
    base += extra or []
    base.append(f"data.root={root}")
    logs = run_dir / "bench" / "logs" / f"series-{n}"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)
    gen = run_generate(base, logs)
    records: list[dict[str, Any]] = []
    for rep in range(repeat):
        for mode in modes if rep % 2 == 0 else modes[::-1]:
            out = run_dir / f"series-{n}-{mode}"
            shutil.rmtree(out, ignore_errors=True)
            args = [*base, *MODES[mode], f"run.dir={out}"]
            mode_logs = logs / (mode if repeat == 1 else f"{mode}-{rep}")
            mode_logs.mkdir(exist_ok=True)
            names = ["train", "forecast", *(["optimize"] if optimize and mode == "ray2" else [])]
            print(
                f"[bench-scale] {n} series, {mode} (run {rep + 1}/{repeat}): {', '.join(names)} ...",
                flush=True,
            )
            stages = [gen] if not records else []
            stages += run_stages(names, args, mode in PINNED, mode_logs)
            records.append({**_record(n, mode, stages), "repeat": rep})
            print(f"[bench-scale] {json.dumps(records[-1]['totals'])}", flush=True)
            if not keep:
                shutil.rmtree(out, ignore_errors=True)
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return records


def _record(n: int, mode: str, stages: list[dict[str, Any]]) -> dict[str, Any]:
    for s in stages:
        real = s["stage"] != "ray start+stop"
        s["series_per_s"] = round(n / s["wall_s"], 1) if s["wall_s"] and real else None
    by = {s["stage"]: s for s in stages}
    tf = by["train"]["wall_s"] + by["forecast"]["wall_s"]
    run = by["process (all of it)"]
    return {
        "series": n,
        "mode": mode,
        "stages": stages,
        "totals": {
            "series": n,
            "mode": mode,
            "train_forecast_s": round(tf, 1),
            "train_forecast_series_per_s": round(n / tf, 1),
            "run_s": run["wall_s"],  # the driver process: imports, Ray start/stop, every stage
            "run_series_per_s": run["series_per_s"],
            "s_per_1k_series": round(1000 * run["wall_s"] / n, 2),
            "generate_s": by["generate"]["wall_s"] if "generate" in by else None,
            "tree_peak_mib": max(s["tree_peak_mib"] for s in stages),
            "driver_peak_mib": max(s["driver_peak_mib"] for s in stages),
            "worker_peak_mib": max(s["worker_peak_mib"] for s in stages),
            "cpu_s": run.get("cpu_s", {}),  # CPU seconds by role over the driver run
        },
    }


def compare(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios the targets speak of: 2 workers vs 1, Ray vs in-process, cost per series by size.

    Each ratio twice: on the train + forecast stage walls, and on the whole driver run (``run``:
    Python and torch imports, Ray start and stop included). With repetitions, each mode's time is
    the median of its runs (``medians``).
    """
    runs: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in records:
        runs.setdefault((r["series"], r["mode"]), []).append(r["totals"])
    by = {
        key: {
            k: float(np.median([t[k] for t in ts])) for k in ("train_forecast_s", "run_s", "s_per_1k_series")
        }
        for key, ts in runs.items()
    }
    out: dict[str, Any] = {}
    if any(len(ts) > 1 for ts in runs.values()):
        out["medians"] = {f"{m}@{n}": v for (n, m), v in by.items()}
    for n in sorted({r["series"] for r in records}):
        for a, b, name in (
            ("ray1", "ray2", "speedup_2_vs_1_workers"),
            ("ray1", "inprocess", "ray1_over_inprocess"),
        ):
            if (n, a) in by and (n, b) in by:
                for key in ("train_forecast_s", "run_s"):
                    out[f"{name}@{n}:{key}"] = round(by[(n, a)][key] / by[(n, b)][key], 3)
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
        "| series | mode | stage | wall (s) | series/s | driver peak (MiB) | worker peak (MiB) "
        "| tree peak (MiB) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["records"]:
        for s in r["stages"]:
            cells = [r["series"], r["mode"], s["stage"], s["wall_s"], s["series_per_s"]]
            cells += [s["driver_peak_mib"], s["worker_peak_mib"], s["tree_peak_mib"]]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "| series | mode | train+forecast (s) | series/s | whole run (s) | s per 1k series "
        "| tree peak (MiB) | CPU s: driver / workers / Ray system |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["records"]:
        t = r["totals"]
        mode = t["mode"] if not r.get("repeat") else f"{t['mode']} (run {r['repeat'] + 1})"
        cells = [t["series"], mode, t["train_forecast_s"], t["train_forecast_series_per_s"], t["run_s"]]
        cpu = t.get("cpu_s") or {}
        cells += [t["s_per_1k_series"], t["tree_peak_mib"]]
        cells.append(" / ".join(str(cpu.get(k, "-")) for k in ("driver", "workers", "ray_system")))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
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
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each mode at --compare-size (median reported)"
    )
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run, KEY=VALUE")
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
        "settings": [*SCALE_SETTINGS, f"data.n_warehouses={WAREHOUSES}", *args.set],
        "optimize": optimize,
        "load_avg_start": os.getloadavg(),
        "records": [],
    }
    out = run_dir / "bench"
    out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        modes, repeat = ["ray2"], 1
        if not args.no_compare and n == args.compare_size:
            modes, repeat = ["ray2", "ray1", "inprocess"], args.repeat
        result["records"] += bench_size(n, modes, data_dir, run_dir, optimize, args.keep, args.set, repeat)
        result["comparisons"] = compare(result["records"])
        result["load_avg_end"] = os.getloadavg()
        (out / "bench_scale.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out / "bench_scale.md").write_text(markdown(result) + "\n")
    print(markdown(result))
    print(f"\nwrote {out / 'bench_scale.json'} and {out / 'bench_scale.md'}")


if __name__ == "__main__":
    main()
