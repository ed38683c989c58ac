"""From protection-interval demand to a warehouse's orders and its ``plans/`` rows.

The optimizer stage and our policy in the simulator share these two steps::

    problem, alloc = plan_orders(demand, items, position, budget, free_m3, cfg.policy)
    rows = plan_rows(keys, cutoff, problem, alloc, demand, items)      # schema.PLANS

:func:`free_capacity` is the capacity left for new orders: the warehouse's capacity less what the
current position is expected to occupy when the orders arrive (position less lead-time demand).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import numpy.typing as npt
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import PolicyConfig
from inventory_scale.inventory.allocate import Allocation, Problem, allocate
from inventory_scale.inventory.demand import ProtectionDemand
from inventory_scale.inventory.items import Items, sell_by_days
from inventory_scale.inventory.newsvendor import (
    critical_ratio,
    expected_fill_rate,
    expected_outdated,
    profit_curve,
    sample_quantile,
)

F64 = npt.NDArray[np.float64]


def free_capacity(capacity: float, volume: F64, position: F64, lead_demand: F64) -> float:
    """m^3 left for new orders: ``capacity - sum volume x max(position - lead-time demand, 0)``."""
    if not np.isfinite(capacity):
        return float("inf")
    return max(float(capacity - volume @ np.maximum(position - lead_demand, 0.0)), 0.0)


def target_ratio(items: Items, policy: PolicyConfig) -> F64:
    """``[N]`` quantile level each series aims at: the critical ratio or ``policy.service_level``."""
    if policy.service_level is not None:
        return np.full(items.n, policy.service_level)
    return critical_ratio(items.price, items.cost, items.leftover, items.goodwill)


def plan_orders(
    demand: ProtectionDemand,
    items: Items,
    position: F64,
    budget: float,
    capacity: float,
    policy: PolicyConfig,
) -> tuple[Problem, Allocation]:
    """Order quantities of ``N`` series of one warehouse.

    Args:
        demand: their protection-interval demand samples.
        items: their economics and logistics.
        position: ``[N]`` inventory positions.
        budget: capital for these orders.
        capacity: m^3 free for these orders (see :func:`free_capacity`).
        policy: the ``policy`` config (service level, solver, MILP settings).

    Returns:
        The problem (with its profit curves) and its allocation.
    """
    curve = profit_curve(demand, items, policy.service_level)
    shelf_free = None
    if demand.perishable.any():  # shelf life or policy.carryover_days: units that may not sell
        shelf_free = np.where(demand.perishable, sample_quantile(demand.pi, target_ratio(items, policy)), 0.0)
    problem = Problem(
        curve=curve,
        position=np.asarray(position, dtype=np.float64),
        cost=items.cost,
        volume=items.volume,
        case_pack=items.case_pack,
        moq=items.moq,
        budget=float(budget),
        capacity=float(capacity),
        shelf_free_level=shelf_free,
    )
    alloc = allocate(
        problem,
        policy.solver,
        time_limit_s=policy.milp_time_limit_s,
        mip_gap=policy.milp_gap,
        segments=policy.milp_segments,
    )
    return problem, alloc


def _fmt(x: pl.Expr, digits: int = 1) -> pl.Expr:
    """Text of a number: whole numbers without decimals, others with ``digits``."""
    whole = (x - x.round(0)).abs() < 1e-9
    return (
        pl.when(whole)
        .then(x.round(0).cast(pl.Int64).cast(pl.String))
        .otherwise(x.round(digits).cast(pl.String))
    )


def plan_rows(
    keys: pl.DataFrame,
    cutoff: dt.date,
    problem: Problem,
    alloc: Allocation,
    demand: ProtectionDemand,
    items: Items,
    policy: PolicyConfig,
) -> pl.DataFrame:
    """``plans/`` rows (:data:`schema.PLANS`) for the series in ``keys``, with a reason each."""
    level = problem.position + alloc.qty
    frame = keys.select(S.SKU_ID, S.WAREHOUSE_ID).with_columns(
        pl.lit(cutoff).alias(S.CUTOFF),
        pl.Series(S.ORDER_QTY, alloc.qty),
        pl.Series(S.ORDER_UP_TO, level),
        pl.Series(S.INVENTORY_POSITION, problem.position),
        pl.Series(S.EXPECTED_PROFIT, problem.curve.value(level)),
        pl.Series(S.EXPECTED_FILL_RATE, expected_fill_rate(demand, level)),
        pl.Series(S.BINDING_CONSTRAINT, alloc.binding),
    )
    aux = pl.DataFrame(
        {
            "cr": target_ratio(items, policy),
            "days": items.lead_time_days + items.review_days,
            "pi_mean": demand.pi.mean(axis=1),
            "wanted": alloc.wanted,
            "relaxed": alloc.relaxed,
            "pack": items.case_pack,
            "moq": problem.moq_packs,
            "life": sell_by_days(items, policy.carryover_days),
            "perishable": items.perishable,
            "outdated": expected_outdated(demand, level),
        }
    )
    q, pos, up = pl.col(S.ORDER_QTY), pl.col(S.INVENTORY_POSITION), pl.col(S.ORDER_UP_TO)
    quantile = pl.format(
        "CR {} quantile of {}-day demand (mean {})",
        _fmt(pl.col("cr"), 3),
        _fmt(pl.col("days")),
        _fmt(pl.col("pi_mean")),
    )
    reason = (
        pl.when(pl.col(S.BINDING_CONSTRAINT) == "budget")
        .then(
            pl.format(
                "budget binds (shadow price {} per unit of capital): {} of {} wanted",
                pl.lit(round(alloc.budget_price, 4)).cast(pl.String),
                _fmt(q, 0),
                _fmt(pl.col("wanted")),
            )
        )
        .when(pl.col(S.BINDING_CONSTRAINT) == "capacity")
        .then(
            pl.format(
                "capacity binds (shadow price {} per m3): {} of {} wanted",
                pl.lit(round(alloc.capacity_price, 3)).cast(pl.String),
                _fmt(q, 0),
                _fmt(pl.col("wanted")),
            )
        )
        .when(pl.col(S.BINDING_CONSTRAINT) == "moq")
        .then(
            pl.when(q > 0)
            .then(
                pl.format(
                    "MOQ {}: {} wanted, rounded up to {}",
                    _fmt(pl.col("moq"), 0),
                    _fmt(pl.col("relaxed")),
                    _fmt(q, 0),
                )
            )
            .otherwise(
                pl.format(
                    "MOQ {}: only {} wanted, not worth an order",
                    _fmt(pl.col("moq"), 0),
                    _fmt(pl.col("relaxed")),
                )
            )
        )
        .when(pl.col(S.BINDING_CONSTRAINT) == "case_pack")
        .then(
            pl.format(
                "case pack {}: {} rounded to {}", _fmt(pl.col("pack"), 0), _fmt(pl.col("relaxed")), _fmt(q, 0)
            )
        )
        .when((pl.col(S.BINDING_CONSTRAINT) == "shelf_life") & pl.col("perishable"))
        .then(
            pl.format(
                "shelf life {} d caps the position at {} (expected outdating {} units)",
                _fmt(pl.col("life"), 0),
                _fmt(up, 0),
                _fmt(pl.col("outdated")),
            )
        )
        .when(pl.col(S.BINDING_CONSTRAINT) == "shelf_life")
        .then(
            pl.format(
                "carry-over {} d (policy.carryover_days + review) caps the position at {} "
                "(expected unsold after it {} units)",
                _fmt(pl.col("life"), 0),
                _fmt(up, 0),
                _fmt(pl.col("outdated")),
            )
        )
        .when(q > 0)
        .then(pl.format("order {} up to {}: {}", _fmt(q, 0), _fmt(up, 0), quantile))
        .otherwise(pl.format("no order: position {} covers the {}", _fmt(pos, 0), quantile))
    )
    out = pl.concat([frame, aux], how="horizontal").with_columns(reason.alias(S.REASON))
    return S.conform(out, S.PLANS)
