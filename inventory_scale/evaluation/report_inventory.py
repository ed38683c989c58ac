"""Inventory sections of the run report: the policy A/B backtest and the per-warehouse plans.

``policy`` reads ``backtest/policy.parquet`` (totals over warehouses, ``warehouse_id = "all"``)
and compares the policies on profit, fill rate, stock and outdating, each against the first policy
listed. ``plans`` reads ``plans/`` with the dataset's products, warehouses and inventory: per
warehouse the budget and capacity used, the constraints that bound, and the largest orders with
the optimizer's reason for each. ``exceptions`` shows the last ``inventory-scale monitor`` run:
counts per reason and severity and the most severe rows with their suggested actions.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import ReportConfig
from inventory_scale.evaluation import plots
from inventory_scale.evaluation.report_inputs import RunInputs
from inventory_scale.evaluation.report_sections import Section, Table, fmt, pct

# KPIs charted, with their panel titles; the table adds the rest of POLICY_TABLE.
POLICY_CHART: dict[str, str] = {
    S.PROFIT: "profit",
    S.FILL_RATE: "fill rate",
    S.AVG_STOCK_VALUE: "average stock value",
    S.OUTDATED: "outdated units",
}
POLICY_TABLE: tuple[str, ...] = (
    S.PROFIT,
    S.REVENUE,
    S.FILL_RATE,
    S.CYCLE_SERVICE_LEVEL,
    S.LOST_SALES,
    S.OUTDATED,
    S.AVG_STOCK_VALUE,
    S.TURNS,
    S.OVERFLOW_M3_DAYS,
)
SHARES = (S.FILL_RATE, S.CYCLE_SERVICE_LEVEL)
LEAD_DEMAND = "_lead_demand"  # intermediate: forecast mean demand over the lead time
STOCK_LEFT = "_stock_left"  # intermediate: position less lead-time demand, >= 0


def policy(inp: RunInputs, cfg: ReportConfig) -> Section:
    """Backtest policy comparison: profit, fill rate, stock and outdating per policy."""
    sec = Section("policy", "Policy A/B backtest")
    kpis = inp.policy()
    if kpis is None or kpis.is_empty():
        sec.missing.append(
            "No `backtest/policy.parquet`: run `inventory-scale backtest backtest.policies=[newsvendor,...]`."
        )
        return sec
    order = list(dict.fromkeys(kpis[S.POLICY].to_list()))
    totals = (
        kpis.filter(pl.col(S.WAREHOUSE_ID) == S.ALL_WAREHOUSES)
        .group_by(S.POLICY, S.KPI)
        .agg(pl.col(S.VALUE).mean())
    )
    n_cut = kpis[S.CUTOFF].n_unique()
    values: dict[str, dict[str, float]] = {}
    for pol, kpi, val in totals.iter_rows():
        values.setdefault(kpi, {})[pol] = float(val) if val is not None else float("nan")
    for kpi in values:
        values[kpi] = {p: values[kpi].get(p, float("nan")) for p in order}
    sec.images.append(
        (f"Policy KPIs, all warehouses, mean over {n_cut} cutoff(s)", plots.kpi_bars(values, POLICY_CHART))
    )
    cols = [k for k in POLICY_TABLE if k in values]
    ref = order[0]
    rows = []
    for p in order:
        cells = [pct(values[k][p]) if k in SHARES else fmt(values[k][p], 4) for k in cols]
        lift = (
            values[S.PROFIT][p] / values[S.PROFIT][ref] - 1
            if S.PROFIT in values and values[S.PROFIT][ref]
            else float("nan")
        )
        rows.append([p, *cells, "-" if p == ref else pct(lift)])
    header = ["policy", *(c.replace("_", " ") for c in cols), f"profit vs {ref}"]
    sec.tables.append(Table("Per policy (mean over cutoffs)", header, rows))
    if S.PROFIT in values and len(order) > 1:
        best = max(order, key=lambda p: values[S.PROFIT][p] if np.isfinite(values[S.PROFIT][p]) else -np.inf)
        fill = values.get(S.FILL_RATE, {})
        sec.text.append(
            f"Highest profit: {best} ({fmt(values[S.PROFIT][best], 4)}"
            + (f", fill rate {pct(fill[best])}" if best in fill else "")
            + f"). The reference policy {ref} makes {fmt(values[S.PROFIT][ref], 4)}."
        )
    return sec


def _lead_demand(inp: RunInputs) -> pl.DataFrame:
    """Forecast mean demand over each series' lead time (empty without forecasts or inventory)."""
    fc, inv = inp.forecasts(), inp.data_table(S.INVENTORY)
    if fc is None or inv is None:
        return pl.DataFrame(schema={S.SKU_ID: pl.String, S.WAREHOUSE_ID: pl.String, LEAD_DEMAND: pl.Float64})
    keys = [S.SKU_ID, S.WAREHOUSE_ID]
    return (
        fc.join(inv.lazy().select(*keys, S.LEAD_TIME_DAYS), on=keys, how="inner")
        .filter(pl.col(S.STEP) <= pl.col(S.LEAD_TIME_DAYS).ceil())
        .group_by(keys)
        .agg(pl.col(S.MEAN).cast(pl.Float64).sum().alias(LEAD_DEMAND))
        .collect()
    )


def _warehouse_use(plans: pl.DataFrame, inp: RunInputs) -> pl.DataFrame:
    """Per warehouse: series, orders, units, spend, order and stock volume, budget and capacity."""
    products, whs = inp.data_table(S.PRODUCTS), inp.data_table(S.WAREHOUSES)
    rows = plans
    if products is not None:
        rows = rows.join(products.select(S.SKU_ID, S.UNIT_COST, S.VOLUME_M3), on=S.SKU_ID, how="left")
    else:
        rows = rows.with_columns(
            pl.lit(None, pl.Float32).alias(S.UNIT_COST), pl.lit(None, pl.Float32).alias(S.VOLUME_M3)
        )
    rows = rows.join(_lead_demand(inp), on=[S.SKU_ID, S.WAREHOUSE_ID], how="left").with_columns(
        # what the optimizer counts as occupied when the orders arrive (inventory/plan.free_capacity)
        (pl.col(S.INVENTORY_POSITION) - pl.col(LEAD_DEMAND).fill_null(0.0))
        .clip(lower_bound=0.0)
        .alias(STOCK_LEFT)
    )
    use = rows.group_by(S.WAREHOUSE_ID).agg(
        pl.len().alias("series"),
        (pl.col(S.ORDER_QTY) > 0).sum().alias("orders"),
        pl.col(S.ORDER_QTY).sum().alias("units"),
        (pl.col(S.ORDER_QTY) * pl.col(S.UNIT_COST)).sum().alias("spend"),
        (pl.col(S.ORDER_QTY) * pl.col(S.VOLUME_M3)).sum().alias("order_m3"),
        (pl.col(STOCK_LEFT) * pl.col(S.VOLUME_M3)).sum().alias("stock_m3"),
    )
    if whs is not None:
        use = use.join(whs.select(S.WAREHOUSE_ID, S.BUDGET, S.CAPACITY_M3), on=S.WAREHOUSE_ID, how="left")
    else:
        use = use.with_columns(
            pl.lit(None, pl.Float64).alias(S.BUDGET), pl.lit(None, pl.Float64).alias(S.CAPACITY_M3)
        )
    return use.sort(S.WAREHOUSE_ID)


def plans(inp: RunInputs, cfg: ReportConfig) -> Section:
    """Per-warehouse plan summary: budget and capacity use, binding constraints, largest orders."""
    sec = Section("plans", "Replenishment plans per warehouse")
    pl_rows = inp.plans()
    if pl_rows is None or pl_rows.is_empty():
        sec.missing.append("No `plans/` in the run: run `inventory-scale optimize` first.")
        return sec
    if inp.data_table(S.PRODUCTS) is None or inp.data_table(S.WAREHOUSES) is None:
        sec.missing.append(
            "No `products` or `warehouses` in the dataset: spend and capacity use are unknown."
        )
    use = _warehouse_use(pl_rows, inp)
    whs = use[S.WAREHOUSE_ID].to_list()
    budget_use = (use["spend"] / use[S.BUDGET]).cast(pl.Float64).fill_null(np.nan).to_numpy()
    cap_use = (
        ((use["order_m3"] + use["stock_m3"]) / use[S.CAPACITY_M3])
        .cast(pl.Float64)
        .fill_null(np.nan)
        .to_numpy()
    )
    counts = pl_rows.group_by(S.WAREHOUSE_ID, S.BINDING_CONSTRAINT).len()
    binding = {
        b: np.array(
            [
                float(
                    counts.filter((pl.col(S.WAREHOUSE_ID) == w) & (pl.col(S.BINDING_CONSTRAINT) == b))[
                        "len"
                    ].sum()
                )
                for w in whs
            ]
        )
        for b in S.BINDING_VALUES
        if b in counts[S.BINDING_CONSTRAINT].to_list()
    }
    sec.images.append(
        (
            "Budget and capacity use (orders + stock still there when they arrive) and binding constraints",
            plots.plan_use(whs, budget_use, cap_use, binding),
        )
    )
    rows = []
    for i, r in enumerate(use.iter_rows(named=True)):
        top = max(binding, key=lambda b: binding[b][i] if b != "none" else -1, default="none")
        rows.append(
            [
                r[S.WAREHOUSE_ID],
                str(r["series"]),
                str(r["orders"]),
                fmt(r["units"], 4),
                fmt(r["spend"], 4),
                fmt(r[S.BUDGET], 4),
                pct(budget_use[i]),
                fmt(r["order_m3"], 3),
                fmt(r[S.CAPACITY_M3], 3),
                pct(cap_use[i]),
                f"{top} ({int(binding[top][i])})" if top in binding and binding[top][i] else "none",
            ]
        )
    sec.tables.append(
        Table(
            "Per warehouse",
            [
                "warehouse",
                "series",
                "orders",
                "units",
                "spend",
                "budget",
                "budget used",
                "order m3",
                "capacity m3",
                "capacity used",
                "most binding",
            ],
            rows,
        )
    )
    tight = [w for i, w in enumerate(whs) if np.isfinite(budget_use[i]) and budget_use[i] >= 0.98]
    full = [w for i, w in enumerate(whs) if np.isfinite(cap_use[i]) and cap_use[i] >= 0.98]
    sec.text.append(
        f"{int((pl_rows[S.ORDER_QTY] > 0).sum()):,} orders over {len(whs)} warehouse(s). "
        + (
            f"Budget spent in full at {', '.join(tight)}. "
            if tight
            else "No warehouse spends its whole budget. "
        )
        + (f"Space is the limit at {', '.join(full)}." if full else "")
    )
    if cfg.top_orders:
        products = inp.data_table(S.PRODUCTS)
        cost = pl.col(S.UNIT_COST) if products is not None else pl.lit(None, pl.Float32)
        big = (
            pl_rows
            if products is None
            else pl_rows.join(products.select(S.SKU_ID, S.UNIT_COST), on=S.SKU_ID, how="left")
        )
        big = (
            big.filter(pl.col(S.ORDER_QTY) > 0)
            .with_columns((pl.col(S.ORDER_QTY) * cost).alias("value"))
            .sort("value", S.ORDER_QTY, descending=True, nulls_last=True)
            .group_by(S.WAREHOUSE_ID, maintain_order=True)
            .head(cfg.top_orders)
            .sort(S.WAREHOUSE_ID, maintain_order=True)
        )
        sec.tables.append(
            Table(
                f"Largest orders (top {cfg.top_orders} per warehouse by value) and why",
                [
                    "warehouse",
                    "sku",
                    "order qty",
                    "value",
                    "order-up-to",
                    "position",
                    "fill rate",
                    "binding",
                    "reason",
                ],
                [
                    [
                        r[S.WAREHOUSE_ID],
                        r[S.SKU_ID],
                        fmt(r[S.ORDER_QTY], 4),
                        fmt(r["value"], 4),
                        fmt(r[S.ORDER_UP_TO], 4),
                        fmt(r[S.INVENTORY_POSITION], 4),
                        pct(r[S.EXPECTED_FILL_RATE]),
                        r[S.BINDING_CONSTRAINT],
                        r[S.REASON],
                    ]
                    for r in big.iter_rows(named=True)
                ],
            )
        )
    return sec


def exceptions(inp: RunInputs, cfg: ReportConfig) -> Section:
    """Exceptions of the last monitoring run: counts by reason and severity, the most severe rows."""
    sec = Section("exceptions", "Exceptions from monitoring")
    exc = inp.exceptions()
    if exc is None:
        sec.missing.append(
            "No `monitor/exceptions/`: run `inventory-scale monitor` when sales after the cutoff arrive."
        )
        return sec
    if exc.is_empty():
        sec.text.append("The last monitoring run flagged nothing.")
        return sec
    asof, cutoff = str(exc[S.ASOF].max()), str(exc[S.CUTOFF].max())
    reasons = [r for r in S.EXCEPTION_REASONS if r in exc[S.REASON].to_list()]
    counts = {
        sev: np.array(
            [exc.filter((pl.col(S.REASON) == r) & (pl.col(S.SEVERITY) == sev)).height for r in reasons]
        )
        for sev in S.SEVERITIES
    }
    sec.images.append(("Series flagged per reason, by severity", plots.exception_counts(reasons, counts)))
    n_series = exc.select(S.SKU_ID, S.WAREHOUSE_ID).n_unique()
    sec.text.append(
        f"Sales after the cutoff {cutoff} up to {asof} against its forecast: {exc.height} exception(s) on "
        f"{n_series} series, {int(counts['high'].sum())} of them high severity."
    )
    top = exc.head(cfg.top_orders * 3)
    sec.tables.append(
        Table(
            f"Most severe (first {top.height} of {exc.height})",
            ["severity", "reason", "series", "detail", "suggested action"],
            [
                [
                    r[S.SEVERITY],
                    r[S.REASON],
                    f"{r[S.SKU_ID]}/{r[S.WAREHOUSE_ID]}",
                    r[S.DETAIL],
                    r[S.SUGGESTED_ACTION],
                ]
                for r in top.iter_rows(named=True)
            ],
        )
    )
    return sec
