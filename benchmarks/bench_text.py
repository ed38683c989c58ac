"""Product text for cold start: text vs no text vs the category-average launch baseline.

Run (``make bench-text`` passes ``ARGS`` here)::

    .venv/bin/python benchmarks/bench_text.py

Synthetic marketplace (``--n-skus`` x ``--n-warehouses``, 730 days, ``--launch-share`` of SKUs
launched inside the history; titles carry the season: "Nordvik Winter Navy Wool Parka"). One
global LSTM per variant is trained at the cutoff (day ``--cutoff-day``) on the series with history,
with ``model.launch_share`` of every batch drawn from launch windows:

- ``text``: ``model.text_features=true`` (MiniLM embedding of title + description, log price);
- ``no_text``: the same model without it;
- ``category_avg``: ``models/launch_baseline.py`` (category x warehouse seasonal profile and
  day-of-week factors, scaled by the category's mean launch level), Poisson paths.

Cold start: every SKU launched after the cutoff (and at least 56 days before the data ends), in
every warehouse that sold it; each method forecasts its first 56 days after launch with no sales of
it read (the models see text, category, warehouse, price and calendar). Scores: MASE of the path
median and CRPS of the paths, scaled by the series' own seasonal-naive (m = 7) MAE over those 8
weeks (there is no in-sample history to scale by; series whose scale is 0 are left out and
counted), pooled (sum of errors / sum of scales: the headline) and as the mean of per-series
ratios, which tiny-scale intermittent launches dominate (there a forecast of zero, row ``zero``,
is hard to beat). Established SKUs: the 56 days after the cutoff, scaled by the in-sample
seasonal-naive MAE of the last year, text vs no text.

``--m5`` repeats the comparison on the M5 subset (``../shared/data``): whole items are held out as
"new" (their sales are dropped before training; they are forecast from the cutoff on). M5 has no
titles: the text is "<Category> item <ITEM_ID>" plus department / category names, so the text can
say little beyond the department.

Writes ``<out>/bench_text.json`` and ``.md`` and prints the Markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.cli import load_config
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.evaluation.scores import crps_from_samples, mase
from inventory_scale.forecast import ShardData, forecast_shard, list_series, load_shard, train_shard
from inventory_scale.forecast_cold import OFFSET, launch_paths, load_cold
from inventory_scale.models.launch_baseline import (
    fit_launch_baseline,
    launch_baseline_mean,
    launch_baseline_paths,
)
from inventory_scale.pipeline import run_generate

WINDOW = 56  # days after launch that are scored
SEASON = 7


def seasonal_naive_mae(y: np.ndarray, m: int = SEASON) -> np.ndarray:
    """``[N]`` mean |y_t - y_{t-m}| of each row (the MASE / CRPS scale)."""
    return np.abs(y[:, m:] - y[:, :-m]).mean(axis=1)


def score(paths: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """MASE (path median) and CRPS, pooled and per-series mean, over series with a positive scale.

    Pooled: sum over series of MAE (CRPS) / sum of scales, so a series with a tiny scale cannot
    dominate; the per-series mean (``*_mean``) is the textbook average of ratios.
    """
    ok = scale > 0
    point = np.median(paths[ok], axis=1)
    mae = mase(actual[ok], point, np.ones(int(ok.sum())))
    crps = crps_from_samples(paths[ok], actual[ok])
    return {
        "mase": round(float(mae.sum() / scale[ok].sum()), 4),
        "crps": round(float(crps.sum() / scale[ok].sum()), 4),
        "mase_mean": round(float((mae / scale[ok]).mean()), 4),
        "crps_mean": round(float((crps / scale[ok]).mean()), 4),
        "series": int(ok.sum()),
        "left_out_zero_scale": int((~ok).sum()),
    }


def dense_actuals(sales: pl.DataFrame, keys: pl.DataFrame, start: list[dt.date], days: int) -> np.ndarray:
    """``[N, days]`` units sold from each series' ``start`` (0 where no row)."""
    grid = (
        keys.select(*S.SERIES_KEY)
        .with_row_index("_i")
        .with_columns(pl.Series("_start", start, dtype=pl.Date), pl.int_ranges(0, days).alias("_h"))
        .explode("_h")
        .with_columns((pl.col("_start") + pl.duration(days=pl.col("_h"))).alias(S.DATE))
        .join(sales.select(*S.SERIES_KEY, S.DATE, S.UNITS_SOLD), on=[*S.SERIES_KEY, S.DATE], how="left")
        .sort("_i", "_h")
    )
    return grid[S.UNITS_SOLD].fill_null(0.0).to_numpy().astype(np.float64).reshape(keys.height, days)


def variant_cfg(base: Config, text: bool, args: argparse.Namespace) -> Config:
    model = dataclasses.replace(
        base.model,
        text_features=text,
        launch_share=args.model_launch_share,
        hidden_size=args.hidden,
        num_layers=1,
        batch_size=256,
        learning_rate=args.lr,
        dropout=0.0,
    )
    trainer = dataclasses.replace(base.trainer, max_epochs=args.epochs, steps_per_epoch=args.steps)
    return dataclasses.replace(base, model=model, trainer=trainer)


def run_case(
    name: str,
    base: Config,
    history: ShardData,
    cutoff: dt.date,
    cold: pl.DataFrame,
    cold_data: ShardData,
    all_sales: pl.DataFrame,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Train text / no-text at ``cutoff``; score cold and established series; plus the baseline."""
    launch = cold[S.LAUNCH_DATE].to_list()
    cold_actual = dense_actuals(all_sales, cold, launch, WINDOW)
    cold_scale = seasonal_naive_mae(cold_actual)
    est_keys = history.series.sort(*S.SERIES_KEY)
    est_actual = dense_actuals(all_sales, est_keys, [cutoff + dt.timedelta(days=1)] * est_keys.height, WINDOW)
    hist_wide = dense_actuals(
        history.sales, est_keys, [cutoff - dt.timedelta(days=364)] * est_keys.height, 365
    )
    est_scale = seasonal_naive_mae(hist_wide)
    out: dict[str, Any] = {"case": name, "cutoff": cutoff.isoformat(), "cold_series": cold.height}
    out["established_series"] = est_keys.height
    rng = np.random.default_rng(args.seed)
    fit = fit_launch_baseline(history.sales, history.products, cutoff, launch_days=WINDOW)
    mean = launch_baseline_mean(fit, cold, cold_data.products, launch, WINDOW)
    out["cold"] = {
        "category_avg": score(launch_baseline_paths(mean, args.num_paths, rng), cold_actual, cold_scale),
        "zero": score(np.zeros((cold.height, 1, WINDOW)), cold_actual, cold_scale),  # always 0 units
    }
    out["established"] = {}
    out["train_seconds"] = {}
    for text in (False, True):
        label = "text" if text else "no_text"
        cfg = variant_cfg(base, text, args)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            module, _, info = train_shard(history, cfg, cutoff=cutoff, shard_id=0, ckpt_dir=tmp)
        out["train_seconds"][label] = round(time.perf_counter() - t0, 1)
        out.setdefault("val_loss", {})[label] = info.get("val_loss")
        _, rel = launch_paths(module, cold, cold_data, cfg, cutoff, shard_id=0)
        out["cold"][label] = score(rel[:, :, :WINDOW], cold_actual, cold_scale)
        frame, paths = forecast_shard(module, history, cfg, cutoff=cutoff, shard_id=0)
        order = frame.select(*S.SERIES_KEY).unique(maintain_order=True)
        idx = order.with_row_index("_p").join(est_keys.with_row_index("_e"), on=list(S.SERIES_KEY))
        aligned = np.empty_like(paths)
        aligned[idx["_e"].to_numpy()] = paths[idx["_p"].to_numpy()]
        out["established"][label] = score(aligned[:, :, :WINDOW], est_actual, est_scale)
        print(
            f"[bench-text] {name} {label}: cold {out['cold'][label]} established {out['established'][label]}",
            flush=True,
        )
    base_mase = out["cold"]["category_avg"]["mase"]
    out["cold_mase_vs_category_avg"] = {
        k: round(v["mase"] / base_mase - 1.0, 4)
        for k, v in out["cold"].items()
        if k not in ("category_avg", "zero")
    }
    return out


def cold_frame(products: pl.DataFrame, sales: pl.DataFrame, cutoff: dt.date, last: dt.date) -> pl.DataFrame:
    """Series of SKUs launched in ``(cutoff, last - 55]``, in every warehouse that sold them."""
    new = products.filter(
        (pl.col(S.LAUNCH_DATE) > cutoff) & (pl.col(S.LAUNCH_DATE) <= last - dt.timedelta(days=WINDOW - 1))
    ).select(S.SKU_ID, S.LAUNCH_DATE)
    pairs = sales.join(new, on=S.SKU_ID, how="semi").select(*S.SERIES_KEY).unique()
    out = pairs.join(new, on=S.SKU_ID).sort(*S.SERIES_KEY)
    return out.with_columns(
        (pl.col(S.LAUNCH_DATE) - pl.lit(cutoff)).dt.total_days().cast(pl.Int64).alias(OFFSET)
    )


def synthetic_case(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    root = out_dir / "data" / "synthetic"
    overrides = [
        f"data.root={root}",
        f"data.n_skus={args.n_skus}",
        f"data.n_warehouses={args.n_warehouses}",
        "data.days=730",
        f"data.launch_share={args.launch_share}",
        f"data.horizon={WINDOW}",
        "data.context_length=112",
        f"forecast.num_paths={args.num_paths}",
        f"text.cache={out_dir / 'text_cache'}",
        f"seed={args.seed}",
    ]
    base = load_config(overrides)
    if not io.exists(io.join(str(root), S.SALES.name)):
        run_generate(base)
    products = io.read_table(str(root), S.PRODUCTS)
    sales = io.read_table(str(root), S.SALES)
    start = sales[S.DATE].min()
    cutoff = start + dt.timedelta(days=args.cutoff_day)
    history = load_shard(str(root), list_series(str(root), cutoff), cutoff)
    cold = cold_frame(products, sales, cutoff, sales[S.DATE].max())
    return run_case("synthetic", base, history, cutoff, cold, load_cold(str(root), cold), sales, args)


def m5_case(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """M5: hold out ``--m5-holdout`` of the items as new (no history), forecast from the cutoff."""
    base = load_config(
        [
            "data=m5",
            f"data.horizon={WINDOW}",
            f"forecast.num_paths={args.num_paths}",
            f"text.cache={out_dir / 'text_cache'}",
            f"seed={args.seed}",
        ]
    )
    root = base.data.root
    if not io.exists(io.join(root, S.SALES.name)):
        run_generate(base)
    products = io.read_table(root, S.PRODUCTS)
    sales = io.read_table(root, S.SALES)
    cutoff = sales[S.DATE].max() - dt.timedelta(days=WINDOW)
    rng = np.random.default_rng(args.seed)
    skus = products[S.SKU_ID].to_numpy()
    held = set(rng.choice(skus, size=max(1, int(len(skus) * args.m5_holdout)), replace=False).tolist())
    series = list_series(root, cutoff).filter(~pl.col(S.SKU_ID).is_in(list(held)))
    history = load_shard(root, series, cutoff)
    new_products = products.with_columns(
        pl.when(pl.col(S.SKU_ID).is_in(list(held)))
        .then(pl.lit(cutoff + dt.timedelta(days=1)))
        .otherwise(pl.col(S.LAUNCH_DATE))
        .alias(S.LAUNCH_DATE)
    )
    pairs = sales.filter(pl.col(S.SKU_ID).is_in(list(held))).select(*S.SERIES_KEY).unique()
    cold = (
        pairs.join(new_products.select(S.SKU_ID, S.LAUNCH_DATE), on=S.SKU_ID)
        .sort(*S.SERIES_KEY)
        .with_columns(pl.lit(1, pl.Int64).alias(OFFSET))
    )
    cold_data = load_cold(root, cold)
    return run_case("m5", base, history, cutoff, cold, cold_data, sales, args)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# bench-text",
        "",
        f"machine: {result['machine']}",
        f"command: `{result['command']}`",
        "",
        "| case | series | method | MASE (pooled) | CRPS (pooled) | MASE (mean) | CRPS (mean) | scored "
        "| left out (scale 0) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in result["cases"]:
        for part in ("cold", "established"):
            for method, s in case[part].items():
                cells = [
                    case["case"],
                    part,
                    method,
                    s["mase"],
                    s["crps"],
                    s["mase_mean"],
                    s["crps_mean"],
                    s["series"],
                    s["left_out_zero_scale"],
                ]
                lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    for case in result["cases"]:
        lines.append("")
        lines.append(
            f"{case['case']}: cutoff {case['cutoff']}, cold-start MASE vs category average "
            f"{json.dumps(case['cold_mase_vs_category_avg'])}, "
            f"train seconds {json.dumps(case['train_seconds'])}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-skus", type=int, default=1500)
    parser.add_argument("--n-warehouses", type=int, default=2)
    parser.add_argument("--launch-share", type=float, default=0.35, help="data.launch_share of the generator")
    parser.add_argument("--cutoff-day", type=int, default=430)
    parser.add_argument("--model-launch-share", type=float, default=0.2, help="model.launch_share")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--num-paths", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--m5", action="store_true", help="also run the M5 hold-out-items case")
    parser.add_argument("--m5-holdout", type=float, default=0.25)
    parser.add_argument("--out", default="outputs/bench_text")
    args = parser.parse_args()
    out_dir = Path(args.out).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    mem_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / (1 << 30)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), {mem_gib:.0f} GiB RAM, no GPU used",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": vars(args),
        "cases": [synthetic_case(args, out_dir)],
    }
    if args.m5:
        result["cases"].append(m5_case(args, out_dir))
    (out_dir / "bench_text.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out_dir / "bench_text.md").write_text(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
