"""Lost-sales FIFO simulator: conservation, closed-form outcomes, outdating, overflow, KPI frames."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.inventory.items import Items, Limits
from inventory_scale.inventory.simulate import SimState, kpis, order_slots, series_kpis, simulate


def make_items(
    n: int,
    *,
    shelf: float = np.nan,
    review: int = 1,
    warehouse: np.ndarray | None = None,
    volume: float = 0.01,
) -> Items:
    return Items(
        warehouse=np.zeros(n, dtype=np.int64) if warehouse is None else warehouse,
        price=np.full(n, 10.0),
        cost=np.full(n, 6.0),
        salvage=np.full(n, 1.0),
        goodwill=np.full(n, 2.0),
        holding_rate=np.full(n, 0.365),  # 0.1% of cost per unit-day: easy sums
        volume=np.full(n, volume),
        case_pack=np.ones(n),
        moq=np.zeros(n),
        lead_time_days=np.full(n, 2.0),
        lead_time_std_days=np.zeros(n),
        review_days=np.full(n, review, dtype=np.int64),
        shelf_life_days=np.full(n, shelf),
        leftover=np.full(n, 6.0),
    )


def limits(n_wh: int = 1, capacity: float = 1e9) -> Limits:
    return Limits([f"W{i}" for i in range(n_wh)], np.full(n_wh, 1e9), np.full(n_wh, capacity))


@dataclass
class OrderUpTo:
    """Order up to ``level`` (position based) on every review day."""

    level: np.ndarray
    name: str = "order_up_to"

    def decide(self, state: SimState) -> np.ndarray:
        return np.maximum(self.level - state.position, 0.0)


@dataclass
class Never:
    name: str = "never"

    def decide(self, state: SimState) -> np.ndarray:
        return np.zeros(state.on_hand.size)


def test_conservation_for_every_series_and_day() -> None:
    rng = np.random.default_rng(0)
    n, t = 50, 60
    shelf = np.where(rng.random(n) < 0.5, rng.integers(2, 10, n), np.nan).astype(np.float64)
    review = rng.integers(1, 8, n)
    items = make_items(n, review=1)
    items = Items(**{**items.__dict__, "shelf_life_days": shelf, "review_days": review})
    demand = rng.poisson(rng.uniform(0.5, 8, n)[:, None], (n, t)).astype(np.float64)
    lt = rng.integers(1, 6, (n, order_slots(review, t)))
    start = rng.integers(0, 30, n).astype(np.float64)
    pipeline = rng.integers(0, 10, (n, 2)).astype(np.float64)
    arrive = rng.integers(1, 5, (n, 2))
    res = simulate(
        items,
        limits(),
        demand,
        OrderUpTo(rng.uniform(5, 60, n)),
        start_on_hand=start,
        lead_times=lt,
        start_age_days=rng.integers(0, 3, n),
        pipeline_qty=pipeline,
        pipeline_arrival=arrive,
    )
    before = np.vstack([start[None, :], res.on_hand[:-1]])  # [T, N] on hand at the start of each day
    np.testing.assert_allclose(before + res.receipts, res.sales + res.outdated + res.on_hand, atol=1e-9)
    np.testing.assert_allclose(res.sales + res.lost, res.demand, atol=1e-9)
    assert (res.sales <= res.demand + 1e-9).all() and (res.on_hand >= -1e-9).all()
    # every unit ordered or in the pipeline either arrived or is still in transit at the end
    np.testing.assert_allclose(
        res.receipts.sum(axis=0) + res.end_in_transit, res.orders.sum(axis=0) + pipeline.sum(axis=1)
    )
    assert res.outdated[:, np.isnan(shelf)].sum() == 0 and res.outdated.sum() > 0


def test_deterministic_demand_known_fill_rate_and_profit() -> None:
    # 10 units a day for 10 days, 50 on hand, no orders: the first 5 days sell, the last 5 lose all
    items = make_items(1)
    res = simulate(
        items, limits(), np.full((1, 10), 10.0), Never(), start_on_hand=[50.0], lead_times=[[1] * 10]
    )
    per = series_kpis(res, items)
    assert per[S.SALES_UNITS][0] == 50 and per[S.LOST_SALES][0] == 50 and per[S.STOCKOUT_DAYS][0] == 5
    holding = (40 + 30 + 20 + 10) * 6.0 * 0.001  # end-of-day stock x cost x daily rate
    expected = (10 - 6) * 50 - 2.0 * 50 - holding  # margin on sales, goodwill on lost units
    assert per[S.PROFIT][0] == pytest.approx(expected)
    assert per[S.HOLDING_COST][0] == pytest.approx(holding)
    assert per[S.END_STOCK_WRITEDOWN][0] == 0
    _, long = kpis(res, items, limits(), pl.DataFrame({S.SKU_ID: ["A"], S.WAREHOUSE_ID: ["W0"]}))
    total = dict(long.filter(pl.col(S.WAREHOUSE_ID) == S.ALL_WAREHOUSES).select(S.KPI, S.VALUE).rows())
    assert total[S.FILL_RATE] == pytest.approx(0.5)
    assert total[S.PROFIT] == pytest.approx(expected)
    # review every day, lead time 1 (arrives the next morning), order up to 20 from 20 on hand:
    # each day's receipt is sold the same day, never short
    res = simulate(
        items, limits(), np.full((1, 10), 10.0), OrderUpTo(np.array([20.0])),
        start_on_hand=[20.0], lead_times=[[1] * 10],
    )  # fmt: skip
    per = series_kpis(res, items)
    assert per[S.SALES_UNITS][0] == 100 and per[S.LOST_SALES][0] == 0
    np.testing.assert_allclose(res.orders[:, 0], [0] + [10] * 9)  # day 0: position 20 already
    assert res.on_hand[-1, 0] == 0 and res.end_in_transit[0] == 10
    np.testing.assert_allclose(res.receipts[:, 0], [0, 0] + [10] * 8)


def test_fifo_outdating_at_shelf_life() -> None:
    # shelf life 3 days: a lot received on day a sells through day a + 2 and outdates at its end
    items = make_items(1, shelf=3.0)
    demand = np.full((1, 6), 2.0)
    res = simulate(items, limits(), demand, Never(), start_on_hand=[10.0], lead_times=[[1] * 6])
    np.testing.assert_allclose(res.sales[:, 0], [2, 2, 2, 0, 0, 0])
    np.testing.assert_allclose(res.outdated[:, 0], [0, 0, 4, 0, 0, 0])
    # FIFO: 5 old units (age 1) and 5 fresh on day 1; demand 3 a day takes the old lot first
    items = make_items(1, shelf=3.0)
    res = simulate(
        items, limits(), np.full((1, 5), 3.0), Never(), start_on_hand=[5.0], lead_times=[[1] * 5],
        start_age_days=[1], pipeline_qty=[[5.0]], pipeline_arrival=[[1]],
    )  # fmt: skip
    # day 0: 3 old sold (2 left); day 1: 2 old + 1 new sold, old lot empty before it would expire
    # (end of day 1); day 2: 3 new sold, 1 left; day 3: 1 sold (expires at end of day 3 anyway)
    np.testing.assert_allclose(res.sales[:, 0], [3, 3, 3, 1, 0])
    np.testing.assert_allclose(res.outdated[:, 0], [0, 0, 0, 0, 0])
    # had the new lot been used first, the old one would have outdated 2 units on day 1
    per = series_kpis(res, items)
    assert per[S.OUTDATED][0] == 0 and per[S.LOST_SALES][0] == 15 - 10


def test_capacity_overflow_counted_per_warehouse_and_day() -> None:
    wh = np.array([0, 0, 1])
    items = make_items(3, warehouse=wh, volume=0.1)
    lim = Limits(["W0", "W1"], np.full(2, 1e9), np.array([1.0, 10.0]))
    # W0 holds 2 x 15 units x 0.1 m3 = 3 m3 against 1 m3: 2 m3 over every day; W1 never over
    res = simulate(
        items, lim, np.zeros((3, 4)), Never(), start_on_hand=[15.0, 15.0, 15.0], lead_times=np.ones((3, 4))
    )
    np.testing.assert_allclose(res.overflow_m3, [[2.0, 0.0]] * 4)
    keys = pl.DataFrame({S.SKU_ID: ["A", "B", "C"], S.WAREHOUSE_ID: ["W0", "W0", "W1"]})
    _, long = kpis(res, items, lim, keys)
    over = dict(long.filter(pl.col(S.KPI) == S.OVERFLOW_M3_DAYS).select(S.WAREHOUSE_ID, S.VALUE).rows())
    assert over == {"W0": pytest.approx(8.0), "W1": 0.0, S.ALL_WAREHOUSES: pytest.approx(8.0)}


def test_bad_inputs_raise() -> None:
    items = make_items(2)
    from inventory_scale.errors import DataQualityError

    with pytest.raises(DataQualityError, match="lead_times"):
        simulate(items, limits(), np.ones((2, 5)), Never(), start_on_hand=[0, 0], lead_times=np.ones((2, 2)))
    with pytest.raises(DataQualityError, match="demand"):
        simulate(items, limits(), -np.ones((2, 5)), Never(), start_on_hand=[0, 0], lead_times=np.ones((2, 5)))
