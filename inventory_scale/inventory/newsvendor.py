"""Expected profit of an order-up-to level, from protection-interval demand samples.

For one series with price ``p``, cost ``c``, goodwill ``g``, leftover value ``v_l`` (cost less one
more review period of holding, or salvage: ``items.leftover_value``) and salvage ``v``, raising the
order-up-to level ``S`` by one unit is worth (the *marginal value*)::

    MV(S) = (p + g - v_l) P(D_sell > S) - (v_l - v) P(D_expiry <= S) - (c - v_l)

(``D_sell``: demand over the protection interval, cut at the unit's expiry; ``D_expiry``: demand
until it expires; the second term is zero for non-perishables). MV falls with ``S``, so expected
profit is concave; for non-perishables the unconstrained optimum is the critical-ratio quantile
``CR = (p - c + g) / (p - v_l + g)`` of protection-interval demand (DESIGN.md section 5), and for
perishables units that would outdate are valued at salvage. With samples, expected profit is
piecewise linear with kinks at the sample values: :class:`ProfitCurve` stores it exactly as
sorted levels and the slope after each, which is all the allocator needs (the Lagrangian picks, for
a shadow price per unit, the last level whose slope exceeds it).

Expected profit at level ``S`` (what the plan reports) is::

    (p - c) E[min(D_sell, S)] - g E[(D_sell - S)+] - (c - v_l) E[(S - D_sell)+] - (v_l - v) E[(S - D_expiry)+]

``policy.service_level`` replaces the critical ratio by a fixed quantile target: the slope becomes
``(p + g - v_l) (P(D > S) - (1 - service_level))`` (still in money, so budgets compare).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inventory_scale.inventory.demand import ProtectionDemand
from inventory_scale.inventory.items import Items

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def critical_ratio(price: F64, cost: F64, leftover: F64, goodwill: F64) -> F64:
    """``(p - c + g) / (p - v + g)`` clipped to [0, 1] (0 when selling never pays)."""
    num = np.asarray(price) - np.asarray(cost) + np.asarray(goodwill)
    den = np.asarray(price) - np.asarray(leftover) + np.asarray(goodwill)
    return np.clip(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0), 0.0, 1.0)


def sample_quantile(samples: F64, level: npt.ArrayLike) -> F64:
    """Per-row quantile of ``[N, S]`` samples at ``[N]`` levels: the smallest sample value ``x``
    with ``P(D <= x) >= level`` (the newsvendor's order-up-to level; 0 for level 0)."""
    x = np.sort(samples, axis=1)
    s = x.shape[1]
    lv = np.broadcast_to(np.asarray(level, dtype=np.float64), (x.shape[0],))
    idx = np.clip(np.ceil(lv * s - 1e-9).astype(np.int64) - 1, 0, s - 1)
    return np.where(lv > 0, np.take_along_axis(x, idx[:, None], axis=1)[:, 0], 0.0)


@dataclass(frozen=True)
class ProfitCurve:
    """Exact piecewise-linear expected profit of each series' order-up-to level.

    Attributes:
        levels: ``[N, K]`` non-decreasing candidate levels, ``levels[:, 0] = 0``.
        slopes: ``[N, K]`` marginal expected profit on ``(levels[k], levels[k + 1])``; the last one
            holds beyond the last level. Non-increasing along ``K`` (concavity).
        values: ``[N, K]`` expected profit at each level.
    """

    levels: F64
    slopes: F64
    values: F64

    @property
    def n(self) -> int:
        return int(self.levels.shape[0])

    def _segment(self, level: npt.ArrayLike) -> I64:
        """Index of the last candidate level <= ``level`` per row (``level`` >= 0)."""
        s = np.broadcast_to(np.asarray(level, dtype=np.float64), (self.n,))
        return np.maximum(_count(self.levels, lambda row: row <= s), 1) - 1

    def value(self, level: npt.ArrayLike) -> F64:
        """``[N]`` expected profit at order-up-to ``level`` (scalar or ``[N]``, >= 0)."""
        s = np.broadcast_to(np.asarray(level, dtype=np.float64), (self.n,))
        k = self._segment(s)
        rows = np.arange(self.n)
        return self.values[rows, k] + self.slopes[rows, k] * (s - self.levels[rows, k])

    def value_at(self, rows: I64, level: npt.ArrayLike) -> F64:
        """``[R]`` expected profit of the series ``rows`` at ``level`` (``[R]`` or scalar), without
        copying their curves (what :meth:`take` then :meth:`value` would give)."""
        s = np.broadcast_to(np.asarray(level, dtype=np.float64), (rows.size,))
        k = np.maximum(_count(self.levels, lambda row: row <= s, rows), 1) - 1
        at = rows * self.levels.shape[1] + k
        return self.values.reshape(-1)[at] + self.slopes.reshape(-1)[at] * (s - self.levels.reshape(-1)[at])

    def marginal(self, level: npt.ArrayLike) -> F64:
        """``[N]`` slope just above ``level``."""
        return self.slopes[np.arange(self.n), self._segment(level)]

    def level_for(self, threshold: npt.ArrayLike) -> F64:
        """``[N]`` the largest level up to which every unit is worth more than ``threshold``.

        ``threshold`` is a shadow price per unit (0 = unconstrained optimum), scalar or ``[N]``.
        """
        t = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (self.n,))
        count = _count(self.slopes, lambda row: row > t)  # slopes fall: the first `count` are > t
        k = np.minimum(count, self.levels.shape[1] - 1)  # the last slope never pays (c >= leftover)
        return self.levels[np.arange(self.n), k]

    def take(self, idx: npt.NDArray[Any]) -> ProfitCurve:
        """The curves of the rows ``idx``."""
        return ProfitCurve(self.levels[idx], self.slopes[idx], self.values[idx])


def _count(arr: F64, pred: Callable[[F64], npt.NDArray[np.bool_]], rows: I64 | None = None) -> I64:
    """Per row, how many leading entries of ``arr [N, K]`` satisfy ``pred`` (a prefix property:
    true then false along ``K``), by a vectorized binary search; ``pred`` maps ``[N]`` to ``[N]``.
    With ``rows``, only those rows (``pred`` then maps ``[R]`` to ``[R]``)."""
    k = arr.shape[1]
    flat = arr.reshape(-1)
    if rows is None:
        n = arr.shape[0]
        base = np.arange(n, dtype=np.int64) * k
    else:
        n = rows.size
        base = rows.astype(np.int64) * k
    lo = np.zeros(n, dtype=np.int64)
    hi = np.full(n, k, dtype=np.int64)
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        ok = pred(flat[base + np.minimum(mid, k - 1)]) & active
        lo = np.where(ok, mid + 1, lo)
        hi = np.where(active & ~ok, mid, hi)


def _integrate(levels: F64, slopes: F64, base: F64) -> F64:
    """Values at each level from the value at 0 and the slopes between levels."""
    steps = np.diff(levels, axis=1) * slopes[:, :-1]
    return base[:, None] + np.concatenate([np.zeros((levels.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)


def profit_curve(demand: ProtectionDemand, items: Items, service_level: float | None = None) -> ProfitCurve:
    """Exact expected-profit curves of ``N`` series from their ``[N, S]`` demand samples.

    Args:
        demand: protection-interval sums (``sell`` and ``expiry`` used).
        items: economics of the same ``N`` series.
        service_level: fixed quantile target instead of the critical ratio (``policy.service_level``).

    Returns:
        :class:`ProfitCurve` with ``K = S + 1`` levels, ``2 S + 1`` when any series is perishable
        (non-perishable rows are then padded with zero-length segments).
    """
    sell, expiry = demand.sell, demand.expiry
    n, s = sell.shape
    p, c, g, v, vl = items.price, items.cost, items.goodwill, items.salvage, items.leftover
    a = (p + g - vl)[:, None]  # weight of P(D_sell > S)
    b = (vl - v)[:, None]  # weight of P(D_expiry <= S)
    fixed = (c - vl)[:, None]
    if service_level is not None:  # P(D > S) - (1 - service_level), in money
        b = np.zeros_like(b)
        fixed = a * (1.0 - service_level)
    perish = np.isfinite(expiry[:, 0])
    k = 2 * s + 1 if perish.any() else s + 1
    levels = np.empty((n, k))
    n_sell_le = np.empty((n, k))  # samples of D_sell <= level
    n_exp_le = np.zeros((n, k))  # samples of D_expiry <= level
    levels[:, 0] = 0.0
    # non-perishable rows: sorted sell samples, padded by repeating the last one
    rows = ~perish
    if rows.any():
        xs = np.sort(sell[rows], axis=1)
        levels[rows, 1 : s + 1] = xs
        levels[rows, s + 1 :] = xs[:, -1:]
        n_sell_le[rows, 0] = (xs <= 0.0).sum(axis=1)
        n_sell_le[rows, 1 : s + 1] = np.arange(1, s + 1)
        n_sell_le[rows, s + 1 :] = s
    if perish.any():
        both = np.concatenate([sell[perish], expiry[perish]], axis=1)  # [P, 2S]
        order = np.argsort(both, axis=1, kind="stable")
        levels[perish, 1:] = np.take_along_axis(both, order, axis=1)
        is_sell = order < s
        n_sell_le[perish, 1:] = np.cumsum(is_sell, axis=1)
        n_exp_le[perish, 1:] = np.cumsum(~is_sell, axis=1)
        n_sell_le[perish, 0] = (sell[perish] <= 0.0).sum(axis=1)
        n_exp_le[perish, 0] = (expiry[perish] <= 0.0).sum(axis=1)
    slopes = a * (1.0 - n_sell_le / s) - b * (n_exp_le / s) - fixed
    slopes = np.minimum.accumulate(slopes, axis=1)  # exact already; guards float ties
    base = -g * sell.mean(axis=1)  # profit at level 0: every unit of demand lost
    return ProfitCurve(levels, slopes, _integrate(levels, slopes, base))


def expected_fill_rate(demand: ProtectionDemand, level: F64) -> F64:
    """``[N]`` expected fill rate of the cycle an order-up-to ``level`` covers.

    Lost demand of the cycle = shortfall over the protection interval less the shortfall already
    incurred before the order arrives (the lost-sales analogue of the classic backorder formula);
    fill rate = 1 - that / expected demand of the cycle (lead time to interval end).
    """
    s = np.asarray(level, dtype=np.float64)[:, None]
    short = np.maximum(demand.pi - s, 0.0) - np.maximum(demand.lead - s, 0.0)
    cycle = (demand.pi - demand.lead).mean(axis=1)
    fill = 1.0 - short.mean(axis=1) / np.where(cycle > 0, cycle, 1.0)
    return np.where(cycle > 0, np.clip(fill, 0.0, 1.0), 1.0)


def expected_outdated(demand: ProtectionDemand, level: F64) -> F64:
    """``[N]`` expected units of the position that outdate before they sell (0 if not perishable)."""
    s = np.asarray(level, dtype=np.float64)[:, None]
    out = np.where(np.isfinite(demand.expiry), np.maximum(s - demand.expiry, 0.0), 0.0)
    return out.mean(axis=1)
