"""Re-forecasting within a policy A/B episode: origins, the Refreshed policy, the config key."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from test_inventory_simulate import limits, make_items

from inventory_scale.cli import load_config
from inventory_scale.config import PolicyConfig
from inventory_scale.errors import ConfigError
from inventory_scale.evaluation.policy_forecasts import forecast_origins
from inventory_scale.inventory.policies import PathPolicy, Refreshed, SafetyStockPolicy
from inventory_scale.inventory.simulate import SimState, simulate

DAYS = 21


@dataclass
class Recorder:
    """Orders ``qty`` units on review days and records the (shifted) days it was asked on."""

    qty: float
    name: str = "recorder"
    days: list[int] = field(default_factory=list)

    def decide(self, state: SimState) -> np.ndarray:
        self.days.append(state.day)
        return np.where(state.reviewing, self.qty, 0.0)


def test_forecast_origins() -> None:
    assert forecast_origins(28, None) == [0]
    assert forecast_origins(28, 7) == [0, 7, 14, 21]
    assert forecast_origins(28, 10) == [0, 10, 20]
    assert forecast_origins(5, 7) == [0]  # an episode shorter than the step: the cutoff's forecast only


def test_refreshed_hands_each_review_to_the_latest_origin() -> None:
    first, second, third = Recorder(1.0), Recorder(2.0), Recorder(3.0)
    policy = Refreshed("refreshed", [0, 7, 14], [first, second, third])
    items = make_items(1, review=3)  # reviews on days 0, 3, 6, 9, 12, 15, 18
    res = simulate(items, limits(), np.zeros((1, DAYS)), policy, start_on_hand=[0.0], lead_times=[[1] * DAYS])
    assert first.days == [0, 3, 6]
    assert second.days == [2, 5]  # days 9 and 12, counted from origin 7
    assert third.days == [1, 4]  # days 15 and 18, counted from origin 14
    np.testing.assert_array_equal(np.flatnonzero(res.orders[:, 0]), [0, 3, 6, 9, 12, 15, 18])
    np.testing.assert_array_equal(res.orders[[0, 3, 6, 9, 12, 15, 18], 0], [1, 1, 1, 2, 2, 3, 3])


def test_refreshed_refuses_bad_origins() -> None:
    with pytest.raises(ConfigError, match="start at 0 and ascend"):
        Refreshed("r", [0, 7, 7], [Recorder(1.0)] * 3)
    with pytest.raises(ConfigError, match="start at 0 and ascend"):
        Refreshed("r", [3, 7], [Recorder(1.0)] * 2)
    with pytest.raises(ConfigError, match="2 forecast origins for 1 policies"):
        Refreshed("r", [0, 7], [Recorder(1.0)])


def _episode(review: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Demand ``[N, DAYS]``, integer sample paths ``[N, 200, DAYS + 20]`` and their mean."""
    rng = np.random.default_rng(4)
    mean = np.array([3.0, 8.0, 15.0])[:, None] * (1 + 0.5 * np.sin(np.arange(DAYS + 20) / 3.0))
    paths = rng.poisson(mean[:, None, :], (3, 200, DAYS + 20)).astype(np.float64)
    demand = rng.poisson(mean[:, :DAYS]).astype(np.float64)
    return demand, paths, mean


@pytest.mark.parametrize("kind", ["paths", "safety_stock"])
def test_refreshing_the_same_forecast_changes_no_order(kind: str) -> None:
    # a forecast made at origin o that says what the cutoff's forecast said from day o on must
    # leave every order as it was: the refresh only changes which forecast answers, not how
    demand, paths, mean = _episode()
    items = make_items(3, review=2)
    cfg = PolicyConfig()

    def build(o: int) -> PathPolicy | SafetyStockPolicy:
        if kind == "paths":
            return PathPolicy("p", paths[:, :, o:], items, limits(), cfg, seed=5)
        return SafetyStockPolicy("p", mean[:, o:], np.array([1.0, 2.0, 3.0]), items, limits())

    lead = [[2] * DAYS] * 3
    once = simulate(items, limits(), demand, build(0), start_on_hand=[5.0, 5.0, 5.0], lead_times=lead)
    origins = forecast_origins(DAYS, 6)
    refreshed = Refreshed("p", origins, [build(o) for o in origins])
    again = simulate(items, limits(), demand, refreshed, start_on_hand=[5.0, 5.0, 5.0], lead_times=lead)
    assert once.orders.sum() > 0
    np.testing.assert_allclose(again.orders, once.orders)
    np.testing.assert_allclose(again.sales, once.sales)


def test_a_later_forecast_moves_the_later_orders_only() -> None:
    # the origin-7 forecast sees demand triple: orders from day 7 on rise, earlier ones stay
    demand, paths, _ = _episode()
    items = make_items(3, review=1)
    cfg = PolicyConfig()
    lead = [[2] * DAYS] * 3
    start = [5.0, 5.0, 5.0]
    once = simulate(
        items, limits(), demand, PathPolicy("p", paths, items, limits(), cfg, seed=5),
        start_on_hand=start, lead_times=lead,
    )  # fmt: skip
    later = PathPolicy("p", 3.0 * paths[:, :, 7:], items, limits(), cfg, seed=5)
    policy = Refreshed("p", [0, 7], [PathPolicy("p", paths, items, limits(), cfg, seed=5), later])
    res = simulate(items, limits(), demand, policy, start_on_hand=start, lead_times=lead)
    np.testing.assert_allclose(res.orders[:7], once.orders[:7])
    assert (res.orders[7:].sum(axis=0) > 1.5 * once.orders[7:].sum(axis=0)).all()
    np.testing.assert_allclose(  # conservation holds whatever decides
        5.0 + res.receipts.sum(axis=0), res.sales.sum(axis=0) + res.outdated.sum(axis=0) + res.on_hand[-1]
    )


def test_reforecast_every_must_be_positive() -> None:
    assert load_config(["backtest.reforecast_every=7"]).backtest.reforecast_every == 7
    assert load_config([]).backtest.reforecast_every is None
    with pytest.raises(ConfigError, match=r"backtest\.reforecast_every"):
        load_config(["backtest.reforecast_every=0"])
