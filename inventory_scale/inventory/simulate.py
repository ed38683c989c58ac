"""Daily lost-sales inventory simulator with FIFO aging, vectorized over series.

One call replays ``T`` days of realised demand for ``N`` series through a policy::

    result = simulate(items, limits, demand, policy, start_on_hand=s0, lead_times=lt)   # demand [N, T]
    series, totals = kpis(result, items, limits, keys)

Each day, for every series at once (numpy arrays; the only Python loop is over days):

1. **receipts**: lots whose (stochastic) lead time ends today join the stock;
2. **orders**: series whose review day it is (``day % review_days == 0``) order what the policy
   decides from on hand and in transit; the order arrives ``lead_times[i, k]`` days later (``k``-th
   order of the series; pre-drawn, so every policy meets the same lead times);
3. **sales** = min(demand, on hand), taken oldest lot first (FIFO by arrival); the rest is lost;
4. **outdating**: units received on day ``a`` sell through day ``a + shelf_life - 1`` and are
   outdated at its end;
5. **holding** on the end-of-day stock; **capacity overflow** (m^3 above the warehouse's
   capacity) is counted per warehouse and day.

Stock is kept as lots ``[N, K]`` (the starting stock, the starting pipeline, one slot per order),
so conservation holds exactly per series and day: ``on_hand[t-1] + receipts[t] = sales[t] +
outdated[t] + on_hand[t]``.

KPIs (per series, per warehouse, total): revenue, purchase cost, holding cost, lost-sales cost
(goodwill per lost unit), outdating cost ((cost - salvage) per outdated unit), end-stock
write-down, profit, fill rate, cycle service level (share of review cycles without a lost sale),
stockout days, average stock, turns, capacity overflow. Profit counts units sold at their margin::

    profit = revenue - cost x sales - outdating - holding - lost-sales cost - end-stock write-down

which equals revenue - purchase cost + cost x (end stock - start stock) + salvage - the rest: the
end stock (on hand and in transit) is valued at cost less the holding cost of selling it at the
episode's demand rate, units that cannot sell before they expire at salvage. Without it a policy
that over-orders on the last day would look free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from inventory_scale import schema as S
from inventory_scale.errors import DataQualityError
from inventory_scale.inventory.items import Items, Limits

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NEVER = np.iinfo(np.int64).max // 4


@dataclass(frozen=True)
class SimState:
    """What a policy sees on a decision day (arrays ``[N]``)."""

    day: int
    reviewing: npt.NDArray[np.bool_]
    on_hand: F64
    in_transit: F64

    @property
    def position(self) -> F64:
        return self.on_hand + self.in_transit


class Policy(Protocol):
    """A replenishment policy: order quantities ``[N]`` for the series under review."""

    name: str

    def decide(self, state: SimState) -> F64: ...


@dataclass(frozen=True)
class SimResult:
    """Daily trajectories ``[T, N]`` (``on_hand`` at the end of each day) and warehouse series ``[T, W]``."""

    demand: F64
    sales: F64
    lost: F64
    outdated: F64
    receipts: F64
    orders: F64
    on_hand: F64
    review: npt.NDArray[np.bool_]
    spend: F64
    overflow_m3: F64
    start_on_hand: F64
    start_in_transit: F64
    end_in_transit: F64


def order_slots(review_days: I64, days: int) -> int:
    """Most orders any series places in ``days`` days."""
    return int(np.max(-(-days // np.maximum(review_days, 1)), initial=0))


def simulate(
    items: Items,
    limits: Limits,
    demand: npt.ArrayLike,
    policy: Policy,
    *,
    start_on_hand: npt.ArrayLike,
    lead_times: npt.ArrayLike,
    start_age_days: npt.ArrayLike = 0,
    pipeline_qty: npt.ArrayLike | None = None,
    pipeline_arrival: npt.ArrayLike | None = None,
) -> SimResult:
    """Replay ``demand [N, T]`` through ``policy``; see the module docstring for the daily steps.

    Args:
        items: economics and logistics of the ``N`` series.
        limits: warehouse capacities (overflow is counted against them).
        demand: ``[N, T]`` realised demand (units, >= 0).
        policy: decides order quantities on review days (negative values count as 0).
        start_on_hand: ``[N]`` units on hand at the start of day 0.
        lead_times: ``[N, K]`` integer lead times in days (>= 1) of each series' ``k``-th order,
            ``K >= order_slots(items.review_days, T)``.
        start_age_days: ``[N]`` age of the starting stock (0 = fresh).
        pipeline_qty: ``[N, P]`` units in transit at the start.
        pipeline_arrival: ``[N, P]`` their arrival days (>= 1).

    Returns:
        :class:`SimResult`.
    """
    d = np.asarray(demand, dtype=np.float64)
    n, t_days = d.shape
    lt = np.asarray(lead_times, dtype=np.int64)
    n_orders = order_slots(items.review_days, t_days)
    if lt.shape[0] != n or lt.shape[1] < n_orders or (lt[:, :n_orders] < 1).any():
        raise DataQualityError(f"lead_times must be [{n}, >= {n_orders}] of days >= 1, got {lt.shape}")
    if (d < 0).any() or not np.isfinite(d).all():
        raise DataQualityError("demand must be finite and >= 0")
    pq = np.zeros((n, 0)) if pipeline_qty is None else np.asarray(pipeline_qty, dtype=np.float64)
    pa = np.zeros((n, 0), np.int64) if pipeline_arrival is None else np.asarray(pipeline_arrival, np.int64)
    p0 = 1 + pq.shape[1]
    k_slots = p0 + n_orders
    rows = np.arange(n)
    stock = np.zeros((n, k_slots))  # units on hand per lot
    transit = np.zeros((n, k_slots))  # units on the way per lot
    arrival = np.full((n, k_slots), NEVER, dtype=np.int64)
    start = np.broadcast_to(np.maximum(np.asarray(start_on_hand, dtype=np.float64), 0.0), (n,)).copy()
    stock[:, 0] = start
    arrival[:, 0] = -np.broadcast_to(np.asarray(start_age_days, dtype=np.int64), (n,))
    transit[:, 1:p0] = pq
    arrival[:, 1:p0] = np.where(pq > 0, pa, NEVER)
    life = np.where(items.perishable, items.shelf_life_days, np.inf)
    review = items.review_days
    n_wh = len(limits.ids)

    out = {k: np.zeros((t_days, n)) for k in ("sales", "lost", "outdated", "receipts", "orders", "on_hand")}
    reviews = np.zeros((t_days, n), dtype=bool)
    spend = np.zeros((t_days, n_wh))
    overflow = np.zeros((t_days, n_wh))
    for t in range(t_days):
        arriving = (arrival == t) & (transit > 0)
        out["receipts"][t] = (transit * arriving).sum(axis=1)
        stock += transit * arriving
        transit[arriving] = 0.0

        rev = (t % review) == 0
        reviews[t] = rev
        if rev.any():
            state = SimState(t, rev, stock.sum(axis=1), transit.sum(axis=1))
            q = np.where(rev, np.maximum(np.asarray(policy.decide(state), dtype=np.float64), 0.0), 0.0)
            placed = rev & (q > 0)
            slot = p0 + t // review
            k = np.minimum(t // review, lt.shape[1] - 1)
            transit[rows[placed], slot[placed]] = q[placed]
            arrival[rows[placed], slot[placed]] = t + lt[rows[placed], k[placed]]
            out["orders"][t] = q
            spend[t] = np.bincount(items.warehouse, items.cost * q, minlength=n_wh)

        # FIFO sales: lots in arrival order, oldest first
        on_hand_arrival = np.where(stock > 0, arrival, NEVER)
        perm = np.argsort(on_hand_arrival, axis=1, kind="stable")
        lots = np.take_along_axis(stock, perm, axis=1)
        before = np.cumsum(lots, axis=1) - lots
        taken = np.clip(d[:, t, None] - before, 0.0, lots)
        np.put_along_axis(stock, perm, lots - taken, axis=1)
        sold = taken.sum(axis=1)
        out["sales"][t] = sold
        out["lost"][t] = d[:, t] - sold

        expired = (stock > 0) & (arrival + life[:, None] <= t + 1)
        out["outdated"][t] = np.where(expired, stock, 0.0).sum(axis=1)
        stock[expired] = 0.0
        out["on_hand"][t] = stock.sum(axis=1)
        used = np.bincount(items.warehouse, items.volume * out["on_hand"][t], minlength=n_wh)
        overflow[t] = np.maximum(used - limits.capacity, 0.0)

    return SimResult(
        demand=d.T.copy(),
        review=reviews,
        spend=spend,
        overflow_m3=overflow,
        start_on_hand=start,
        start_in_transit=pq.sum(axis=1),
        end_in_transit=transit.sum(axis=1),
        **out,
    )


def _writedown(result: SimResult, items: Items) -> F64:
    """``[N]`` loss in value of the end stock (on hand + in transit) against its cost."""
    t_days = result.demand.shape[0]
    end = result.on_hand[-1] + result.end_in_transit
    rate = result.demand.sum(axis=0) / max(t_days, 1)
    sellable = np.where(items.perishable, np.minimum(end, rate * np.nan_to_num(items.shelf_life_days)), end)
    excess = end - sellable
    margin = items.cost - items.salvage
    carry_days = np.where(rate > 0, sellable / (2.0 * np.where(rate > 0, rate, 1.0)), np.inf)
    per_unit = np.minimum(items.cost * items.holding_rate * carry_days / 365.0, margin)
    return margin * excess + np.where(sellable > 0, sellable * per_unit, 0.0)


def series_kpis(result: SimResult, items: Items) -> dict[str, F64]:
    """Per-series outcomes ``[N]``: the additive KPIs plus the counts the ratios need."""
    t_days = result.demand.shape[0]
    demand, sales = result.demand.sum(axis=0), result.sales.sum(axis=0)
    lost, outdated = result.lost.sum(axis=0), result.outdated.sum(axis=0)
    avg_on_hand = result.on_hand.mean(axis=0)
    holding = (result.on_hand * (items.cost * items.holding_rate / 365.0)).sum(axis=0)
    revenue = items.price * sales
    lost_cost = items.goodwill * lost
    outdating = (items.cost - items.salvage) * outdated
    writedown = _writedown(result, items)
    # review cycles with a lost sale, per series
    cycle = np.arange(t_days)[:, None] // items.review_days[None, :]  # [T, N]
    n_cycles = -(-t_days // items.review_days)
    width = int(n_cycles.max(initial=1))
    flat = (np.arange(items.n)[None, :] * width + cycle).ravel()
    short = np.bincount(flat, weights=(result.lost > 1e-9).ravel(), minlength=items.n * width)
    bad_cycles = (short.reshape(items.n, width) > 0).sum(axis=1)
    return {
        S.DEMAND: demand,
        S.SALES_UNITS: sales,
        S.LOST_SALES: lost,
        S.OUTDATED: outdated,
        S.ORDERS: result.orders.sum(axis=0),
        S.AVG_ON_HAND: avg_on_hand,
        S.REVENUE: revenue,
        S.PURCHASE_COST: items.cost * result.orders.sum(axis=0),
        S.HOLDING_COST: holding,
        S.LOST_SALES_COST: lost_cost,
        S.OUTDATING_COST: outdating,
        S.END_STOCK_WRITEDOWN: writedown,
        S.PROFIT: revenue - items.cost * sales - outdating - holding - lost_cost - writedown,
        "cogs": items.cost * sales,
        "avg_stock_value": avg_on_hand * items.cost,
        "cycles": n_cycles.astype(np.float64),
        "cycles_ok": (n_cycles - bad_cycles).astype(np.float64),
        S.STOCKOUT_DAYS: (result.lost > 1e-9).sum(axis=0).astype(np.float64),
    }


ADDITIVE = (
    S.DEMAND, S.SALES_UNITS, S.LOST_SALES, S.OUTDATED, S.ORDERS, S.REVENUE, S.PURCHASE_COST,
    S.HOLDING_COST, S.LOST_SALES_COST, S.OUTDATING_COST, S.END_STOCK_WRITEDOWN, S.PROFIT,
    S.STOCKOUT_DAYS, S.AVG_STOCK_VALUE,
)  # fmt: skip
"""KPIs that add up over series (the ratios are recomputed from sums)."""


def _ratios(sums: dict[str, float], days: int) -> dict[str, float]:
    def div(a: float, b: float, empty: float) -> float:
        return a / b if b > 0 else empty

    return {
        S.FILL_RATE: div(sums[S.SALES_UNITS], sums[S.DEMAND], 1.0),
        S.CYCLE_SERVICE_LEVEL: div(sums["cycles_ok"], sums["cycles"], 1.0),
        S.TURNS: div(sums["cogs"], sums[S.AVG_STOCK_VALUE], 0.0) * 365.0 / max(days, 1),
    }


def kpis(
    result: SimResult, items: Items, limits: Limits, keys: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per-series KPIs (wide, ``keys`` + :data:`schema.POLICY_SERIES` measures) and per-warehouse +
    total KPIs (long: ``warehouse_id, kpi, value``; the total has ``warehouse_id = "all"``)."""
    per = series_kpis(result, items)
    days = result.demand.shape[0]
    series = keys.select(S.SKU_ID, S.WAREHOUSE_ID).with_columns(
        *(pl.Series(name, per[name]) for name in S.POLICY_SERIES.columns[4:])
    )
    needed = (*ADDITIVE, "cogs", "cycles", "cycles_ok")
    n_wh = len(limits.ids)
    by_wh = {k: np.bincount(items.warehouse, per[k], minlength=n_wh) for k in needed}
    overflow = result.overflow_m3.sum(axis=0)
    rows: list[tuple[str, str, float]] = []
    present = np.bincount(items.warehouse, minlength=n_wh) > 0
    for w in np.flatnonzero(present):
        sums = {k: float(v[w]) for k, v in by_wh.items()}
        sums[S.OVERFLOW_M3_DAYS] = float(overflow[w])
        sums.update(_ratios(sums, days))
        rows += [(limits.ids[w], k, v) for k, v in sums.items() if k not in ("cogs", "cycles", "cycles_ok")]
    total = {k: float(v[present].sum()) for k, v in by_wh.items()}
    total[S.OVERFLOW_M3_DAYS] = float(overflow[present].sum())
    total.update(_ratios(total, days))
    rows += [(S.ALL_WAREHOUSES, k, v) for k, v in total.items() if k not in ("cogs", "cycles", "cycles_ok")]
    long = pl.DataFrame(
        rows, schema={S.WAREHOUSE_ID: pl.String, S.KPI: pl.String, S.VALUE: pl.Float64}, orient="row"
    )
    return series, long
