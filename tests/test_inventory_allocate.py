"""Allocation under budget and capacity: Lagrangian vs MILP, limits, packs and MOQ, binding names."""

from __future__ import annotations

import numpy as np
import pytest

from inventory_scale.inventory.allocate import Problem, allocate, greedy, lagrangian
from inventory_scale.inventory.demand import ProtectionDemand
from inventory_scale.inventory.items import Items
from inventory_scale.inventory.newsvendor import profit_curve


def instance(
    seed: int, n: int = 40, budget: float | None = 0.5, capacity: float | None = 0.4, packs: bool = True
) -> Problem:
    """A warehouse of ``n`` negative-binomial series; limits as shares of the unconstrained order."""
    rng = np.random.default_rng(seed)
    s = 200
    mu = rng.lognormal(1.0, 1.0, n) * 7
    d = rng.negative_binomial(2, 2 / (2 + mu[:, None]), (n, s)).astype(np.float64)
    cost = rng.uniform(1, 10, n)
    price = cost * rng.uniform(1.2, 2.0, n)
    pack = rng.choice([1.0, 2.0, 6.0, 12.0], n) if packs else np.ones(n)
    moq = pack * rng.choice([0, 1, 2, 4], n) if packs else np.zeros(n)
    it = Items(
        warehouse=np.zeros(n, dtype=np.int64),
        price=price,
        cost=cost,
        salvage=cost * 0.3,
        goodwill=price * 0.1,
        holding_rate=np.full(n, 0.25),
        volume=rng.uniform(0.01, 0.1, n),
        case_pack=pack,
        moq=moq,
        lead_time_days=np.full(n, 7.0),
        lead_time_std_days=np.zeros(n),
        review_days=np.full(n, 7, dtype=np.int64),
        shelf_life_days=np.full(n, np.nan),
        leftover=cost * 0.99,
    )
    curve = profit_curve(ProtectionDemand(d, d * 0, d, np.full((n, s), np.inf)), it)
    want = curve.level_for(0.0)
    pos = np.floor(want * rng.uniform(0, 0.6, n))
    q0 = want - pos
    return Problem(
        curve,
        pos,
        cost,
        it.volume,
        pack,
        moq,
        budget * float(cost @ q0) if budget else np.inf,
        capacity * float(it.volume @ q0) if capacity else np.inf,
    )


CASES = [(0.5, None), (None, 0.4), (0.5, 0.4), (0.8, 0.5), (0.3, 0.9)]


@pytest.mark.parametrize(("budget", "capacity"), CASES)
def test_greedy_is_within_half_a_percent_of_the_milp(budget: float | None, capacity: float | None) -> None:
    for seed in range(4):
        p = instance(seed, n=30, budget=budget, capacity=capacity)
        g = greedy(p)
        m = allocate(p, "milp", segments=10_000, mip_gap=1e-6)  # every pack a breakpoint: exact
        assert m.objective >= g.objective - 1e-6
        assert (m.objective - g.objective) / abs(m.objective) < 0.005, (seed, g.objective, m.objective)


def test_lagrangian_is_exact_for_the_continuous_problem() -> None:
    p = instance(7, n=60, budget=0.5, capacity=None, packs=False)
    q, lam, mu = lagrangian(p)
    assert lam > 0 and mu == 0
    spend = float(p.cost @ q)
    assert spend <= p.budget and spend >= 0.97 * p.budget
    # no series can gain by moving capital: marginal value per unit of capital >= lam where ordered,
    # <= lam just above every quantity
    level = p.position + q
    above = p.curve.marginal(level) / p.cost
    assert (above <= lam + 1e-9).all()
    ordered = q > 0
    below = p.curve.marginal(np.maximum(level - 1e-6, 0)) / p.cost
    assert (below[ordered] >= lam - 1e-9).all()


@pytest.mark.parametrize("solver", ["greedy", "milp"])
def test_limits_packs_and_moq_always_hold(solver: str) -> None:
    for seed in range(12):
        for budget, capacity in [(0.05, 0.05), (0.5, 0.4), (1.5, 0.1), (0.2, None)]:
            p = instance(100 + seed, n=25, budget=budget, capacity=capacity)
            a = allocate(p, solver, time_limit_s=5.0)
            assert float(p.cost @ a.qty) <= p.budget * (1 + 1e-9)
            assert float(p.volume @ a.qty) <= p.capacity * (1 + 1e-9)
            np.testing.assert_allclose(a.qty % p.case_pack, 0.0, atol=1e-9)
            assert ((a.qty == 0) | (a.qty >= p.moq - 1e-9)).all()
            assert (a.qty >= 0).all()


def test_unconstrained_orders_reach_the_optimum_and_name_packs() -> None:
    p = instance(3, budget=None, capacity=None)
    a = greedy(p)
    assert a.budget_price == 0 and a.capacity_price == 0
    np.testing.assert_allclose(a.wanted, a.relaxed)
    assert set(a.binding) <= {"none", "case_pack", "moq"}
    single = p.case_pack == 1
    free = single & (p.moq <= 1)
    np.testing.assert_allclose(a.qty[free], np.ceil(a.wanted[free] - 1e-9))  # sample levels are integers
    assert (a.binding[free] == "none").all()


def test_binding_constraint_names() -> None:
    tight = instance(4, budget=0.3, capacity=None, packs=False)
    a = greedy(tight)
    cut = a.qty < a.wanted - 0.5
    assert cut.sum() > 10 and set(a.binding[cut]) == {"budget"}
    room = instance(4, budget=None, capacity=0.3, packs=False)
    b = greedy(room)
    assert set(b.binding[b.qty < b.wanted - 0.5]) == {"capacity"}
    # an MOQ far above what is wanted: no order, named moq
    p = instance(5, budget=None, capacity=None, packs=False)
    big = Problem(p.curve, p.position, p.cost, p.volume, p.case_pack, p.moq + 1e6, p.budget, p.capacity)
    c = greedy(big)
    wanted = c.wanted > 0.5
    assert (c.qty[wanted] == 0).all() and set(c.binding[wanted]) == {"moq"}
