"""Charts of the run report: matplotlib (Agg backend) figures returned as PNG bytes.

Every function takes plain arrays and dicts (the report sections do the reading) and returns the
PNG of one figure, ready to embed base64 in the HTML report::

    png = series_panels([SeriesPanel(title="SKU1/W1", history_dates=..., ...)])

One palette throughout: actuals in near-black, our forecast in blue with its 80% and 90% bands,
baselines in greys and oranges, nominal levels as dashed lines.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

ACTUAL = "#222222"
FORECAST = "#1f5fbf"
BAND_80 = "#8fb3e8"
BAND_90 = "#cfdcf3"
MODEL_COLORS = {
    "lstm": FORECAST,
    "seasonal_naive": "#9e9e9e",
    "seasonal_ma": "#e08a2e",
    "oracle": "#3a9e5c",
}
CYCLE = ["#1f5fbf", "#e08a2e", "#3a9e5c", "#9e9e9e", "#b5473a", "#7b5ea7", "#c9a227", "#3fa7b5"]
DPI = 96
# binding constraints in the plan chart: budget and capacity in the colours of their use bars
BINDING_COLORS = {
    "none": "#d9d9d9",
    "budget": FORECAST,
    "capacity": "#e08a2e",
    "moq": "#3a9e5c",
    "case_pack": "#7b5ea7",
    "shelf_life": "#b5473a",
}


def model_color(name: str, i: int) -> str:
    """Colour of a model or policy: fixed for known models, else from the cycle."""
    return MODEL_COLORS.get(name, CYCLE[i % len(CYCLE)])


def to_png(fig: Figure) -> bytes:
    """Render ``fig`` to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return buf.getvalue()


def _style(ax: plt.Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e6e6e6", linewidth=0.8)
    ax.set_axisbelow(True)


def _d(dates: Sequence[dt.date]) -> np.ndarray:
    """Dates as a ``datetime64[D]`` array (what matplotlib plots without converters)."""
    return np.asarray(dates, dtype="datetime64[D]")


def _cut(ax: plt.Axes, first: dt.date) -> None:
    """Dotted vertical line at the cutoff (the day before the first forecast date)."""
    ax.axvline(float(mdates.date2num(first - dt.timedelta(days=1))), color="#888888", ls=":", lw=1)


def _dates(ax: plt.Axes) -> None:
    loc = mdates.AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


@dataclass
class SeriesPanel:
    """One series in the forecast chart: history, the forecast fan and the actuals after the cutoff."""

    title: str
    history_dates: Sequence[dt.date]
    history: np.ndarray  # [T] units sold
    stockout: np.ndarray  # [T] bool: in_stock false (sales censored)
    forecast_dates: Sequence[dt.date]
    mean: np.ndarray  # [H]
    bands: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # level -> (lo, hi)
    actual_dates: Sequence[dt.date] = ()
    actual: np.ndarray = field(default_factory=lambda: np.zeros(0))  # after the cutoff
    actual_stockout: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # after the cutoff


def series_panels(panels: Sequence[SeriesPanel], ncols: int = 2) -> bytes:
    """Grid of forecast-vs-actual charts, one panel per series."""
    n = max(len(panels), 1)
    ncols = min(ncols, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax, p in zip(axes.flat, panels, strict=False):
        for level, colour in ((90, BAND_90), (80, BAND_80)):
            if level in p.bands:
                lo, hi = p.bands[level]
                ax.fill_between(_d(p.forecast_dates), lo, hi, color=colour, label=f"{level}% band", lw=0)
        ax.plot(_d(p.history_dates), p.history, color=ACTUAL, lw=1.2, label="units sold")
        out_dates = np.concatenate([_d(p.history_dates), _d(p.actual_dates)])
        out_vals = np.concatenate([p.history, p.actual])
        out_mask = np.concatenate(
            [p.stockout, p.actual_stockout, np.zeros(len(p.actual) - len(p.actual_stockout), bool)]
        )
        if out_mask.any():
            idx = np.flatnonzero(out_mask)
            ax.scatter(
                out_dates[idx],
                out_vals[idx],
                marker="x",
                color="#b5473a",
                s=18,
                label="stockout day",
                zorder=3,
            )
        ax.plot(_d(p.forecast_dates), p.mean, color=FORECAST, lw=1.6, label="forecast mean")
        if len(p.actual):
            ax.plot(_d(p.actual_dates), p.actual, "o-", color=ACTUAL, ms=3, lw=0.8, label="actual")
        if len(p.forecast_dates):
            _cut(ax, p.forecast_dates[0])
        ax.set_title(p.title, fontsize=10, loc="left")
        ax.set_ylim(bottom=0)
        _style(ax)
        _dates(ax)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    by_label: dict[str, Any] = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            by_label.setdefault(label, h)
    fig.legend(
        list(by_label.values()), list(by_label.keys()), loc="upper center", ncol=6, frameon=False, fontsize=9
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94 if nrows > 1 else 0.9))
    return to_png(fig)


def total_demand(
    history_dates: Sequence[dt.date],
    history: np.ndarray,
    forecast_dates: Sequence[dt.date],
    forecast: np.ndarray,
    actual_dates: Sequence[dt.date] = (),
    actual: np.ndarray | None = None,
) -> bytes:
    """Units sold over all series per day, and the sum of the forecast means after the cutoff."""
    fig, ax = plt.subplots(figsize=(12, 3.2))
    ax.plot(_d(history_dates), history, color=ACTUAL, lw=1.0, label="units sold, all series")
    if len(forecast_dates):
        ax.plot(_d(forecast_dates), forecast, color=FORECAST, lw=1.8, label="forecast (sum of means)")
        _cut(ax, forecast_dates[0])
    if actual is not None and len(actual):
        ax.plot(_d(actual_dates), actual, color=ACTUAL, lw=1.0, ls="--", label="units sold after the cutoff")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=9, loc="upper left")
    _style(ax)
    _dates(ax)
    return to_png(fig)


def grouped_bars(
    panels: Mapping[str, Mapping[str, Mapping[str, float]]], ylabel: str, reference: float | None = None
) -> bytes:
    """One panel per grouping: bars of ``value[group_value][model]``, models side by side.

    Args:
        panels: panel title -> group value -> model -> value.
        ylabel: axis label (the metric).
        reference: draw a dashed line at this value (1.0 for MASE: as good as the naive forecast).
    """
    n = max(len(panels), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 3.4), squeeze=False)
    models = sorted({m for groups in panels.values() for vals in groups.values() for m in vals})
    for ax, (title, groups) in zip(axes.flat, panels.items(), strict=False):
        names = list(groups)
        x = np.arange(len(names))
        width = 0.8 / max(len(models), 1)
        for i, m in enumerate(models):
            vals = [groups[g].get(m, np.nan) for g in names]
            ax.bar(x + (i - (len(models) - 1) / 2) * width, vals, width, label=m, color=model_color(m, i))
        if reference is not None:
            ax.axhline(reference, color="#888888", ls="--", lw=1)
        ax.set_xticks(x, names, rotation=30 if max((len(s) for s in names), default=0) > 8 else 0, ha="right")
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_ylabel(ylabel)
        _style(ax)
    axes.flat[0].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return to_png(fig)


def coverage_chart(
    overall: Mapping[str, Mapping[int, float]], by_group: Mapping[str, Mapping[int, float]], group_title: str
) -> bytes:
    """Empirical coverage of the 80% and 90% intervals against the nominal levels.

    Args:
        overall: model -> {80: coverage, 90: coverage}.
        by_group: group value -> {80: coverage, 90: coverage} for our model.
        group_title: title of the second panel.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for ax, data, title in ((axes[0], overall, "all series, by model"), (axes[1], by_group, group_title)):
        names = list(data)
        x = np.arange(len(names))
        for j, (level, colour) in enumerate(((80, BAND_80), (90, FORECAST))):
            vals = [data[k].get(level, np.nan) for k in names]
            ax.bar(x + (j - 0.5) * 0.38, vals, 0.38, color=colour, label=f"{level}% interval")
            ax.axhline(level / 100, color=colour, ls="--", lw=1)
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylim(0, 1.18)
        ax.set_ylabel("share of actuals inside")
        ax.set_title(title, fontsize=10, loc="left")
        _style(ax)
    axes[0].legend(frameon=False, fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    return to_png(fig)


@dataclass
class EventProfile:
    """Daily sales index around the occurrences of one event (1.0 = the pre-event baseline)."""

    event: str
    offsets: np.ndarray  # [D] days relative to the event day
    actual: dict[str, np.ndarray]  # occurrence label (year, region) -> [D] index (NaN where unknown)
    forecast: dict[str, np.ndarray] = field(default_factory=dict)  # occurrence -> [D] forecast index


def event_profiles(profiles: Sequence[EventProfile]) -> bytes:
    """One panel per event: the actual index per occurrence, and the forecast where it covers one."""
    n = max(len(profiles), 1)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.4), squeeze=False)
    for ax, p in zip(axes.flat, profiles, strict=False):
        for i, (label, vals) in enumerate(p.actual.items()):
            ax.plot(p.offsets, vals, color=CYCLE[(i + 1) % len(CYCLE)], lw=1.3, label=f"actual {label}")
        for label, vals in p.forecast.items():
            ax.plot(p.offsets, vals, color=FORECAST, lw=2.0, ls="--", label=f"forecast {label}")
        ax.axvline(0, color="#888888", ls=":", lw=1)
        ax.axhline(1.0, color="#bbbbbb", lw=0.8)
        ax.set_title(p.event, fontsize=10, loc="left")
        ax.set_xlabel("days from the event")
        ax.set_ylabel("units sold / pre-event baseline")
        ax.legend(frameon=False, fontsize=7)
        _style(ax)
    fig.tight_layout()
    return to_png(fig)


def kpi_bars(values: Mapping[str, Mapping[str, float]], titles: Mapping[str, str]) -> bytes:
    """One panel per KPI: a bar per policy.

    Args:
        values: kpi -> policy -> value.
        titles: kpi -> panel title (with its unit).
    """
    kpis = [k for k in titles if k in values]
    n = max(len(kpis), 1)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.2), squeeze=False)
    for ax, kpi in zip(axes.flat, kpis, strict=False):
        names = list(values[kpi])
        colours = [model_color(p.removeprefix("newsvendor_"), i) for i, p in enumerate(names)]
        vals = [values[kpi][p] for p in names]
        ax.bar(np.arange(len(names)), vals, color=colours)
        if not any(np.isfinite(v) and v != 0 for v in vals):
            ax.set_ylim(0, 1)
            ax.text(0.5, 0.5, "none", transform=ax.transAxes, ha="center", color="#888888")
        elif all(not np.isfinite(v) or v >= 0 for v in vals):
            ax.set_ylim(bottom=0)
        ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(titles[kpi], fontsize=10, loc="left")
        _style(ax)
    fig.tight_layout()
    return to_png(fig)


def plan_use(
    warehouses: Sequence[str],
    budget_use: np.ndarray,
    capacity_use: np.ndarray,
    binding: Mapping[str, np.ndarray],
) -> bytes:
    """Budget and capacity use per warehouse, and the binding constraint of its series.

    Args:
        warehouses: warehouse ids.
        budget_use: [W] order spend / budget (NaN = no budget limit).
        capacity_use: [W] stock + order volume / capacity (NaN = no limit).
        binding: constraint -> [W] count of series it bound.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    x = np.arange(len(warehouses))
    axes[0].bar(x - 0.2, budget_use * 100, 0.4, color=FORECAST, label="budget")
    axes[0].bar(x + 0.2, capacity_use * 100, 0.4, color="#e08a2e", label="capacity")
    axes[0].axhline(100, color="#b5473a", ls="--", lw=1)
    axes[0].set_xticks(x, warehouses)
    axes[0].set_ylabel("% used")
    axes[0].set_title("budget and capacity use", fontsize=10, loc="left")
    top = np.nanmax(np.concatenate([budget_use, capacity_use, [1.0]])) * 100
    axes[0].set_ylim(0, max(top * 1.25, 125.0))
    axes[0].legend(frameon=False, fontsize=8, ncol=2, loc="upper left")
    bottom = np.zeros(len(warehouses))
    for i, (name, counts) in enumerate(binding.items()):
        colour = BINDING_COLORS.get(name, CYCLE[i % len(CYCLE)])
        axes[1].bar(x, counts, 0.6, bottom=bottom, label=name, color=colour)
        bottom += counts
    axes[1].set_xticks(x, warehouses)
    axes[1].set_ylabel("series")
    axes[1].set_title("what set each order quantity", fontsize=10, loc="left")
    axes[1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in axes:
        _style(ax)
    fig.tight_layout()
    return to_png(fig)


SEVERITY_COLORS = {"high": "#b5473a", "medium": "#e08a2e", "low": "#c9c9c9"}


def exception_counts(reasons: Sequence[str], counts: Mapping[str, np.ndarray]) -> bytes:
    """Exceptions per reason, stacked by severity.

    Args:
        reasons: the reasons, in chart order.
        counts: severity -> [R] count per reason.
    """
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * len(reasons)))
    y = np.arange(len(reasons))
    left = np.zeros(len(reasons))
    for sev, vals in counts.items():
        if vals.sum():
            ax.barh(y, vals, 0.6, left=left, color=SEVERITY_COLORS.get(sev, "#888888"), label=sev)
        left += vals
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks(y, reasons)
    ax.invert_yaxis()
    ax.set_xlabel("series flagged")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _style(ax)
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.8)
    fig.tight_layout()
    return to_png(fig)
