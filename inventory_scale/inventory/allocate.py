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

from inventory_scale.inventory.newsvendor import ProfitCurve

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
BISECT_ITERS = 40
REL_TOL = 1e-3  # bisection stops once a tight resource is used to within this share of its limit
#                 (the fill and exchange passes then spend what is left)
PRICE_TOL = 1e-6  # ... or once the bracket on the shadow price is this narrow (relative)
MAX_ROUNDS = 200
MAX_TRIALS = 20  # MOQ-blocked orders the improvement pass tries to open ...
IMPROVE_MAX_SERIES = 1000  # ... in warehouses of at most this many series
SWAP_ROUNDS = 200  # pairwise exchanges the local search makes at most ...
SWAP_POOL = 256  # ... between this many best removal and addition candidates
EJECT_CANDIDATES = 30  # one-to-many moves tried per round and kind (warehouses <= IMPROVE_MAX_SERIES)
EJECT_ROUNDS = 20


@dataclass(frozen=True)
class Problem:
    """One warehouse's decision: ``N`` series sharing a budget and a capacity.

    Attributes:
        curve: expected profit per order-up-to level, ``N`` rows.
        position: ``[N]`` inventory position (on hand + in transit) before ordering.
        cost: ``[N]`` unit cost (capital per unit ordered).
        volume: ``[N]`` m^3 per unit.
        case_pack: ``[N]`` order multiple (>= 1).
        moq: ``[N]`` minimum order quantity (0 = none).
        budget: capital available for these orders (``inf`` = unconstrained).
        capacity: m^3 available for these orders (``inf`` = unconstrained).
        shelf_free_level: ``[N]`` optional order-up-to level the series would have without a shelf
            life (names ``shelf_life`` as the binding constraint where it is higher).
    """

    curve: ProfitCurve
    position: F64
    cost: F64
    volume: F64
    case_pack: F64
    moq: F64
    budget: float = float("inf")
    capacity: float = float("inf")
    shelf_free_level: F64 | None = None

    @property
    def n(self) -> int:
        return int(self.position.size)

    @property
    def moq_packs(self) -> F64:
        """``[N]`` the smallest non-zero order: the MOQ rounded up to whole packs."""
        return np.maximum(np.ceil(self.moq / self.case_pack - 1e-9), 1.0) * self.case_pack

    def take(self, idx: npt.NDArray[np.int64], budget: float, capacity: float) -> Problem:
        """The sub-problem of the series ``idx`` with the given limits."""
        return Problem(
            self.curve.take(idx),
            self.position[idx],
            self.cost[idx],
            self.volume[idx],
            self.case_pack[idx],
            self.moq[idx],
            budget,
            capacity,
            None if self.shelf_free_level is None else self.shelf_free_level[idx],
        )

    def gain(self, qty: F64) -> F64:
        """``[N]`` expected profit of ordering ``qty`` over ordering nothing."""
        return self.curve.value(self.position + qty) - self.curve.value(self.position)


@dataclass(frozen=True)
class Allocation:
    """The order of every series of one warehouse and why.

    Attributes:
        qty: ``[N]`` order quantities (pack multiples, 0 or >= MOQ).
        wanted: ``[N]`` unconstrained (continuous) quantities.
        relaxed: ``[N]`` Lagrangian (continuous) quantities under budget and capacity.
        binding: ``[N]`` constraint that set each quantity (``none``, ``budget``, ...).
        budget_price: shadow price of capital (per currency unit), 0 when the budget is slack.
        capacity_price: shadow price of capacity (per m^3), 0 when capacity is slack.
        objective: total expected profit of the orders (over ordering nothing).
        solver: ``greedy``, ``milp`` or ``milp->greedy`` (MILP failed or was no better).
        seconds: solve time.
    """

    qty: F64
    wanted: F64
    relaxed: F64
    binding: npt.NDArray[np.str_]
    budget_price: float
    capacity_price: float
    objective: float
    solver: str
    seconds: float


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


def _step_down(p: Problem, q: F64) -> F64:
    """Units removed by one step down: a pack, or the whole order when that would break the MOQ."""
    return np.where(q - p.case_pack >= p.moq_packs - 1e-9, p.case_pack, q)


def _step_up(p: Problem, q: F64) -> F64:
    return np.where(q > 0, p.case_pack, p.moq_packs)


def repair(
    p: Problem, q: F64, frozen: npt.NDArray[np.bool_] | None = None
) -> tuple[F64, npt.NDArray[np.bool_], str]:
    """Remove the cheapest steps until budget and capacity hold; returns ``(q, cut mask, which)``.

    Steps are ranked by profit lost per share of the remaining excess they remove, a step's
    resource counted only up to that excess (a whole MOQ order that frees far more than is needed
    is not cheap just because it is large). Each round removes the cheapest steps that do not yet
    cover the excess, then re-ranks, so the step that closes it is chosen against what is left.
    ``frozen`` series are left alone unless nothing else can be cut.
    """
    q = q.copy()
    cut = np.zeros(p.n, dtype=bool)
    which = "none"
    while True:  # every round removes at least one step of a finite order: it ends
        over_b = float(p.cost @ q) - p.budget
        over_c = float(p.volume @ q) - p.capacity
        viol_b = over_b > 1e-9 * max(1.0, p.budget)
        viol_c = over_c > 1e-9 * max(1.0, p.capacity)
        if not viol_b and not viol_c:
            return q, cut, which
        which = "budget" if _share(over_b, p.budget) >= _share(over_c, p.capacity) else "capacity"
        d = _step_down(p, q)
        free_b, free_c = p.cost * d, p.volume * d
        weight = np.zeros(p.n)
        if viol_b:
            weight += np.minimum(free_b, over_b) / over_b
        if viol_c:
            weight += np.minimum(free_c, over_c) / over_c
        movable = (q > 0) & (weight > 0)
        cand = np.flatnonzero(movable & ~frozen) if frozen is not None else np.flatnonzero(movable)
        if cand.size == 0:
            cand = np.flatnonzero(movable)
        if cand.size == 0:
            break
        loss = _gain_at(p, cand, q[cand]) - _gain_at(p, cand, q[cand] - d[cand])
        order = cand[np.argsort(loss / weight[cand], kind="stable")]
        covered = (np.cumsum(free_b[order]) >= over_b) & (np.cumsum(free_c[order]) >= over_c)
        k = max(int(np.argmax(covered)), 1) if covered.any() else order.size
        take = order[:k]
        q[take] -= d[take]
        cut[take] = True
    return np.maximum(q, 0.0), cut, which


def _share(over: float, limit: float) -> float:
    """Excess as a share of its limit (0 for an unlimited resource)."""
    return over / max(limit, 1e-12) if np.isfinite(limit) else 0.0


def _gain_at(p: Problem, idx: npt.NDArray[np.int64], q: F64) -> F64:
    return p.curve.value_at(idx, p.position[idx] + q)


def fill(
    p: Problem, q: F64, lam: float = 0.0, mu: float = 0.0, exclude: npt.NDArray[np.bool_] | None = None
) -> F64:
    """Add the steps that gain most per unit of resource while both limits hold.

    Resources are priced at the shadow prices ``lam``, ``mu`` when there are any, else each as
    a share of its limit. ``exclude`` series get nothing.
    """
    q = q.copy()
    if lam > 0 or mu > 0:
        scale = lam * p.cost + mu * p.volume
    else:
        scale = np.where(np.isfinite(p.budget), p.cost / max(p.budget, 1e-12), 0.0) + np.where(
            np.isfinite(p.capacity), p.volume / max(p.capacity, 1e-12), 0.0
        )
    for _ in range(MAX_ROUNDS):
        slack_b = p.budget - p.cost @ q
        slack_c = p.capacity - p.volume @ q
        u = _step_up(p, q)
        fits = (p.cost * u <= slack_b + 1e-9) & (p.volume * u <= slack_c + 1e-9)
        if exclude is not None:
            fits &= ~exclude
        cand = np.flatnonzero(fits)
        if cand.size == 0:
            return q
        gain = _gain_at(p, cand, q[cand] + u[cand]) - _gain_at(p, cand, q[cand])
        keep = gain > 1e-9 * np.maximum(1.0, np.abs(gain))
        cand, gain = cand[keep], gain[keep]
        if cand.size == 0:
            return q
        ratio = gain / np.maximum(u[cand] * scale[cand], 1e-300)
        order = cand[np.argsort(-ratio, kind="stable")]
        ok = (np.cumsum(p.cost[order] * u[order]) <= slack_b + 1e-9) & (
            np.cumsum(p.volume[order] * u[order]) <= slack_c + 1e-9
        )
        k = int(np.argmin(ok)) if not ok.all() else order.size
        take = order[: max(k, 1)]
        q[take] += u[take]
    return q


def exchange(p: Problem, q: F64, rounds: int = SWAP_ROUNDS, pool: int = SWAP_POOL) -> F64:
    """Pairwise local search: take one step down at ``i`` and one up at ``j`` where it pays.

    Each round scores every pair of the ``pool`` cheapest removals (profit lost per unit of
    resource freed) and ``pool`` best additions (profit gained per unit of resource used) at once,
    applies the best pair that keeps both limits and raises total profit, and fills the slack.
    Stops after ``rounds`` exchanges or when no pair improves.
    """
    q = q.copy()
    if p.n < 2:
        return q
    scale = np.where(np.isfinite(p.budget), p.cost / max(p.budget, 1e-12), 0.0) + np.where(
        np.isfinite(p.capacity), p.volume / max(p.capacity, 1e-12), 0.0
    )
    scale = np.maximum(scale, 1e-300)
    for _ in range(rounds):
        slack_b = p.budget - float(p.cost @ q)
        slack_c = p.capacity - float(p.volume @ q)
        now = p.gain(q)
        d = np.where(q > 0, _step_down(p, q), 0.0)
        u = _step_up(p, q)
        loss = now - p.gain(q - d)
        gain = p.gain(q + u) - now
        down = np.flatnonzero(q > 0)
        up = np.flatnonzero(gain > 0)
        if down.size == 0 or up.size == 0:
            break
        down = down[np.argsort(loss[down] / (d[down] * scale[down]), kind="stable")[:pool]]
        up = up[np.argsort(-gain[up] / (u[up] * scale[up]), kind="stable")[:pool]]
        need_b = (p.cost[up] * u[up])[None, :] - (p.cost[down] * d[down])[:, None]  # [D, U]
        need_c = (p.volume[up] * u[up])[None, :] - (p.volume[down] * d[down])[:, None]
        ok = (need_b <= slack_b + 1e-9 * max(1.0, abs(p.budget) if np.isfinite(p.budget) else 1.0)) & (
            need_c <= slack_c + 1e-9 * max(1.0, abs(p.capacity) if np.isfinite(p.capacity) else 1.0)
        )
        ok &= down[:, None] != up[None, :]
        net = np.where(ok, gain[up][None, :] - loss[down][:, None], -np.inf)
        k = int(np.argmax(net))
        best = float(net.flat[k])
        if not best > 1e-9 * max(1.0, float(np.abs(now).sum())):
            break
        i, j = down[k // up.size], up[k % up.size]
        q[i] -= d[i]
        q[j] += u[j]
        q = fill(p, q)
    return q


def eject(p: Problem, q: F64, candidates: int = EJECT_CANDIDATES, rounds: int = EJECT_ROUNDS) -> F64:
    """One-to-many moves the pairwise exchange cannot make, for small warehouses.

    *Push*: add one step to a series (a whole pack of 24, say) and repair the others, cheapest
    steps first, until both limits hold again, then fill. *Pull*: take one step away from a
    series and fill the freed room with the best steps elsewhere. Each round tries the
    ``candidates`` most promising series of each kind (value per unit of resource) and keeps the
    best move that raises total profit, followed by :func:`exchange`; stops after ``rounds``
    rounds or when no move pays.
    """
    q = q.copy()
    best_gain = float(p.gain(q).sum())
    scale = np.where(np.isfinite(p.budget), p.cost / max(p.budget, 1e-12), 0.0) + np.where(
        np.isfinite(p.capacity), p.volume / max(p.capacity, 1e-12), 0.0
    )
    scale = np.maximum(scale, 1e-300)
    for _ in range(rounds):
        now = p.gain(q)
        u = _step_up(p, q)
        d = np.where(q > 0, _step_down(p, q), 0.0)
        gain = p.gain(q + u) - now
        loss = now - p.gain(q - d)
        up = np.flatnonzero(gain > 0)
        up = up[np.argsort(-gain[up] / (u[up] * scale[up]), kind="stable")[:candidates]]
        down = np.flatnonzero(q > 0)
        down = down[np.argsort(loss[down] / (d[down] * scale[down]), kind="stable")[:candidates]]
        trial_best, trial_q = best_gain, None
        for j in up:
            t = q.copy()
            t[j] += u[j]
            keep = np.zeros(p.n, dtype=bool)
            keep[j] = True
            t = fill(p, repair(p, t, frozen=keep)[0])
            g = float(p.gain(t).sum())
            if g > trial_best:
                trial_best, trial_q = g, t
        for i in down:
            t = q.copy()
            t[i] -= d[i]
            keep = np.zeros(p.n, dtype=bool)
            keep[i] = True
            t = fill(p, t, exclude=keep)
            g = float(p.gain(t).sum())
            if g > trial_best:
                trial_best, trial_q = g, t
        if trial_q is None or trial_best <= best_gain + 1e-9 * max(1.0, abs(best_gain)):
            break
        q = exchange(p, trial_q)
        best_gain = float(p.gain(q).sum())
    return q


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
        value = _gain_at(p, closed, size) - _gain_at(p, closed, np.zeros(closed.size))
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
        tighter = _share(float(p.cost @ q), p.budget) >= _share(float(p.volume @ q), p.capacity)
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
