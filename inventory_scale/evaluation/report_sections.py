"""The sections of the run report: each reads its inputs, computes a few numbers, draws its chart.

Every builder takes the run's :class:`~inventory_scale.evaluation.report_inputs.RunInputs` and the
``report`` config and returns a :class:`Section` (title, sentences, tables, PNG images). A section
whose input is absent says so in ``missing`` and carries no image; it never raises for that.

Sections, in report order: ``overview`` (the run at a glance), ``forecasts`` (forecast vs actual
with 80/90% bands for chosen and worst series), ``accuracy`` (by category, warehouse and velocity
class against the baselines), ``calibration`` (interval coverage), ``events`` (seasonal event
lift; in ``report_events.py``), ``policy`` and ``plans`` (in ``report_inventory.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import ReportConfig
from inventory_scale.evaluation import plots
from inventory_scale.evaluation.report_inputs import RunInputs

log = logging.getLogger(__name__)

OURS = "lstm"
GROUPS: tuple[tuple[str, str], ...] = (
    (S.CATEGORY, "by category"),
    (S.WAREHOUSE_ID, "by warehouse"),
    (S.VELOCITY_CLASS, "by velocity class"),
)
BANDS: dict[int, tuple[float, float]] = {80: (0.1, 0.9), 90: (0.05, 0.95)}
TOTAL_DAYS = 365  # history shown in the overview chart


@dataclass
class Table:
    """A small table: a caption, a header and rows of already formatted cells."""

    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """One report section; ``missing`` names absent inputs in a sentence each."""

    key: str
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    images: list[tuple[str, bytes]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def fmt(x: float | None, digits: int = 3) -> str:
    """A number for a table cell ("-" for None / NaN), thousands separated when large."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    if abs(x) >= 1000 or float(x).is_integer():
        return f"{x:,.0f}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:,.{max(digits - 2, 0)}f}"


def pct(x: float | None) -> str:
    """A share as a percentage ("-" for None / NaN)."""
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def series_name(sku: str, wh: str) -> str:
    """``sku_id/warehouse_id``, the way ``report.series`` names a series."""
    return f"{sku}/{wh}"


def sales_window(inp: RunInputs, start: dt.date, end: dt.date) -> pl.LazyFrame:
    """Lazy sales rows with ``start <= date <= end`` (aggregate or pick series before collecting)."""
    lf = inp.sales()
    if lf is None:
        return S.empty_frame(S.SALES).lazy()
    return lf.filter(pl.col(S.DATE).is_between(start, end))


def overview(inp: RunInputs, cfg: ReportConfig) -> Section:
    """The run at a glance: dataset, cutoff, stages done, training stats and total demand."""
    sec = Section("overview", "Run overview")
    cutoff, info, fc = inp.cutoff(), inp.forecast_info(), inp.forecasts()
    sec.text.append(
        f"Dataset `{inp.data_root}`; forecast origin (cutoff) {cutoff or 'unknown'}; "
        + ("no forecasts." if info is None else f"{info.series:,} series forecast {info.horizon} days ahead.")
    )
    rows = [
        [stage, m.get("created_utc", "-"), str(m.get("git_revision", "-"))[:12], m.get("config_hash", "-")]
        for stage, m in inp.manifests.items()
    ]
    if rows:
        sec.tables.append(
            Table("Stages found in the run directory", ["stage", "finished (UTC)", "git", "config"], rows)
        )
    else:
        sec.missing.append("No stage manifests in the run directory: nothing has finished there yet.")
    stats = inp.train_stats()
    if stats:
        get = lambda k: np.array([float(s.get(k, np.nan)) for s in stats])  # noqa: E731
        sec.tables.append(
            Table(
                "Training (one global LSTM per shard)",
                [
                    "shards",
                    "series",
                    "epochs (mean)",
                    "val loss (mean)",
                    "windows/s (mean)",
                    "fit seconds (sum)",
                ],
                [
                    [
                        str(len(stats)),
                        fmt(float(np.nansum(get("series")))),
                        fmt(float(np.nanmean(get("epochs")))),
                        fmt(float(np.nanmean(get("val_loss")))),
                        fmt(float(np.nanmean(get("windows_per_s")))),
                        fmt(float(np.nansum(get("fit_seconds")))),
                    ]
                ],
            )
        )
    if cutoff is None or inp.sales() is None:
        sec.missing.append("No sales or no cutoff: the total demand chart needs both.")
        return sec
    end = cutoff if info is None else max(info.last, cutoff)
    sales = sales_window(inp, cutoff - dt.timedelta(days=TOTAL_DAYS), end)
    daily = sales.group_by(S.DATE).agg(pl.col(S.UNITS_SOLD).sum()).sort(S.DATE).collect()
    hist, after = daily.filter(pl.col(S.DATE) <= cutoff), daily.filter(pl.col(S.DATE) > cutoff)
    total = (
        pl.DataFrame(schema={S.DS: pl.Date, S.MEAN: pl.Float64})
        if fc is None
        else fc.group_by(S.DS).agg(pl.col(S.MEAN).cast(pl.Float64).sum()).sort(S.DS).collect()
    )
    png = plots.total_demand(
        hist[S.DATE].to_list(),
        hist[S.UNITS_SOLD].to_numpy(),
        total[S.DS].to_list(),
        total[S.MEAN].to_numpy(),
        after[S.DATE].to_list(),
        after[S.UNITS_SOLD].to_numpy(),
    )
    sec.images.append(("Units sold per day over all series, and the forecast total after the cutoff", png))
    if total.height:
        n = min(28, total.height)
        before = float(hist.tail(n)[S.UNITS_SOLD].sum())
        ahead = float(total.head(n)[S.MEAN].sum())
        change = ahead / before - 1 if before > 0 else float("nan")
        sec.text.append(
            f"The forecast expects {fmt(ahead)} units over the next {n} days against {fmt(before)} "
            f"sold over the last {n} ({'+' if change >= 0 else ''}{pct(change)})."
        )
    return sec


def _chosen(inp: RunInputs, cfg: ReportConfig, keys: pl.DataFrame, cutoff: dt.date) -> list[tuple[str, str]]:
    if cfg.series:
        return [tuple(s.split("/", 1)) for s in cfg.series]  # type: ignore[misc]
    recent = sales_window(inp, cutoff - dt.timedelta(days=27), cutoff)
    top = (
        recent.join(keys.lazy(), on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
        .group_by(S.SKU_ID, S.WAREHOUSE_ID)
        .agg(pl.col(S.UNITS_SOLD).sum())
        .sort(S.UNITS_SOLD, S.SKU_ID, S.WAREHOUSE_ID, descending=[True, False, False])
        .head(cfg.n_top)
        .collect()
    )
    return list(top.select(S.SKU_ID, S.WAREHOUSE_ID).iter_rows())


def worst_series(inp: RunInputs, cfg: ReportConfig, keys: pl.DataFrame) -> pl.DataFrame:
    """Series the backtest scored worst on ``report.metric`` (mean over cutoffs), worst first.

    Only series in the top half by dollar sales (the WRMSSE weight) compete, so that a slow mover
    whose tiny scale inflates a scaled error does not hide the series that matter.
    """
    series = inp.backtest_series()
    if series is None or cfg.metric not in series.columns:
        return pl.DataFrame(schema={S.SKU_ID: pl.String, S.WAREHOUSE_ID: pl.String, cfg.metric: pl.Float64})
    value = pl.col(cfg.metric).abs() if cfg.metric == S.BIAS else pl.col(cfg.metric)
    weight = pl.col(S.WEIGHT).mean() if S.WEIGHT in series.columns else pl.lit(1.0)
    scored = (
        series.filter(pl.col(S.MODEL) == OURS)
        .join(keys, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
        .group_by(S.SKU_ID, S.WAREHOUSE_ID)
        .agg(value.mean().alias(cfg.metric), weight.alias("_weight"))
        .drop_nulls(cfg.metric)
    )
    material = scored.filter(pl.col("_weight") >= pl.col("_weight").median())
    return material.sort(cfg.metric, S.SKU_ID, S.WAREHOUSE_ID, descending=[True, False, False]).drop(
        "_weight"
    )


def forecasts(inp: RunInputs, cfg: ReportConfig) -> Section:
    """Forecast vs actual with 80/90% bands for the chosen and the worst series."""
    sec = Section("forecasts", "Forecast vs actual: chosen and worst series")
    info, keys, cutoff = inp.forecast_info(), inp.forecast_series(), inp.cutoff()
    if info is None or keys is None or cutoff is None or inp.sales() is None:
        sec.missing.append("No `forecasts/` in the run (or no sales): run `inventory-scale forecast` first.")
        return sec
    chosen = _chosen(inp, cfg, keys, cutoff)
    worst = worst_series(inp, cfg, keys)
    scores = {(r[0], r[1]): float(r[2]) for r in worst.iter_rows()}
    picked = [(k, "chosen" if cfg.series else "top seller") for k in chosen] + [
        (k, "worst of the top-half sellers")
        for k in list(scores)[: cfg.n_worst + len(chosen)]
        if k not in chosen
    ][: cfg.n_worst]
    if not scores and cfg.n_worst:
        sec.missing.append(
            "No `backtest/series/`: the worst series cannot be named (run `inventory-scale backtest`)."
            if inp.backtest_series() is None
            else f"The backtest scored no `{OURS}` series on {cfg.metric} (backtest.models): the worst "
            "series cannot be named."
        )
    products = inp.data_table(S.PRODUCTS)
    cats = {} if products is None else dict(products.select(S.SKU_ID, S.CATEGORY).iter_rows())
    shown = pl.DataFrame([k for k, _ in picked], schema=[S.SKU_ID, S.WAREHOUSE_ID], orient="row")
    fc = info.scan.join(shown.lazy(), on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi").collect()
    start = cutoff - dt.timedelta(days=cfg.history_days - 1)
    sales = (
        sales_window(inp, start, info.last)
        .join(shown.lazy(), on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
        .collect()
    )
    panels, rows = [], []
    n_days = min(28, info.horizon)
    for (sku, wh), role in picked:
        f = fc.filter((pl.col(S.SKU_ID) == sku) & (pl.col(S.WAREHOUSE_ID) == wh)).sort(S.DS)
        if f.is_empty():
            sec.missing.append(f"Series {series_name(sku, wh)} has no forecast in this run.")
            continue
        s = sales.filter((pl.col(S.SKU_ID) == sku) & (pl.col(S.WAREHOUSE_ID) == wh)).sort(S.DATE)
        hist, after = s.filter(pl.col(S.DATE) <= cutoff), s.filter(pl.col(S.DATE) > cutoff)
        bands = {
            lvl: (f[S.quantile_column(lo)].to_numpy(), f[S.quantile_column(hi)].to_numpy())
            for lvl, (lo, hi) in BANDS.items()
            if S.quantile_column(lo) in f.columns and S.quantile_column(hi) in f.columns
        }
        score = scores.get((sku, wh))
        title = f"{series_name(sku, wh)} ({cats.get(sku, '?')}): {role}" + (
            f", backtest {cfg.metric.upper()} {fmt(score)}" if score is not None else ""
        )
        panels.append(
            plots.SeriesPanel(
                title=title,
                history_dates=hist[S.DATE].to_list(),
                history=hist[S.UNITS_SOLD].to_numpy(),
                stockout=~hist[S.IN_STOCK].to_numpy(),
                forecast_dates=f[S.DS].to_list(),
                mean=f[S.MEAN].to_numpy(),
                bands=bands,
                actual_dates=after[S.DATE].to_list(),
                actual=after[S.UNITS_SOLD].to_numpy(),
                actual_stockout=~after[S.IN_STOCK].to_numpy(),
            )
        )
        inside = "-"
        if after.height and 90 in bands:
            j = f.join(after.rename({S.DATE: S.DS}), on=S.DS, how="inner")
            lo, hi = S.quantile_column(0.05), S.quantile_column(0.95)
            inside = pct(
                float(j.select(pl.col(S.UNITS_SOLD).is_between(pl.col(lo), pl.col(hi)).mean()).item())
            )
        rows.append(
            [
                series_name(sku, wh),
                cats.get(sku, "?"),
                role,
                fmt(score),
                fmt(float(hist[S.UNITS_SOLD].tail(n_days).sum())),
                fmt(float(f[S.MEAN].head(n_days).sum())),
                str(after.height),
                inside,
            ]
        )
    if panels:
        sec.images.append(
            (
                "Forecast mean with 80% and 90% bands after the cutoff (dotted line)",
                plots.series_panels(panels),
            )
        )
        sec.tables.append(
            Table(
                "Series shown",
                [
                    "series",
                    "category",
                    "why shown",
                    cfg.metric,
                    f"sold last {n_days} d",
                    f"forecast next {n_days} d",
                    "days of actuals after cutoff",
                    "inside 90% band",
                ],
                rows,
            )
        )
    if not sales.filter(pl.col(S.DATE) > cutoff).height:
        sec.text.append(
            "No sales after the cutoff yet: the charts show the history leading to it. When new sales "
            "arrive, `inventory-scale monitor` compares them with this forecast."
        )
    return sec


def _mean_over_cutoffs(metrics: pl.DataFrame) -> pl.DataFrame:
    return metrics.group_by(S.MODEL, S.GROUP, S.GROUP_VALUE, S.METRIC).agg(pl.col(S.VALUE).mean())


def accuracy(inp: RunInputs, cfg: ReportConfig) -> Section:
    """Accuracy of ours and the baselines by category, warehouse and velocity class."""
    sec = Section("accuracy", "Accuracy against the baselines")
    metrics = inp.backtest_metrics()
    if metrics is None:
        sec.missing.append(
            "No `backtest/metrics/`: run `inventory-scale backtest` for accuracy against the baselines."
        )
        return sec
    m = _mean_over_cutoffs(metrics.filter(pl.col(S.VALUE).is_not_null()))
    n_cut = metrics[S.CUTOFF].n_unique()
    panels: dict[str, dict[str, dict[str, float]]] = {}
    for group, title in GROUPS:
        part = m.filter((pl.col(S.GROUP) == group) & (pl.col(S.METRIC) == cfg.metric)).sort(S.GROUP_VALUE)
        if part.height:
            panels[title] = {}
            for model, gv, val in part.select(S.MODEL, S.GROUP_VALUE, S.VALUE).iter_rows():
                panels[title].setdefault(str(gv), {})[model] = float(val)
    if panels:
        ref = 1.0 if cfg.metric == S.MASE else None
        sec.images.append(
            (
                f"{cfg.metric.upper()} (lower is better) by group, mean over {n_cut} cutoff(s)",
                plots.grouped_bars(panels, cfg.metric.upper(), ref),
            )
        )
    overall = (
        m.filter(pl.col(S.GROUP) == "all").pivot(on=S.METRIC, index=S.MODEL, values=S.VALUE).sort(S.MODEL)
    )
    cols = [c for c in S.SUMMARY_METRICS if c in overall.columns]
    sec.tables.append(
        Table(
            f"All series, mean over {n_cut} cutoff(s)",
            ["model", *cols],
            [[r[S.MODEL], *(fmt(r[c]) for c in cols)] for r in overall.iter_rows(named=True)],
        )
    )
    scores = dict(overall.select(S.MODEL, cfg.metric).iter_rows()) if cfg.metric in overall.columns else {}
    base = {k: v for k, v in scores.items() if k not in (OURS, "oracle") and v is not None}
    if OURS in scores and scores[OURS] is not None and base:
        best = min(base, key=lambda k: abs(base[k]) if cfg.metric == S.BIAS else base[k])
        rel = scores[OURS] / base[best] - 1 if base[best] else float("nan")
        verdict = "better" if rel < 0 else "worse"
        sec.text.append(
            f"Our LSTM scores {cfg.metric.upper()} {fmt(scores[OURS])} against {fmt(base[best])} for the "
            f"best baseline ({best}): {pct(abs(rel))} {verdict}."
        )
    return sec


def calibration(inp: RunInputs, cfg: ReportConfig) -> Section:
    """Coverage of the 80% and 90% intervals against their nominal levels."""
    sec = Section("calibration", "Calibration: interval coverage")
    metrics = inp.backtest_metrics()
    if metrics is None:
        sec.missing.append(
            "No `backtest/metrics/`: coverage comes from the backtest (`inventory-scale backtest`)."
        )
        return sec
    m = _mean_over_cutoffs(metrics.filter(pl.col(S.METRIC).is_in([S.COVERAGE_80, S.COVERAGE_90])))
    levels = {S.COVERAGE_80: 80, S.COVERAGE_90: 90}

    def by(frame: pl.DataFrame, key: str) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for k, metric, val in frame.select(key, S.METRIC, S.VALUE).iter_rows():
            if val is not None:
                out.setdefault(str(k), {})[levels[metric]] = float(val)
        return out

    overall = by(m.filter(pl.col(S.GROUP) == "all").sort(S.MODEL), S.MODEL)
    ours = OURS if OURS in overall else next(iter(overall), OURS)
    groups = by(
        m.filter((pl.col(S.GROUP) == S.VELOCITY_CLASS) & (pl.col(S.MODEL) == ours)).sort(S.GROUP_VALUE),
        S.GROUP_VALUE,
    )
    if not overall:
        sec.missing.append("The backtest has no coverage metrics (no quantile columns were scored).")
        return sec
    sec.images.append(
        (
            "Share of actuals inside the 80% and 90% intervals (dashed: nominal)",
            plots.coverage_chart(overall, groups, f"{ours}, by velocity class"),
        )
    )
    rows = [[k, pct(v.get(80)), pct(v.get(90))] for k, v in overall.items()]
    sec.tables.append(Table("Coverage, all series", ["model", "80% interval", "90% interval"], rows))
    if ours in overall and 90 in overall[ours]:
        c = overall[ours][90]
        sec.text.append(f"The {ours} 90% interval holds {pct(c)} of actuals: {_coverage_judge(c)}.")
    pit = _mean_over_cutoffs(metrics.filter(pl.col(S.METRIC).is_in([S.PIT_COVERAGE_80, S.PIT_COVERAGE_90])))
    pit_rows = (
        pit.filter(pl.col(S.GROUP) == "all")
        .pivot(on=S.METRIC, index=S.MODEL, values=S.VALUE)
        .sort(S.MODEL)
        .filter(pl.any_horizontal(pl.exclude(S.MODEL).is_not_null()))
    )
    if pit_rows.height and {S.PIT_COVERAGE_80, S.PIT_COVERAGE_90} <= set(pit_rows.columns):
        sec.tables.append(
            Table(
                "Randomized-PIT coverage (counts: interval end-points not counted as covered)",
                ["model", "80% interval", "90% interval"],
                [
                    [r[S.MODEL], pct(r[S.PIT_COVERAGE_80]), pct(r[S.PIT_COVERAGE_90])]
                    for r in pit_rows.iter_rows(named=True)
                ],
            )
        )
        pit90 = dict(pit_rows.select(S.MODEL, S.PIT_COVERAGE_90).iter_rows()).get(ours)
        if pit90 is not None:
            sec.text.append(
                f"Counting the end-points of the {ours} intervals by the randomized PIT, the 90% interval "
                f"covers {pct(pit90)}: {_coverage_judge(pit90)}."
            )
    return sec


def _coverage_judge(c: float) -> str:
    """Verdict on a 90% interval's coverage ``c``."""
    if abs(c - 0.9) <= 0.03:
        return "about right"
    return "too narrow: intervals understate risk" if c < 0.9 else "too wide: more safety stock than needed"
