"""Newsvendor: closed-form optimum and expected profit against scipy, exact profit curves."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from inventory_scale import schema as S
from inventory_scale.cli import load_config
from inventory_scale.config import PolicyConfig
from inventory_scale.errors import ConfigError
from inventory_scale.inventory.demand import ProtectionDemand, protection_demand
from inventory_scale.inventory.items import Items, leftover_value, sell_by_days
from inventory_scale.inventory.newsvendor import (
    critical_ratio,
    expected_fill_rate,
    profit_curve,
    sample_quantile,
)
from inventory_scale.inventory.plan import plan_orders, plan_rows


def items(n: int, price: float, cost: float, salvage: float, goodwill: float, shelf: float = np.nan) -> Items:
    f = np.full
    return Items(
        warehouse=np.zeros(n, dtype=np.int64),
        price=f(n, price),
        cost=f(n, cost),
        salvage=f(n, salvage),
        goodwill=f(n, goodwill),
        holding_rate=f(n, 0.0),
        volume=f(n, 0.01),
        case_pack=f(n, 1.0),
        moq=f(n, 0.0),
        lead_time_days=f(n, 3.0),
        lead_time_std_days=f(n, 0.0),
        review_days=f(n, 7, dtype=np.int64),
        shelf_life_days=f(n, shelf),
        leftover=f(n, salvage),  # one-shot newsvendor: leftovers are salvaged
    )


def plain(samples: np.ndarray) -> ProtectionDemand:
    return ProtectionDemand(samples, np.zeros_like(samples), samples, np.full_like(samples, np.inf))


def stratified(ppf, s: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """``s`` equally likely samples of a distribution: its quantiles at the mid-levels."""
    return np.asarray(ppf((np.arange(s) + 0.5) / s), dtype=np.float64)


def test_critical_ratio_and_leftover_value() -> None:
    cr = critical_ratio(np.array([10.0]), np.array([6.0]), np.array([2.0]), np.array([1.0]))
    assert cr[0] == pytest.approx((10 - 6 + 1) / (10 - 2 + 1))
    cost, salvage, h = np.array([6.0]), np.array([2.0]), np.array([0.25])
    assert leftover_value(cost, salvage, h, 7, "salvage")[0] == 2.0
    assert leftover_value(cost, salvage, h, 7, "carryover")[0] == pytest.approx(6.0 * (1 - 0.25 * 7 / 365))
    assert leftover_value(cost, salvage, np.array([100.0]), 7, "carryover")[0] == 2.0  # never below salvage


@pytest.mark.parametrize(
    ("price", "cost", "salvage", "goodwill"), [(10, 6, 2, 1), (10, 3, 1, 0), (5, 4.5, 0, 0.5)]
)
def test_normal_newsvendor_matches_closed_form(
    price: float, cost: float, salvage: float, goodwill: float
) -> None:
    mu, sigma, s = 200.0, 30.0, 20000
    d = stratified(stats.norm(mu, sigma).ppf, s)[None, :]
    it = items(1, price, cost, salvage, goodwill)
    curve = profit_curve(plain(d), it)
    cr = (price - cost + goodwill) / (price - salvage + goodwill)
    level = curve.level_for(0.0)[0]
    assert level == pytest.approx(stats.norm(mu, sigma).ppf(cr), abs=0.05 * sigma)
    # expected profit: (p - c) E[min(D, S)] - g E[(D - S)+] - (c - v) E[(S - D)+], normal loss function
    z = (level - mu) / sigma
    short = sigma * (stats.norm.pdf(z) - z * stats.norm.sf(z))
    over = level - mu + short
    expected = (price - cost) * (mu - short) - goodwill * short - (cost - salvage) * over
    assert curve.value(level)[0] == pytest.approx(expected, rel=2e-3)
    # the optimum is a maximum of the sample profit
    for other in (level - 5.0, level + 5.0):
        assert curve.value(other)[0] <= curve.value(level)[0] + 1e-9


@pytest.mark.parametrize("lam", [0.8, 4.0, 25.0])
def test_poisson_newsvendor_is_the_poisson_quantile(lam: float) -> None:
    d = stratified(stats.poisson(lam).ppf, 4000)[None, :]
    for price, cost, salvage, goodwill in [(10, 6, 2, 1), (10, 2, 1, 0.5), (10, 9, 0, 0)]:
        it = items(1, price, cost, salvage, goodwill)
        cr = (price - cost + goodwill) / (price - salvage + goodwill)
        assert profit_curve(plain(d), it).level_for(0.0)[0] == stats.poisson(lam).ppf(cr)
        assert sample_quantile(d, np.array([cr]))[0] == stats.poisson(lam).ppf(cr)


def test_fixed_service_level_overrides_the_critical_ratio() -> None:
    d = stratified(stats.poisson(10.0).ppf, 4000)[None, :]
    curve = profit_curve(plain(d), items(1, 10, 6, 2, 1), service_level=0.9)
    assert curve.level_for(0.0)[0] == stats.poisson(10.0).ppf(0.9)


def test_profit_curve_is_exact_and_concave_with_perishables() -> None:
    rng = np.random.default_rng(3)
    n, s = 6, 300
    sell = rng.gamma(2.0, 10.0, (n, s))
    expiry = sell + rng.gamma(2.0, 5.0, (n, s))
    expiry[:3] = np.inf  # first three are not perishable
    it = items(n, 10, 6, 1.5, 1.0)
    it = Items(**{**it.__dict__, "leftover": np.full(n, 5.9)})  # carry-over value above salvage
    curve = profit_curve(ProtectionDemand(sell, sell * 0.3, sell, expiry), it)
    assert (np.diff(curve.slopes, axis=1) <= 1e-12).all()
    for level in (0.0, 7.3, 21.0, 44.4, 95.0):
        s_ = np.full((n, 1), level)
        direct = (
            4.0 * np.minimum(sell, s_)
            - 1.0 * np.maximum(sell - s_, 0)
            - (6 - 5.9) * np.maximum(s_ - sell, 0)
            - (5.9 - 1.5) * np.where(np.isfinite(expiry), np.maximum(s_ - expiry, 0), 0)
        ).mean(axis=1)
        np.testing.assert_allclose(curve.value(level), direct, rtol=1e-9, atol=1e-9)
    # outdating lowers the optimum of the perishable rows
    assert (
        curve.level_for(0.0)[3:] < sample_quantile(sell[3:], np.full(3, (10 - 6 + 1) / (10 - 5.9 + 1)))
    ).all()


def test_expected_fill_rate() -> None:
    pi = np.tile(np.arange(10.0, 20.0), (1, 1))  # cycle demand = pi - lead = 5 .. 14
    demand = ProtectionDemand(pi, np.full_like(pi, 5.0), pi, np.full_like(pi, np.inf))
    assert expected_fill_rate(demand, np.array([20.0]))[0] == 1.0
    # level 15: shortfall over the cycle = mean((pi - 15)+) = (1 + 2 + 3 + 4) / 10, cycle demand 9.5
    assert expected_fill_rate(demand, np.array([15.0]))[0] == pytest.approx(1 - 1.0 / 9.5)


def test_carryover_days_value_stock_the_season_will_not_absorb_at_salvage() -> None:
    cost, salvage = 6.0, 2.0
    carry_value = leftover_value(np.array([cost]), np.array([salvage]), np.array([0.25]), 7, "carryover")
    base = items(1, 10, cost, salvage, 1)
    it = dataclasses.replace(base, holding_rate=np.full(1, 0.25), leftover=carry_value)
    assert np.isnan(sell_by_days(it, None)[0]) and sell_by_days(it, 21)[0] == 28.0  # review 7 + 21
    perishable = dataclasses.replace(it, shelf_life_days=np.array([10.0]))
    assert sell_by_days(perishable, 21)[0] == 10.0 and sell_by_days(perishable, None)[0] == 10.0
    with pytest.raises(ConfigError, match="carryover_days"):
        load_config(["policy.carryover_days=0"])
    # Poisson(2) a day; the protection interval is lead 3 + review 7 = 10 days
    rng = np.random.default_rng(0)
    season = rng.poisson(2.0, (1, 4000, 60)).astype(np.float64)
    ended = season.copy()
    ended[:, :, 10:] = 0.0  # the season ends with the interval: nothing absorbs what is left
    lead = np.full((1, 4000), 3.0)
    cr_carry = critical_ratio(it.price, it.cost, it.leftover, it.goodwill)[0]
    cr_salvage = critical_ratio(it.price, it.cost, it.salvage, it.goodwill)[0]
    assert cr_carry > 0.99 and cr_salvage == pytest.approx(5 / 9)
    for paths, ratio in ((season, cr_carry), (ended, cr_salvage)):
        d = protection_demand(paths, lead, it.review_days, sell_by_days(it, 21))
        level = profit_curve(d, it).level_for(0.0)[0]
        assert level == pytest.approx(sample_quantile(d.pi, ratio)[0], abs=1.0), ratio
    # without the option the ended season is still stocked at the carry-over ratio
    d = protection_demand(ended, lead, it.review_days, sell_by_days(it, None))
    assert profit_curve(d, it).level_for(0.0)[0] == sample_quantile(d.pi, cr_carry)[0]
    assert sample_quantile(d.pi, cr_carry)[0] >= sample_quantile(d.pi, cr_salvage)[0] + 8
    # the plan names the cap: binding shelf_life, the reason says carry-over (not outdating)
    policy = PolicyConfig(carryover_days=21)
    d = protection_demand(ended, lead, it.review_days, sell_by_days(it, 21))
    problem, alloc = plan_orders(d, it, np.zeros(1), budget=1e9, capacity=1e9, policy=policy)
    keys = pl.DataFrame({S.SKU_ID: ["A"], S.WAREHOUSE_ID: ["W"]})
    rows = plan_rows(keys, dt.date(2025, 12, 2), problem, alloc, d, it, policy)
    assert rows[S.ORDER_QTY][0] == pytest.approx(sample_quantile(d.pi, cr_salvage)[0], abs=1.0)
    assert rows[S.BINDING_CONSTRAINT][0] == "shelf_life"
    assert rows[S.REASON][0].startswith("carry-over 28 d"), rows[S.REASON][0]
