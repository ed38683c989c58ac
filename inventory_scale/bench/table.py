"""The benchmark tables: one row per dataset x model, ratios ours / peer, provenance on every row.

``results.parquet`` and ``results.md`` (under ``<run.dir>/bench/`` or ``bench.out_dir``):

| column | meaning |
| --- | --- |
| ``dataset``, ``model``, ``status`` | what ran (``failed`` rows carry ``reason``) |
| ``n_series``, ``cutoffs``, ``horizon`` | the common series scored at each cutoff, the origins, H |
| ``rmsse`` .. ``bias`` | mean over cutoffs of the overall metrics (``evaluation.metrics``) |
| ``fit_s``, ``predict_s`` | wall seconds per cutoff of the fit and of the forecast |
| ``peak_rss_mib`` | peak RSS of the model's process tree over all cutoffs (Ray's processes for ours) |
| ``ray_worker_peak_mib`` | ours: peak RSS of the largest Ray worker (the training, without Ray's daemons) |
| ``train_steps`` .. ``paths_per_s`` | training steps per cutoff; ours: windows/s, GFLOP/s, paths/s |
| ``ratio_<x>`` | ours' ``x`` / this row's ``x`` on the same dataset (< 1: ours lower) |
| ``machine``, ``versions``, ``command``, ``git_revision``, ``created_utc`` | provenance |

``hardware.parquet`` holds the efficiency figures (:mod:`.hardware`) with the same provenance.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl

from inventory_scale.manifest import git_revision

log = logging.getLogger(__name__)

RATIO_OF = ("rmsse", "wrmsse", "mase", "spl", "crps", "fit_s", "predict_s", "peak_rss_mib")
"""Figures that get a ``ratio_<x>`` column: ours / this model."""

OURS = "ours"
PACKAGES = (
    "torch",
    "pytorch-lightning",
    "ray",
    "polars",
    "neuralforecast",
    "statsforecast",
    "mlforecast",
    "lightgbm",
)


def machine() -> str:
    """CPU model, cores this process may use, memory and OS, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / (1 << 30)
    return f"{platform.node()}: {cpu}, {cores} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def versions() -> str:
    """``python=..., torch=..., ...`` of the libraries that shape the figures."""
    out = [f"python={platform.python_version()}"]
    for name in PACKAGES:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return ", ".join(out)


def provenance(command: str | None = None) -> dict[str, str]:
    """Machine, versions, command line, git revision and time: the columns on every row."""
    return {
        "machine": machine(),
        "versions": versions(),
        "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git_revision": git_revision(),
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def with_ratios(results: pl.DataFrame) -> pl.DataFrame:
    """Add ``ratio_<x>`` = ours' ``x`` / the row's ``x`` on the same dataset (null without ours)."""
    ours = results.filter(pl.col("model") == OURS).select(
        "dataset", *[pl.col(c).alias(f"_ours_{c}") for c in RATIO_OF]
    )
    joined = results.join(ours, on="dataset", how="left")
    ratios = [
        pl.when(pl.col(c) > 0).then(pl.col(f"_ours_{c}") / pl.col(c)).otherwise(None).alias(f"ratio_{c}")
        for c in RATIO_OF
    ]
    return joined.with_columns(ratios).drop([f"_ours_{c}" for c in RATIO_OF])


def build_results(rows: list[dict[str, Any]], prov: dict[str, str]) -> pl.DataFrame:
    """The results table from the harness rows: ratios, then provenance columns."""
    frame = pl.from_dicts(rows, infer_schema_length=None)
    for c in RATIO_OF:
        if c not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(c))
        frame = frame.with_columns(pl.col(c).cast(pl.Float64))
    return with_ratios(frame).with_columns(pl.lit(v).alias(k) for k, v in prov.items())


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def _md_table(frame: pl.DataFrame, columns: list[str]) -> list[str]:
    cols = [c for c in columns if c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in frame.iter_rows(named=True)]
    return lines


def targets(results: pl.DataFrame, hardware: dict[str, Any] | None) -> list[str]:
    """Issue #9's targets checked against this run's figures, one line each (met / missed by how much)."""
    lines = []

    def row(dataset: str, model: str) -> dict[str, Any] | None:
        hit = results.filter(
            (pl.col("dataset") == dataset) & (pl.col("model") == model) & (pl.col("status") == "ok")
        )
        return hit.row(0, named=True) if hit.height else None

    datasets = results.get_column("dataset").unique(maintain_order=True).to_list()
    synthetic = [d for d in datasets if d.startswith("synthetic")]
    if synthetic:
        big = max(synthetic, key=lambda d: int(d.rsplit("-", 1)[-1]) if d.rsplit("-", 1)[-1].isdigit() else 0)
        ours, nf = row(big, OURS), row(big, "nf_lstm")
        if ours and nf and nf["rmsse"] and ours["fit_s"]:
            speed = nf["fit_s"] / ours["fit_s"]
            acc = ours["rmsse"] <= nf["rmsse"] and ours["wrmsse"] <= nf["wrmsse"]
            lines.append(
                f"- {big}: ours vs neuralforecast LSTM: RMSSE {ours['rmsse']:.3f} vs {nf['rmsse']:.3f}, "
                f"WRMSSE {ours['wrmsse']:.3f} vs {nf['wrmsse']:.3f} "
                f"({'same or better' if acc else 'worse'}); "
                f"fit time neuralforecast / ours = {speed:.2f} (target >= 3 with same or better "
                f"accuracy: {'met' if acc and speed >= 3 else 'missed'})"
            )
    if "m5" in datasets and row("m5", OURS):
        ours = row("m5", OURS)
        assert ours is not None
        for peer in ("autoets", "lightgbm", "nf_lstm", "nf_lstm_negbin"):
            p = row("m5", peer)
            if p and p["rmsse"] is not None:
                ok = ours["rmsse"] < p["rmsse"] and ours["wrmsse"] < p["wrmsse"]
                lines.append(
                    f"- m5: ours vs {peer}: RMSSE {ours['rmsse']:.3f} vs {p['rmsse']:.3f}, WRMSSE "
                    f"{ours['wrmsse']:.3f} vs {p['wrmsse']:.3f}: {'met' if ok else 'missed'}"
                )
    if hardware:
        peak = hardware["sgemm_peak_gflops"]
        shares = {name: v["peak_share"] for name, v in hardware["variants"].items()}
        shares |= {
            f"ours in the run on {r['dataset']}": r["train_gflops"] / peak
            for r in results.filter(
                (pl.col("model") == OURS) & pl.col("train_gflops").is_not_null()
            ).to_dicts()
        }
        for name, share in shares.items():
            verdict = "met" if share >= 0.5 else f"missed by {0.5 - share:.0%} of peak"
            lines.append(
                f"- LSTM training ({name}) at {share:.0%} of the fp32 sgemm peak: target 50% {verdict}"
            )
    return lines


MAIN_COLUMNS = [
    "dataset", "model", "status", "n_series", "rmsse", "wrmsse", "mase", "spl", "crps",
    "coverage_80", "coverage_90", "bias", "fit_s", "predict_s", "peak_rss_mib", "ray_worker_peak_mib",
    "train_steps",
]  # fmt: skip


def markdown(results: pl.DataFrame, hardware: dict[str, Any] | None) -> str:
    """The Markdown report: results, ratios, hardware efficiency, targets, provenance."""
    prov = results.row(0, named=True)
    lines = ["# inventory_scale benchmark", "", "## Accuracy, speed and memory (mean over cutoffs)", ""]
    lines += _md_table(results, MAIN_COLUMNS)
    lines += ["", "## Ratios ours / model (same dataset, same run; < 1 = ours lower)", ""]
    lines += _md_table(
        results.filter(pl.col("model") != OURS), ["dataset", "model"] + [f"ratio_{c}" for c in RATIO_OF]
    )
    ours = results.filter(pl.col("model") == OURS)
    if ours.height:
        lines += ["", "## Ours in the run (Ray, per cutoff)", ""]
        lines += _md_table(
            ours, ["dataset", "train_steps", "train_windows_per_s", "train_gflops", "paths_per_s"]
        )
    if hardware:
        lines += ["", "## Hardware efficiency (measured now)", ""]
        lines += [
            f"sgemm peak {hardware['sgemm_peak_gflops']:.1f} GFLOP/s on {hardware['threads']} thread(s); "
            f"LSTM hidden {hardware['hidden_size']} x {hardware['num_layers']} layers, "
            f"{hardware['window_steps']} steps per window, {hardware['flops_per_window'] / 1e6:.1f} MFLOP "
            "per training window (3 x forward gate matmuls)",
            "",
            "| variant | batch | windows/s | GFLOP/s | share of peak |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, v in hardware["variants"].items():
            cells = [name, str(v["batch_size"]), f"{v['windows_per_s']:,.0f}", f"{v['gflops']:.1f}"]
            lines.append("| " + " | ".join([*cells, f"{v['peak_share']:.0%}"]) + " |")
        lines += [
            "",
            f"Inference: {hardware['inference_windows_per_s']:,.0f} windows/s (forward, no grad); "
            f"{hardware['paths_per_s']:,.0f} sample paths/s.",
            "",
            "Where fp32 training time goes (torch.profiler, self CPU time; full table in lstm_profile.txt):",
            "",
            "```",
            *str(hardware.get("profile", "")).strip().splitlines()[:9],
            "```",
        ]
    lines += ["", "## Targets (issue #9)", "", *(targets(results, hardware) or ["- nothing to check"])]
    lines += ["", "## Provenance", ""]
    lines += [
        f"- {k}: `{prov[k]}`" for k in ("machine", "versions", "command", "git_revision", "created_utc")
    ]
    return "\n".join(lines) + "\n"


def write_tables(results: pl.DataFrame, hardware: dict[str, Any] | None, out_dir: str) -> dict[str, str]:
    """Write ``results.parquet``, ``results.md`` and ``hardware.parquet`` (+ ``.json``) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": str(out / "results.parquet"), "markdown": str(out / "results.md")}
    results.write_parquet(paths["results"])
    (out / "results.md").write_text(markdown(results, hardware))
    if hardware:
        prov = {k: results[k][0] for k in ("machine", "versions", "command", "git_revision", "created_utc")}
        flat = {k: v for k, v in hardware.items() if k not in ("variants", "profile")}
        (out / "lstm_profile.txt").write_text(str(hardware.get("profile", "")))
        flat.update({f"{n}_{k}": v for n, var in hardware["variants"].items() for k, v in var.items()})
        pl.DataFrame([{**flat, **prov}]).write_parquet(out / "hardware.parquet")
        (out / "hardware.json").write_text(json.dumps(hardware, indent=2))
        paths["hardware"] = str(out / "hardware.parquet")
    return paths
