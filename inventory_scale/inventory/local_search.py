"""Repair, fill and local search over pack steps for the greedy allocation (``allocate.py``).

- :func:`repair` removes the steps that lose the least profit per share of the excess until
  budget and capacity hold; :func:`fill` adds the steps that gain most while both still hold.
- :func:`exchange`: pairwise moves of one step from where it is worth least to where one more is
  worth most; :func:`eject`: one-to-many moves (add one large step and repair the rest, or remove
  one and refill) for small warehouses.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from inventory_scale.inventory.problem import F64, Problem

MAX_ROUNDS = 200
SWAP_ROUNDS = 200  # pairwise exchanges the local search makes at most ...
SWAP_POOL = 256  # ... between this many best removal and addition candidates
EJECT_CANDIDATES = 30  # one-to-many moves tried per round and kind (small warehouses, see allocate.py)
EJECT_ROUNDS = 20


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
        which = "budget" if excess_share(over_b, p.budget) >= excess_share(over_c, p.capacity) else "capacity"
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
        loss = gain_at(p, cand, q[cand]) - gain_at(p, cand, q[cand] - d[cand])
        order = cand[np.argsort(loss / weight[cand], kind="stable")]
        covered = (np.cumsum(free_b[order]) >= over_b) & (np.cumsum(free_c[order]) >= over_c)
        k = max(int(np.argmax(covered)), 1) if covered.any() else order.size
        take = order[:k]
        q[take] -= d[take]
        cut[take] = True
    return np.maximum(q, 0.0), cut, which


def excess_share(over: float, limit: float) -> float:
    """Excess as a share of its limit (0 for an unlimited resource)."""
    return over / max(limit, 1e-12) if np.isfinite(limit) else 0.0


def gain_at(p: Problem, idx: npt.NDArray[np.int64], q: F64) -> F64:
    """Expected profit of series ``idx`` when ordering ``q`` more units."""
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
        gain = gain_at(p, cand, q[cand] + u[cand]) - gain_at(p, cand, q[cand])
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
