"""The allocation as a mixed-integer program, solved by HiGHS (``scipy.optimize.milp``).

``policy.solver=milp`` and the greedy-vs-MILP audit use it. Per series ``i`` with a positive
unconstrained order (others order nothing): ``n_i`` integer packs, ``y_i`` binary "orders at all"
when the MOQ exceeds one pack, and segment variables ``x_ik`` tracing the concave expected-profit
curve between breakpoints (chord slopes fall, so the LP fills them in order without binaries)::

    max  sum_ik slope_ik x_ik
    s.t. sum_k x_ik = pack_i n_i;   moq_packs_i y_i <= pack_i n_i <= pack_i U_i y_i
         sum_i cost_i pack_i n_i <= budget;   sum_i volume_i pack_i n_i <= capacity

Breakpoints sit on pack multiples, every one when a series needs at most ``segments`` packs (the
model is then exact), else ``segments`` evenly spaced ones. The solution is re-scored on the exact
curve by the caller, who keeps the greedy result when the MILP is no better or finds nothing in
its time limit. HiGHS and ``ortools`` must never be loaded in one process (DESIGN.md section 5).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from inventory_scale.inventory.allocate import Allocation, Problem

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]


def _segments(upper: npt.NDArray[np.int64], segments: int) -> tuple[npt.NDArray[np.int64], F64, F64]:
    """Curve segments of every series, in pack counts: ``(owner, lo, hi)`` per segment.

    Series ``i`` gets ``min(upper_i, segments)`` segments between 0 and ``upper_i`` packs with
    breakpoints on whole packs (every pack when ``upper_i <= segments``).
    """
    k = np.minimum(upper, segments)
    owner = np.repeat(np.arange(upper.size), k)
    j = np.arange(owner.size) - np.repeat(np.cumsum(k) - k, k)
    u, kk = upper[owner].astype(np.float64), k[owner].astype(np.float64)
    return owner, np.floor(j * u / kk + 0.5), np.floor((j + 1) * u / kk + 0.5)


def solve_milp(
    p: Problem, greedy: Allocation, *, time_limit_s: float, mip_gap: float, segments: int
) -> F64 | None:
    """Integer order quantities ``[N]``, or None when HiGHS finds no feasible solution in time.

    Args:
        p: the warehouse problem.
        greedy: the greedy allocation (its ``wanted`` bounds the useful quantities).
        time_limit_s: HiGHS time limit.
        mip_gap: relative gap at which HiGHS stops.
        segments: maximum curve segments per series.
    """
    pack, moq = p.case_pack, p.moq_packs
    upper = np.maximum(np.ceil(greedy.wanted / pack - 1e-9), 0.0)
    model = np.flatnonzero(upper > 0)
    if model.size == 0:
        return np.zeros(p.n)
    upper = np.maximum(upper[model], moq[model] / pack[model]).astype(np.int64)
    owner, lo_packs, hi_packs = _segments(upper, segments)
    n_seg = owner.size
    m = model.size
    needs_y = moq[model] > pack[model] + 1e-9
    y_index = np.cumsum(needs_y) - 1
    m_y = int(needs_y.sum())
    n_var = n_seg + m + m_y
    # segment slopes and widths (in units) from the exact curve at the breakpoints
    unit = pack[model][owner]
    rows_idx = model[owner]
    curve = p.curve.take(rows_idx)
    base = p.position[rows_idx]
    width = (hi_packs - lo_packs) * unit
    slope = (curve.value(base + hi_packs * unit) - curve.value(base + lo_packs * unit)) / width
    c = np.concatenate([-slope, np.zeros(m + m_y)])
    integrality = np.concatenate([np.zeros(n_seg), np.ones(m + m_y)])
    lb = np.zeros(n_var)
    ub = np.concatenate([width, upper.astype(np.float64), np.ones(m_y)])

    rows: list[sp.coo_matrix] = []
    lo_b: list[F64] = []
    hi_b: list[F64] = []
    # link: sum_k x_ik - pack_i n_i = 0
    link = sp.coo_matrix(
        (
            np.concatenate([np.ones(n_seg), -pack[model]]),
            (np.concatenate([owner, np.arange(m)]), np.concatenate([np.arange(n_seg), n_seg + np.arange(m)])),
        ),
        shape=(m, n_var),
    )
    rows.append(link)
    lo_b.append(np.zeros(m))
    hi_b.append(np.zeros(m))
    if m_y:
        ym = np.flatnonzero(needs_y)
        ycol = n_seg + m + y_index[ym]
        ncol = n_seg + ym
        k = ym.size
        # n_i - U_i y_i <= 0 and n_i - (moq_i / pack_i) y_i >= 0
        a = sp.coo_matrix(
            (
                np.concatenate(
                    [
                        np.ones(k),
                        -upper[ym].astype(np.float64),
                        np.ones(k),
                        -(moq[model][ym] / pack[model][ym]),
                    ]
                ),
                (
                    np.concatenate([np.arange(k), np.arange(k), k + np.arange(k), k + np.arange(k)]),
                    np.concatenate([ncol, ycol, ncol, ycol]),
                ),
            ),
            shape=(2 * k, n_var),
        )
        rows.append(a)
        lo_b.append(np.concatenate([np.full(k, -np.inf), np.zeros(k)]))
        hi_b.append(np.concatenate([np.zeros(k), np.full(k, np.inf)]))
    for coef, limit in ((p.cost, p.budget), (p.volume, p.capacity)):
        if np.isfinite(limit):
            row = np.zeros(n_var)
            row[n_seg : n_seg + m] = coef[model] * pack[model]
            rows.append(sp.coo_matrix(row[None, :]))
            lo_b.append(np.array([-np.inf]))
            hi_b.append(np.array([limit]))
    constraints = LinearConstraint(sp.vstack(rows).tocsr(), np.concatenate(lo_b), np.concatenate(hi_b))
    res = milp(
        c,
        integrality=integrality,
        bounds=Bounds(lb, ub),
        constraints=constraints,
        options={"time_limit": float(time_limit_s), "mip_rel_gap": float(mip_gap), "disp": False},
    )
    if res.x is None:
        log.warning("milp: no feasible solution (%s); keeping the greedy allocation", res.message)
        return None
    q = np.zeros(p.n)
    q[model] = np.round(res.x[n_seg : n_seg + m]) * pack[model]
    if p.cost @ q > p.budget * (1 + 1e-9) + 1e-9 or p.volume @ q > p.capacity * (1 + 1e-9) + 1e-9:
        log.warning("milp: solution breaks a limit after rounding; keeping the greedy allocation")
        return None
    log.debug("milp: %s, %d series in the model, status %s", res.message, m, res.status)
    return q
