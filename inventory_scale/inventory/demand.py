"""Protection-interval demand from joint sample paths, and the inventory position it is set against.

An order placed now (day 0, before that day's demand) arrives after the lead time ``L`` and must
cover demand until the next order arrives, ``L + R`` days later (``R`` = review period): the
*protection interval*. Its demand distribution comes from summing each sample path over the
interval, so the dependence between days that paths carry is kept; adding per-day quantiles
would overstate the spread and is never done (``tests/test_inventory_demand.py`` shows by how
much). The lead time is sampled per path (gamma with the series' mean and std), so its
variability widens the distribution exactly as it should::

    rng = np.random.default_rng(0)
    lead = sample_lead_times(inv.lead_time_days, inv.lead_time_std_days, paths.shape[1], rng)  # [N, S]
    pid = protection_demand(paths, lead, review_days, shelf_life_days)   # sums [N, S] per path

Sums over a fractional number of periods interpolate the cumulative path linearly; beyond the
path horizon ``H`` a path is extended at its own average rate over the horizon.

For perishables the planner also needs demand until a unit ordered now expires (arrival + shelf
life, ``expiry``) and until the earlier of expiry and the end of the protection interval (``sell``,
when the marginal unit must sell to count as a sale of this cycle). See ``newsvendor.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.special import gammaincinv

from inventory_scale import schema as S
from inventory_scale.errors import DataQualityError, SchemaError
from inventory_scale.inventory.draws import KeyedDraws

F64 = npt.NDArray[np.float64]

IN_TRANSIT = "in_transit"  # working column: inbound units counted in the position
PERIOD_DAYS = {"1d": 1.0, "1w": 7.0, "1mo": 365.25 / 12}  # days per period (as forecast.PERIOD_DAYS)


@dataclass(frozen=True)
class ProtectionDemand:
    """Per-path demand sums of one decision, all ``[N, S]`` float64.

    Attributes:
        pi: demand over lead time + review period (the protection interval).
        lead: demand over the lead time (before the order arrives).
        sell: demand until the earlier of the interval's end and the expiry of a unit ordered now
            (= ``pi`` for non-perishables).
        expiry: demand until a unit ordered now expires (``inf`` for non-perishables).
    """

    pi: F64
    lead: F64
    sell: F64
    expiry: F64

    @property
    def perishable(self) -> npt.NDArray[np.bool_]:
        """``[N]`` True where a shelf life applies."""
        return np.isfinite(self.expiry[:, 0])

    def take(self, idx: npt.NDArray[Any]) -> ProtectionDemand:
        """The rows ``idx``."""
        return ProtectionDemand(self.pi[idx], self.lead[idx], self.sell[idx], self.expiry[idx])


def sample_lead_times(
    mean_days: npt.ArrayLike,
    std_days: npt.ArrayLike,
    num_paths: int,
    rng: np.random.Generator | KeyedDraws,
) -> F64:
    """Lead time per series and path, gamma-distributed with the given mean and std (days).

    Args:
        mean_days: ``[N]`` mean lead times (> 0).
        std_days: ``[N]`` standard deviations (>= 0; 0 = deterministic).
        num_paths: ``S`` draws per series.
        rng: random generator, or :class:`~.draws.KeyedDraws` of the ``N`` series: then draw
            ``j`` of a series is the gamma inverse CDF of its keyed uniform ``j``, whatever the
            other series (the policy A/B's common random numbers).

    Returns:
        ``[N, S]`` lead times in days, > 0.
    """
    mean = np.asarray(mean_days, dtype=np.float64)
    std = np.asarray(std_days, dtype=np.float64)
    if (mean <= 0).any() or (std < 0).any():
        raise DataQualityError(
            f"lead times must be > 0 with std >= 0: {int((mean <= 0).sum())} mean(s) <= 0, "
            f"{int((std < 0).sum())} negative std(s)"
        )
    stochastic = std > 0
    shape = np.where(stochastic, (mean / np.where(stochastic, std, 1.0)) ** 2, 1.0)
    if isinstance(rng, KeyedDraws):
        if rng.n != mean.size:
            raise SchemaError(f"keyed lead-time draws for {rng.n} series, {mean.size} lead times given")
        draws = gammaincinv(shape[:, None], rng.uniform((num_paths,)))  # [N, S] standard gamma
    else:
        draws = rng.standard_gamma(np.broadcast_to(shape[:, None], (mean.size, num_paths)))
    return np.where(stochastic[:, None], draws * (mean / shape)[:, None], mean[:, None])


def cumulative(paths: npt.ArrayLike) -> F64:
    """``[N, S, H + 1]`` cumulative demand of ``[N, S, H]`` paths, starting at 0.

    float32 paths (the forecasters' output) stay float32: half the memory traffic on the largest
    array of the optimizer, exact for integer demand sums below 2^24; anything else is float64.
    """
    p = np.asarray(paths)
    dtype = np.float32 if p.dtype == np.float32 else np.float64
    out = np.zeros((*p.shape[:2], p.shape[2] + 1), dtype=dtype)
    np.cumsum(p, axis=2, out=out[:, :, 1:], dtype=dtype)
    return out


def cumulative_at(cum: F64, x: npt.ArrayLike) -> F64:
    """Cumulative demand after ``x`` periods (fractional), per series and path.

    Args:
        cum: ``[N, S, H + 1]`` from :func:`cumulative`.
        x: periods, broadcastable to ``[N, S]`` (>= 0).

    Returns:
        ``[N, S]``: linear interpolation inside the horizon; beyond ``H`` the path goes on at its
        average rate over the horizon.
    """
    n, s, h1 = cum.shape
    h = h1 - 1
    xx = np.broadcast_to(np.asarray(x, dtype=np.float64), (n, s))
    inside = np.clip(xx, 0.0, float(h))
    lo = np.minimum(inside.astype(np.int64), max(h - 1, 0))  # floor: inside >= 0
    flat = np.ascontiguousarray(cum).reshape(-1)
    at = (np.arange(n * s, dtype=np.int64) * h1).reshape(n, s) + lo  # flat index of cum[i, j, lo]
    c_lo = flat[at]
    c_hi = flat[at + (lo < h)]
    value = c_lo + (inside - lo) * (c_hi - c_lo)
    beyond = xx - h
    if (beyond > 0).any():
        value = value + np.maximum(beyond, 0.0) * (cum[:, :, h] / max(h, 1))  # average rate
    return value


def protection_demand(
    paths: npt.ArrayLike | None,
    lead_days: npt.ArrayLike,
    review_days: npt.ArrayLike,
    shelf_life_days: npt.ArrayLike | None = None,
    *,
    period_days: float = 1.0,
    start: npt.ArrayLike = 0.0,
    cum: F64 | None = None,
) -> ProtectionDemand:
    """Demand sums over the protection interval (and the perishable horizons) per path.

    Args:
        paths: ``[N, S, H]`` sample paths, step 1 = the first period after the decision; may be
            omitted (``None``) when ``cum`` is given.
        lead_days: ``[N, S]`` (per path) or ``[N]`` lead times in days.
        review_days: ``[N]`` review periods in days.
        shelf_life_days: ``[N]`` shelf lives in days, NaN (or None for all) = not perishable.
        period_days: days per period of the paths (1 for daily data, 7 for weekly).
        start: periods already elapsed since step 1 (the simulator decides on day ``t`` from
            paths made at the cutoff: ``start = t``), scalar or ``[N]``.
        cum: precomputed :func:`cumulative` of ``paths`` (saves the cumsum when deciding often).

    Returns:
        :class:`ProtectionDemand` with ``[N, S]`` sums.
    """
    if cum is None and paths is None:
        raise ValueError("protection_demand needs paths or their cumulative sums")
    c = cum if cum is not None else cumulative(paths)  # type: ignore[arg-type]
    n, s, _ = c.shape
    lead = np.broadcast_to(np.asarray(lead_days, dtype=np.float64).reshape(n, -1), (n, s)) / period_days
    review = np.asarray(review_days, dtype=np.float64).reshape(n, 1) / period_days
    t0 = np.broadcast_to(np.asarray(start, dtype=np.float64).reshape(-1, 1), (n, 1))
    base = cumulative_at(c, t0) if (t0 != 0).any() else np.zeros((n, 1))
    pi = cumulative_at(c, t0 + lead + review) - base
    lead_d = cumulative_at(c, t0 + lead) - base
    if shelf_life_days is None:
        return ProtectionDemand(pi, lead_d, pi, np.full((n, s), np.inf))
    life = np.asarray(shelf_life_days, dtype=np.float64).reshape(n)
    rows = np.flatnonzero(np.isfinite(life))  # perishable series: only they need the expiry sums
    expiry = np.full((n, s), np.inf)
    sell = pi.copy()
    if rows.size:
        cp, life_p = c[rows], life[rows, None] / period_days
        at = t0[rows] + lead[rows]
        expiry[rows] = cumulative_at(cp, at + life_p) - base[rows]
        sell[rows] = cumulative_at(cp, at + np.minimum(life_p, review[rows])) - base[rows]
    return ProtectionDemand(pi, lead_d, sell, expiry)


def paths_from_quantiles(
    pi_levels: npt.ArrayLike,
    pi_quantiles: npt.ArrayLike,
    daily_mean: npt.ArrayLike,
    pi_steps: npt.ArrayLike,
    num_paths: int,
    rng: np.random.Generator,
) -> F64:
    """Approximate sample paths from a forecast frame without kept paths (``keep_paths=false``).

    Each path draws one protection-interval total from the frame's ``pi_q*`` quantile function
    (linear between levels; the lower half mirrored around the median, clipped at 0; flat beyond
    the top level) and spreads it over the days in proportion to the daily means, so the sums over
    the nominal interval reproduce the forecast's own interval quantiles. Day-to-day dependence is
    then perfect (one level per path): use kept paths whenever they exist.

    Args:
        pi_levels: ``[P]`` increasing levels of the ``pi_q*`` columns (must include one >= 0.5).
        pi_quantiles: ``[N, P]`` protection-interval quantiles.
        daily_mean: ``[N, H]`` daily mean forecast.
        pi_steps: ``[N]`` nominal interval length in periods.
        num_paths: ``S``.
        rng: random generator.

    Returns:
        ``[N, S, H]`` non-negative paths.
    """
    levels = np.asarray(pi_levels, dtype=np.float64)
    q = np.maximum.accumulate(np.asarray(pi_quantiles, dtype=np.float64), axis=1)  # [N, P]
    mean = np.maximum(np.asarray(daily_mean, dtype=np.float64), 0.0)
    n, h = mean.shape
    med = np.array([np.interp(0.5, levels, row) for row in q]) if n else np.zeros(0)
    upper = levels >= 0.5
    lv = np.concatenate([1.0 - levels[upper][::-1], levels[upper]])
    mirrored = np.maximum(2.0 * med[:, None] - q[:, upper][:, ::-1], 0.0)
    qv = np.maximum.accumulate(np.concatenate([mirrored, q[:, upper]], axis=1), axis=1)  # [N, 2P']
    u = (np.arange(num_paths) + 0.5) / num_paths
    totals = (
        np.stack([np.interp(rng.permutation(u), lv, row) for row in qv]) if n else np.zeros((0, num_paths))
    )
    steps = np.clip(np.asarray(pi_steps, dtype=np.int64), 1, h)
    interval = np.where(np.arange(h)[None, :] < steps[:, None], mean, 0.0).sum(axis=1)  # [N]
    share = mean / np.where(interval > 0, interval, 1.0)[:, None]  # [N, H]
    flat = np.where(interval[:, None] > 0, share, (np.arange(h)[None, :] < steps[:, None]) / steps[:, None])
    return totals[:, :, None] * flat[:, None, :]


def inventory_position(
    inventory: pl.DataFrame, inbound: pl.DataFrame, cutoff: dt.date | None = None
) -> pl.DataFrame:
    """Inventory with an ``in_transit`` column: the units the position counts besides on hand.

    In-transit units are the ``inbound`` rows arriving after ``cutoff`` (all rows when None); a
    series without inbound rows falls back to its ``on_order``. Position = on_hand + in_transit.

    Args:
        inventory: rows of the ``inventory`` table.
        inbound: rows of the ``inbound`` table (may be empty).
        cutoff: the decision date; arrivals on or before it are already in ``on_hand``.

    Returns:
        ``inventory`` plus ``in_transit`` (float64) and ``inventory_position``.
    """
    keys = [S.SKU_ID, S.WAREHOUSE_ID]
    arriving = inbound if cutoff is None else inbound.filter(pl.col(S.ARRIVAL_DATE) > cutoff)
    transit = arriving.group_by(keys).agg(pl.col(S.QUANTITY).cast(pl.Float64).sum().alias(IN_TRANSIT))
    out = inventory.join(transit, on=keys, how="left").with_columns(
        pl.col(IN_TRANSIT).fill_null(pl.col(S.ON_ORDER).cast(pl.Float64)).fill_null(0.0)
    )
    return out.with_columns(
        (pl.col(S.ON_HAND).cast(pl.Float64).clip(lower_bound=0.0) + pl.col(IN_TRANSIT)).alias(
            S.INVENTORY_POSITION
        )
    )
