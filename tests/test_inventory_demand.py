"""Protection-interval demand from sample paths: analytic Poisson sums, lead-time draws, position."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from inventory_scale import schema as S
from inventory_scale.inventory.demand import (
    cumulative,
    cumulative_at,
    inventory_position,
    paths_from_quantiles,
    protection_demand,
    sample_lead_times,
)


@pytest.fixture(scope="module")
def poisson_paths() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.poisson(2.0, (1, 40000, 14)).astype(np.float64)  # [N=1, S, H] daily Poisson(2)


def test_interval_quantiles_match_the_poisson_sum(poisson_paths: np.ndarray) -> None:
    d = protection_demand(poisson_paths, np.array([4.0]), np.array([3]))  # L + R = 7 days
    for q in (0.5, 0.8, 0.9, 0.95, 0.99):
        assert np.quantile(d.pi[0], q) == pytest.approx(stats.poisson(14.0).ppf(q), abs=1)
        assert np.quantile(d.lead[0], q) == pytest.approx(stats.poisson(8.0).ppf(q), abs=1)
    assert d.pi.mean() == pytest.approx(14.0, rel=0.01) and d.pi.var() == pytest.approx(14.0, rel=0.03)


def test_adding_daily_quantiles_would_be_wrong(poisson_paths: np.ndarray) -> None:
    d = protection_demand(poisson_paths, np.array([4.0]), np.array([3]))
    daily_q95 = np.quantile(poisson_paths[0, :, :7], 0.95, axis=0)  # 5 units on each of 7 days
    summed = daily_q95.sum()
    truth = stats.poisson(14.0).ppf(0.95)  # 20
    assert np.quantile(d.pi[0], 0.95) == pytest.approx(truth, abs=1)
    assert summed >= 1.5 * truth  # 35 vs 20: the sum of daily quantiles is no quantile of the sum


def test_stochastic_lead_time_widens_the_interval(poisson_paths: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    lead = sample_lead_times(np.array([4.0]), np.array([1.5]), poisson_paths.shape[1], rng)
    assert lead.mean() == pytest.approx(4.0, rel=0.02) and lead.std() == pytest.approx(1.5, rel=0.05)
    assert (lead > 0).all()
    d = protection_demand(poisson_paths, lead, np.array([3]))
    # compound: E = lam (E[L] + R), Var ~ lam (E[L] + R) + lam^2 Var(L)
    assert d.pi.mean() == pytest.approx(2.0 * 7.0, rel=0.02)
    assert d.pi.var() == pytest.approx(14.0 + 4.0 * 1.5**2, rel=0.1)
    fixed = sample_lead_times(np.array([4.0]), np.array([0.0]), 3, rng)
    np.testing.assert_array_equal(fixed, [[4.0, 4.0, 4.0]])


def test_fractional_intervals_interpolate_and_extrapolate() -> None:
    paths = np.array([[[1.0, 2.0, 3.0, 4.0]]])  # one path, H = 4
    cum = cumulative(paths)
    assert cumulative_at(cum, np.array([[2.5]]))[0, 0] == pytest.approx(1 + 2 + 0.5 * 3)
    assert cumulative_at(cum, np.array([[6.0]]))[0, 0] == pytest.approx(10 + 2 * 2.5)  # rate 10 / 4 beyond H
    d = protection_demand(paths, np.array([1.0]), np.array([2]), start=1.0)  # days 1..3 of the path
    assert d.pi[0, 0] == pytest.approx(2 + 3 + 4) and d.lead[0, 0] == pytest.approx(2)


def test_float32_paths_give_the_float64_sums() -> None:
    rng = np.random.default_rng(3)
    paths = rng.poisson(4.0, (20, 50, 28))
    lead = rng.uniform(1.0, 9.0, (20, 50))
    shelf = np.where(np.arange(20) % 3 == 0, 6.0, np.nan)
    a = protection_demand(paths.astype(np.float64), lead, np.full(20, 7), shelf, start=2.0)
    b = protection_demand(paths.astype(np.float32), lead, np.full(20, 7), shelf, start=2.0)
    assert cumulative(paths.astype(np.float32)).dtype == np.float32
    for x, y in ((a.pi, b.pi), (a.lead, b.lead), (a.sell, b.sell), (a.expiry, b.expiry)):
        np.testing.assert_allclose(x, y, rtol=1e-6)


def test_perishable_horizons() -> None:
    paths = np.ones((2, 1, 30))  # one unit a day
    d = protection_demand(paths, np.array([3.0, 3.0]), np.array([7, 7]), np.array([5.0, np.nan]))
    assert d.pi[:, 0].tolist() == [10.0, 10.0]
    assert d.sell[:, 0].tolist() == [8.0, 10.0]  # cut at expiry (3 + 5) for the perishable
    assert d.expiry[0, 0] == 8.0 and np.isinf(d.expiry[1, 0])
    assert d.perishable.tolist() == [True, False]


def test_paths_from_quantiles_reproduce_the_interval_quantiles() -> None:
    rng = np.random.default_rng(2)
    levels = [0.5, 0.8, 0.9, 0.95, 0.99]
    q = stats.poisson(30.0).ppf(levels)[None, :]
    mean = np.full((1, 14), 3.0)
    paths = paths_from_quantiles(levels, q, mean, np.array([10]), 2000, rng)
    sums = paths[0, :, :10].sum(axis=1)
    for lv, qq in zip(levels, q[0], strict=True):
        assert np.quantile(sums, lv) == pytest.approx(qq, abs=1.0)
    assert (paths >= 0).all()


def test_inventory_position_counts_inbound_after_the_cutoff() -> None:
    inv = pl.DataFrame(
        {S.SKU_ID: ["a", "b"], S.WAREHOUSE_ID: ["W", "W"], S.ON_HAND: [5.0, 7.0], S.ON_ORDER: [9.0, 4.0]}
    )
    inbound = pl.DataFrame(
        {
            S.SKU_ID: ["a", "a"],
            S.WAREHOUSE_ID: ["W", "W"],
            S.ARRIVAL_DATE: [dt.date(2025, 1, 1), dt.date(2025, 1, 9)],
            S.QUANTITY: [3.0, 6.0],
        }
    )
    out = inventory_position(inv, inbound, dt.date(2025, 1, 2)).sort(S.SKU_ID)
    assert out[S.INVENTORY_POSITION].to_list() == [11.0, 11.0]  # a: 5 + 6 arriving later; b: on_order
