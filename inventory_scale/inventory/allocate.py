"""Per-warehouse allocation: order quantities that share a capital budget and a capacity.

Every series of a warehouse has a concave expected-profit curve ``F_i`` of its order-up-to level
(:class:`~inventory_scale.inventory.newsvendor.ProfitCurve`). The warehouse solves::

    max  sum_i F_i(position_i + q_i)
    s.t. sum_i cost_i q_i <= budget,   sum_i volume_i q_i <= capacity,
         q_i in {0} U [moq_i, inf),    q_i a multiple of case_pack_i

1. **Lagrangian relaxation** (exact for the continuous problem): with shadow prices ``lam`` per
   unit of capital and ``mu`` per m^3, each series orders up to the last level whose marginal
   value exceeds ``lam cost_i + mu volume_i``. ``lam`` is found by bisection so the budget is
   met; when capacity binds too, ``mu`` by an outer bisection (``lam`` re-solved for each ``mu``).
2. **Rounding**: each quantity goes to the better neighbouring case-pack multiple (Lagrangian
   value); one below the MOQ goes to 0 or up to the MOQ, whichever is worth more.
3. **Repair**: while a constraint is exceeded, remove the pack steps that lose the least expected
   profit per share of the excess they remove; then **fill** remaining slack with the steps that
   gain the most. The result never exceeds budget or capacity. A second start (every quantity
   rounded down, then filled) is kept when better, and an **improvement** pass tries opening the
   orders an MOQ kept at zero (forcing one, repairing and filling the rest).
4. **Exchange**: a pairwise local search moves one step (a pack, or a whole MOQ order) from the
   series where it is worth least to the series where one more is worth most, whenever both
   limits still hold and total profit rises, then fills any slack this frees. It rebalances the
   two resources when rounding has spent one of them and left the other slack. In warehouses of
   at most ``IMPROVE_MAX_SERIES`` series, **ejection** moves add one (large) step and repair the
   rest, or remove one and refill, where that pays.

``solver="milp"`` (``inventory/milp.py``) solves the integer problem with HiGHS under a time
limit and keeps the greedy result whenever it is as good (the fallback). Each row gets the
constraint that set its quantity (:data:`~inventory_scale.schema.BINDING_VALUES`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from inventory_scale.inventory.local_search import eject, excess_share, exchange, fill, gain_at, repair
from inventory_scale.inventory.problem import F64, Allocation, Problem

__all__ = ["Allocation", "Problem", "allocate", "greedy", "lagrangian"]

log = logging.getLogger(__name__)

BISECT_ITERS = 40
REL_TOL = 1e-3  # bisection stops once a tight resource is used to within this share of its limit
#                 (the fill and exchange passes then spend what is left)
PRICE_TOL = 1e-6  # ... or once the bracket on the shadow price is this narrow (relative)
MAX_TRIALS = 20  # MOQ-blocked orders the improvement pass tries to open ...
IMPROVE_MAX_SERIES = 1000  # ... in warehouses of at most this many series


def _relaxed(p: Problem, lam: float, mu: float) -> F64:
    return _relaxed_thr(p, lam * p.cost + mu * p.volume)


def _relaxed_thr(p: Problem, thr: F64) -> F64:
    """``[N]`` continuous order at shadow cost ``thr`` per unit: up to the last level worth more."""
    return np.maximum(p.curve.level_for(thr) - p.position, 0.0)


def _bisect(
    p: Problem, resource: F64, limit: float, other: F64, lo: float = 0.0, hi: float | None = None
) -> float:
    """Smallest price ``x >= 0`` with ``resource . q(x resource + other) <= limit`` (to REL_TOL).

    ``[lo, hi]`` brackets the price when the caller knows one (warm start of the outer search).
    """
    if resource @ _relaxed_thr(p, other) <= limit:
        return 0.0
    if hi is None:
        pos = resource > 0
        top = np.where(pos, np.maximum(p.curve.slopes[:, 0], 0.0) / np.where(pos, resource, 1.0), 0.0)
        hi = max(float(np.max(top)), 1e-12) * 1.000001 + 1e-12
    for _ in range(BISECT_ITERS):
        mid = 0.5 * (lo + hi)
        use = resource @ _relaxed_thr(p, mid * resource + other)
        if use <= limit:
            hi = mid
            if use >= limit * (1.0 - REL_TOL):
                break
        else:
            lo = mid
        if hi - lo <= PRICE_TOL * hi:
            break
    return hi


def lagrangian(p: Problem) -> tuple[F64, float, float]:
    """Continuous optimum under budget and capacity: ``(q [N], lam, mu)``.

    When both bind, ``mu`` is bisected and ``lam(mu)`` re-solved for each; ``lam(mu)`` falls as
    ``mu`` rises, so each inner search is bracketed by the prices at the outer bracket's ends.
    """
    zero = np.zeros(p.n)
    q = _relaxed(p, 0.0, 0.0)
    if p.cost @ q <= p.budget and p.volume @ q <= p.capacity:
        return q, 0.0, 0.0
    lam = _bisect(p, p.cost, p.budget, zero)
    q = _relaxed(p, lam, 0.0)
    if p.volume @ q <= p.capacity:
        return q, lam, 0.0
    mu = _bisect(p, p.volume, p.capacity, zero)
    q = _relaxed(p, 0.0, mu)
    if p.cost @ q <= p.budget:
        return q, 0.0, mu
    lo, hi = 0.0, mu  # both bind: outer bisection on mu, lam re-solved for each
    lam_lo = lam  # lam at mu = lo (the budget-only price) ...
    lam_hi = _bisect(p, p.cost, p.budget, hi * p.volume, 0.0, lam_lo)  # ... and at mu = hi
    for _ in range(BISECT_ITERS):
        mid = 0.5 * (lo + hi)
        lam_mid = _bisect(p, p.cost, p.budget, mid * p.volume, lam_hi * (1 - 1e-9), lam_lo)
        use = p.volume @ _relaxed(p, lam_mid, mid)
        if use <= p.capacity:
            hi, lam_hi = mid, lam_mid
            if use >= p.capacity * (1.0 - REL_TOL):
                break
        else:
            lo, lam_lo = mid, lam_mid
        if hi - lo <= PRICE_TOL * hi:
            break
    return _relaxed(p, lam_hi, hi), lam_hi, hi


def round_to_packs(p: Problem, q: F64, thr: F64) -> tuple[F64, F64]:
    """Round to case packs and the MOQ by Lagrangian value; returns ``(rounded, packs_only)``."""
    pack = p.case_pack
    lo = np.floor(q / pack + 1e-9) * pack
    hi = np.where(q > lo + 1e-9, lo + pack, lo)

    def lag(x: F64) -> F64:
        return p.curve.value(p.position + x) - thr * x

    packs = np.where(lag(hi) > lag(lo), hi, lo)
    m = p.moq_packs
    small = (packs > 0) & (packs < m)
    out = np.where(small & (lag(m) > lag(np.zeros(p.n))), m, np.where(small, 0.0, packs))
    return out, packs


def improve(p: Problem, core: _Core, start: F64, trials: int) -> F64:
    """Open the orders an MOQ kept at zero, one at a time, where it pays.

    A trial fixes one closed series at its smallest sensible order (the MOQ, or its rounded
    relaxed quantity when larger), keeps the orders opened so far, and re-solves every other
    series under what is left of the limits, then runs :func:`exchange` on the whole; a second
    variant opens it in the incumbent and repairs the rest (cheapest steps first). The first
    trial that beats ``start`` (or the last kept trial) is kept and the search goes on from it.
    Candidates are tried best first (value of the MOQ order per unit of shadow cost), ``trials``
    in all.
    """
    best, best_gain = start, float(p.gain(start).sum())
    m = p.moq_packs
    fixed = np.zeros(p.n)  # orders opened so far (0 = not fixed)
    tried = np.zeros(p.n, dtype=bool)
    while trials > 0:
        closed = np.flatnonzero((best == 0) & (core.relaxed > 0) & (m > p.case_pack) & ~tried)
        if closed.size == 0:
            break
        size = np.maximum(
            m[closed], np.round(core.relaxed[closed] / p.case_pack[closed]) * p.case_pack[closed]
        )
        value = gain_at(p, closed, size) - gain_at(p, closed, np.zeros(closed.size))
        price = np.maximum(core.lam * p.cost[closed] + core.mu * p.volume[closed], 1e-12) * size
        improved = False
        for k in np.argsort(-value / price, kind="stable"):
            if trials <= 0 or value[k] <= 0:
                trials = 0 if value[k] <= 0 else trials
                break
            i = closed[k]
            tried[i] = True
            trials -= 1
            trial = fixed.copy()
            trial[i] = size[k]
            budget, capacity = p.budget - float(p.cost @ trial), p.capacity - float(p.volume @ trial)
            if budget < 0 or capacity < 0:
                continue
            others = np.flatnonzero(trial == 0)
            trial[others] = _solve(p.take(others, budget, capacity)).q
            trial = exchange(p, trial)
            local = best.copy()  # the same order opened in the incumbent, the rest repaired
            local[i] = size[k]
            keep = fixed > 0
            keep[i] = True
            local = exchange(p, fill(p, repair(p, local, frozen=keep)[0]))
            if p.gain(local).sum() > p.gain(trial).sum():
                trial = local
            gain = float(p.gain(trial).sum())
            if gain > best_gain + 1e-9 * max(1.0, abs(best_gain)):
                best, best_gain = trial, gain
                fixed[i] = size[k]
                improved = True
                break
        if not improved:
            break
    return best


def binding(
    p: Problem,
    q: F64,
    wanted: F64,
    relaxed: F64,
    packs_only: F64,
    cut: npt.NDArray[np.bool_],
    lam: float,
    mu: float,
    repaired: str,
) -> npt.NDArray[np.str_]:
    """The constraint that set each quantity (see :data:`schema.BINDING_VALUES`).

    In order of precedence: ``budget`` / ``capacity`` where a shadow price or the repair cut the
    quantity (the resource with the larger shadow cost for that series), ``moq`` where the MOQ
    rule moved a rounded quantity, ``shelf_life`` where outdating lowered the level, ``case_pack``
    where rounding to packs changed it, else ``none``.
    """
    tol = 1e-6 * np.maximum(1.0, wanted)
    price_b, price_c = lam * p.cost, mu * p.volume
    by_lagrange = relaxed < wanted - np.maximum(tol, 0.5)
    lagrange_name = np.where(price_b >= price_c, "budget", "capacity")
    if repaired != "none":
        repair_name = np.full(p.n, repaired)
    elif lam > 0 or mu > 0:
        repair_name = lagrange_name
    else:  # cut by the exchange: the resource closer to its limit
        tighter = excess_share(float(p.cost @ q), p.budget) >= excess_share(float(p.volume @ q), p.capacity)
        repair_name = np.full(p.n, "budget" if tighter else "capacity")
    moq_rule = (packs_only > 0) & (packs_only < p.moq_packs - 1e-9) & (np.abs(q - packs_only) > 1e-9)
    shelf = (
        np.zeros(p.n, dtype=bool)
        if p.shelf_free_level is None
        else (p.shelf_free_level - p.position > wanted + 0.5) & (q <= wanted + p.case_pack)
    )
    pack_round = (np.abs(q - relaxed) > 1e-6) & (p.case_pack > 1)
    out = np.full(p.n, "none", dtype=object)
    out = np.where(pack_round, "case_pack", out)
    out = np.where(shelf, "shelf_life", out)
    out = np.where(moq_rule, "moq", out)
    out = np.where(by_lagrange, lagrange_name, out)
    out = np.where(cut & (q < packs_only), repair_name, out)
    return out.astype(str)


@dataclass(frozen=True)
class _Core:
    """Greedy result before the improvement pass."""

    q: F64
    relaxed: F64
    lam: float
    mu: float
    packs_only: F64
    cut: npt.NDArray[np.bool_]
    which: str


def _solve(p: Problem) -> _Core:
    """Lagrangian, rounding, repair and fill; a second start rounds everything down, then fills."""
    relaxed, lam, mu = lagrangian(p)
    thr = lam * p.cost + mu * p.volume
    rounded, packs_only = round_to_packs(p, relaxed, thr)
    repaired, cut, which = repair(p, rounded)
    q = fill(p, repaired, lam, mu)
    down = np.floor(relaxed / p.case_pack + 1e-9) * p.case_pack
    down = fill(p, np.where(down < p.moq_packs - 1e-9, 0.0, down), lam, mu)
    if p.gain(down).sum() > p.gain(q).sum() + 1e-12:
        q, cut = down, down < packs_only
    return _Core(q, relaxed, lam, mu, packs_only, cut, which)


def greedy(p: Problem, trials: int | None = None) -> Allocation:
    """Lagrangian relaxation, pack/MOQ rounding, repair, fill, improvement and exchange (module docstring).

    ``trials``: MOQ-blocked orders the improvement pass tries (default :data:`MAX_TRIALS` up to
    :data:`IMPROVE_MAX_SERIES` series, none above: integrality matters little in large warehouses).
    """
    t0 = time.perf_counter()
    wanted = _relaxed(p, 0.0, 0.0)
    core = _solve(p)
    start = exchange(p, core.q)
    small = p.n <= IMPROVE_MAX_SERIES
    q = improve(p, core, start, (MAX_TRIALS if small else 0) if trials is None else trials)
    if small:
        q = eject(p, q)
    return Allocation(
        qty=q,
        wanted=wanted,
        relaxed=core.relaxed,
        binding=binding(
            p,
            q,
            wanted,
            core.relaxed,
            core.packs_only,
            core.cut | (q < core.q),
            core.lam,
            core.mu,
            core.which,
        ),
        budget_price=core.lam,
        capacity_price=core.mu,
        objective=float(p.gain(q).sum()),
        solver="greedy",
        seconds=time.perf_counter() - t0,
    )


def allocate(
    p: Problem,
    solver: str = "greedy",
    *,
    time_limit_s: float = 30.0,
    mip_gap: float = 1e-3,
    segments: int = 24,
) -> Allocation:
    """Solve one warehouse with ``solver`` (``greedy`` or ``milp``; MILP falls back to greedy)."""
    result = greedy(p)
    if solver != "milp" or p.n == 0:
        return result
    from inventory_scale.inventory.milp import solve_milp

    t0 = time.perf_counter()
    q = solve_milp(p, result, time_limit_s=time_limit_s, mip_gap=mip_gap, segments=segments)
    seconds = result.seconds + time.perf_counter() - t0
    if q is None:
        return replace(result, solver="milp->greedy", seconds=seconds)
    objective = float(p.gain(q).sum())
    if objective <= result.objective + 1e-9 * max(1.0, abs(result.objective)):
        return replace(result, solver="milp->greedy", seconds=seconds)
    changed = np.abs(q - result.qty) > 1e-9
    names = np.where(changed & (result.binding == "none"), "case_pack", result.binding)
    return replace(
        result, qty=q, binding=names.astype(str), objective=objective, solver="milp", seconds=seconds
    )
