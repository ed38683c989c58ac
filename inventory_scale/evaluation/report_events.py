"""Seasonal-event section of the run report: units sold around each event over its baseline.

For each event named in ``report.events`` (matched as a case-insensitive substring of the
calendar's event names) and each region a warehouse serves, the last four occurrences inside the
sales history get a daily index: units sold of the region over the mean of the 28 days before the
window (``report.event_before`` days before the event to ``report.event_after`` after). Where the
forecast horizon covers an occurrence, the forecast's index (sum of the forecast means over the
same baseline) is drawn beside the actual one.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import ReportConfig
from inventory_scale.evaluation import plots
from inventory_scale.evaluation.report_inputs import RunInputs
from inventory_scale.evaluation.report_sections import Section, Table, fmt, sales_window

BASELINE_DAYS = 28  # days before the event window whose mean is the index's 1.0


def _region_daily(inp: RunInputs, start: dt.date, end: dt.date) -> pl.DataFrame:
    """Units sold per (region, date) between ``start`` and ``end``."""
    whs = inp.data_table(S.WAREHOUSES)
    if whs is None:
        return pl.DataFrame(schema={S.REGION: pl.String, S.DATE: pl.Date, S.UNITS_SOLD: pl.Float64})
    return (
        sales_window(inp, start, end)
        .join(whs.lazy().select(S.WAREHOUSE_ID, S.REGION), on=S.WAREHOUSE_ID, how="inner")
        .group_by(S.REGION, S.DATE)
        .agg(pl.col(S.UNITS_SOLD).cast(pl.Float64).sum())
        .collect()
    )


def events(inp: RunInputs, cfg: ReportConfig) -> Section:
    """Seasonal event lift: units sold around each event against its pre-event baseline.

    The index of a day is its units sold (all series of the event's region) over the mean of the
    28 days before the window; the forecast's index (sum of the forecast means) is drawn where the
    forecast horizon covers an occurrence, with the actual after the cutoff when it has arrived.
    """
    sec = Section("events", "Seasonal events: forecast vs actual lift")
    cal, whs, cutoff = inp.data_table(S.CALENDAR), inp.data_table(S.WAREHOUSES), inp.cutoff()
    if cal is None or whs is None or inp.sales() is None:
        sec.missing.append(
            "No `calendar`, `warehouses` or `sales` in the dataset: event lift needs all three."
        )
        return sec
    pattern = "(?i)" + "|".join(_escape(e) for e in cfg.events)
    regions = whs[S.REGION].unique().to_list()
    occ = cal.filter(pl.col(S.EVENT_NAME).str.contains(pattern) & pl.col(S.REGION).is_in(regions))
    span = inp.sales().select(pl.col(S.DATE).min().alias("lo"), pl.col(S.DATE).max().alias("hi")).collect()  # type: ignore[union-attr]
    lo, hi = span["lo"][0], span["hi"][0]
    fc, info = inp.forecasts(), inp.forecast_info()
    fc_end = hi if info is None else max(hi, info.last)
    before, after, base_days = cfg.event_before, cfg.event_after, BASELINE_DAYS
    occ = occ.filter(
        (pl.col(S.DATE) - pl.duration(days=before + base_days) >= lo) & (pl.col(S.DATE) <= fc_end)
    ).sort(S.DATE)
    if occ.is_empty():
        sec.missing.append(
            f"No occurrence of {', '.join(cfg.events)} inside the sales history "
            f"(with {before + base_days} days before it)."
        )
        return sec
    daily = _region_daily(inp, lo, hi)
    fc_daily = (
        None
        if fc is None
        else fc.join(whs.lazy().select(S.WAREHOUSE_ID, S.REGION), on=S.WAREHOUSE_ID)
        .group_by(S.REGION, S.DS)
        .agg(pl.col(S.MEAN).cast(pl.Float64).sum())
        .collect()
    )
    offsets = np.arange(-before, after + 1)
    profiles, rows = [], []
    for name in cfg.events:
        prof = plots.EventProfile(event=name, offsets=offsets, actual={})
        mine = occ.filter(pl.col(S.EVENT_NAME).str.contains("(?i)" + _escape(name)))
        for day, region, full in (
            mine.select(S.DATE, S.REGION, S.EVENT_NAME).unique(maintain_order=True).tail(4).iter_rows()
        ):
            dates = [day + dt.timedelta(days=int(o)) for o in offsets]
            start = dates[0]
            reg = daily.filter(pl.col(S.REGION) == region)
            base = reg.filter(
                pl.col(S.DATE).is_between(start - dt.timedelta(days=base_days), start - dt.timedelta(days=1))
            )
            if base.height < base_days // 2 or float(base[S.UNITS_SOLD].mean() or 0) <= 0:  # type: ignore[arg-type]
                continue
            b = float(base[S.UNITS_SOLD].mean())  # type: ignore[arg-type]
            label = f"{day.year} {region}"
            act = _on(reg, S.DATE, S.UNITS_SOLD, dates) / b
            if np.isfinite(act).any():
                prof.actual[label] = act
            fc_lift = float("nan")
            if fc_daily is not None and cutoff is not None and cutoff < day <= fc_end:
                fvals = _on(fc_daily.filter(pl.col(S.REGION) == region), S.DS, S.MEAN, dates) / b
                prof.forecast[label] = np.where(np.array(dates) > cutoff, fvals, np.nan)
                fc_lift = float(prof.forecast[label][before])
            rows.append(
                [
                    full,
                    label,
                    fmt(b),
                    fmt(float(act[before]), 3),
                    fmt(float(np.nanmax(act[before:])) if np.isfinite(act[before:]).any() else None, 3),
                    fmt(fc_lift, 3),
                ]
            )
        if prof.actual or prof.forecast:
            profiles.append(prof)
    if not profiles:
        sec.missing.append("The events found have no sales baseline (zero sales before them).")
        return sec
    sec.images.append(
        (
            "Units sold around each event over the pre-event baseline (1.0); dashed: forecast",
            plots.event_profiles(profiles),
        )
    )
    sec.tables.append(
        Table(
            "Lift on the event day (x baseline) and the peak up to the days after",
            ["event", "occurrence", "baseline units/day", "actual lift", "actual peak", "forecast lift"],
            rows,
        )
    )
    if not any(p.forecast for p in profiles):
        horizon = 0 if info is None else info.horizon
        sec.text.append(
            f"The forecast window ({cutoff} + {horizon} days) covers none of these events: the chart "
            "shows how past occurrences lifted sales, the lift the model has to learn."
        )
    return sec


def _escape(text: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in text)


def _on(frame: pl.DataFrame, date_col: str, value_col: str, dates: list[dt.date]) -> np.ndarray:
    """``[len(dates)]`` values of ``value_col`` on ``dates`` (NaN where absent)."""
    lookup = dict(frame.select(date_col, value_col).iter_rows())
    return np.array([float(lookup[d]) if d in lookup else np.nan for d in dates])
