"""Replenishment policies the simulator replays, all under the same budget and capacity.

Each policy is built at a decision date (a backtest cutoff) from forecasts made with data before
it, and then decides on every review day of the episode from what it sees (on hand, in transit):

- :class:`PathPolicy` — ours: sample paths -> protection-interval demand from the day of the
  decision on, lead time sampled per path -> expected-profit curves -> per-warehouse Lagrangian
  allocation with packs and MOQ (``inventory/plan.py``). With paths drawn from the true demand
  distribution (:func:`oracle_paths`, synthetic data) it is the *oracle*, the physical limit;
  with every path equal to the realised demand (``hindsight``) it is what perfect point forecasts
  would earn through this allocation: the headroom of forecasting, on real data too. Not a bound
  on every policy: it hedges only the lead time, so the oracle, which knows the spread of demand,
  can earn more.
- :class:`SafetyStockPolicy` — the textbook baseline: order up to mean protection-interval demand
  plus ``z`` standard deviations, ``sigma^2 = (L + R) sigma_d^2 + mu_d^2 sigma_L^2`` with
  ``sigma_d`` the forecaster's in-sample error, ``z`` for ``policy.baseline_service_level``; packs
  rounded up, MOQ respected, orders scaled down pro rata when budget or capacity would be broken.
  Driven by seasonal naive, seasonal moving average or (``bench`` extra) statsforecast AutoETS.

With ``backtest.reforecast_every`` set, a :class:`Refreshed` policy holds one such policy per
forecast origin of the episode (the cutoff, then every ``reforecast_every`` periods) and lets the
latest origin on or before the review day decide, as a nightly job re-forecasting from the sales
recorded so far would.

Policy names (``backtest.policies``) are in :data:`POLICY_NAMES`; :func:`forecaster_of` says which
forecast each needs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from inventory_scale.config import PolicyConfig
from inventory_scale.errors import ConfigError, SchemaError
from inventory_scale.inventory.demand import cumulative, cumulative_at, protection_demand, sample_lead_times
from inventory_scale.inventory.draws import POLICY_LEAD, U64, KeyedDraws
from inventory_scale.inventory.items import Items, Limits, sell_by_days
from inventory_scale.inventory.plan import free_capacity, plan_orders
from inventory_scale.inventory.simulate import Policy, SimState

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

POLICY_NAMES: dict[str, str] = {
    "newsvendor": "ours: allocation on the policy.forecaster's sample paths (LSTM by default)",
    "newsvendor_lstm": "ours on LSTM paths",
    "newsvendor_seasonal_naive": "ours on seasonal-naive paths",
    "newsvendor_seasonal_ma": "ours on seasonal moving-average paths",
    "seasonal_naive_ss": "seasonal naive + normal safety stock",
    "moving_average_ss": "seasonal moving average + normal safety stock",
    "autoets_ss": "statsforecast AutoETS + normal safety stock (bench extra)",
    "oracle": "ours on paths from the true demand distribution (synthetic data only)",
    "hindsight": "ours on the realised demand itself, known in advance (lead times still uncertain)",
}


def forecaster_of(name: str, policy: PolicyConfig) -> str:
    """The forecast a policy needs: ``lstm``, ``seasonal_naive``, ``seasonal_ma``, ``autoets``, ``oracle``,
    ``hindsight``."""
    if name == "newsvendor":
        return policy.forecaster
    if name.startswith("newsvendor_"):
        return name[len("newsvendor_") :]
    return {
        "seasonal_naive_ss": "seasonal_naive",
        "moving_average_ss": "seasonal_ma",
        "autoets_ss": "autoets",
        "oracle": "oracle",
        "hindsight": "hindsight",
    }[name]


def check_policies(names: list[str], has_truth: bool) -> None:
    """Raise :class:`ConfigError` naming ``backtest.policies`` for an unknown or unusable policy."""
    if not names:
        raise ConfigError("config key 'backtest.policies' must name at least one policy")
    for name in names:
        if name not in POLICY_NAMES:
            raise ConfigError(
                f"config key 'backtest.policies' must hold policies among {list(POLICY_NAMES)}, got {name!r}"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"config key 'backtest.policies' lists a policy twice: {names}")
    if "oracle" in names and not has_truth:
        raise ConfigError(
            "config key 'backtest.policies': 'oracle' needs the synthetic truth table (data=synthetic)"
        )
    if "autoets_ss" in names:
        try:
            import statsforecast  # noqa: F401
        except ImportError:
            raise ConfigError(
                "config key 'backtest.policies': 'autoets_ss' needs statsforecast (pip install -e .[bench])"
            ) from None


def _by_warehouse(items: Items, idx: npt.NDArray[np.int64]) -> list[tuple[int, npt.NDArray[np.int64]]]:
    """``(warehouse, positions of idx in it)`` for the warehouses of the series ``idx``."""
    wh = items.warehouse[idx]
    return [(int(w), np.flatnonzero(wh == w)) for w in np.unique(wh)]


@dataclass
class PathPolicy:
    """Our policy (or the oracle): per-warehouse allocation on sample paths from the cutoff.

    Attributes:
        name: policy name.
        paths: ``[N, S, H]`` sample paths, step 1 = day 0 of the episode; ``H`` should cover the
            episode plus the longest protection interval (later days are extrapolated).
        items, limits: the series and their warehouses.
        policy: the ``policy`` config.
        seed: seed of the per-path lead-time draws.
        period_days: days per step of the paths.
        series: ``[N]`` series keys (:func:`~.draws.series_keys`) the lead-time draws are keyed
            by, so a series' draws do not depend on the others; None = keyed by row index.
    """

    name: str
    paths: F64
    items: Items
    limits: Limits
    policy: PolicyConfig
    seed: int = 0
    period_days: float = 1.0
    series: U64 | None = None

    def __post_init__(self) -> None:
        self._cum = cumulative(self.paths)
        it = self.items
        keys = np.arange(it.n, dtype=np.uint64) if self.series is None else self.series
        draws = KeyedDraws.of((self.seed, POLICY_LEAD), keys)
        self._lead = sample_lead_times(it.lead_time_days, it.lead_time_std_days, self.paths.shape[1], draws)
        self._sell_by = sell_by_days(it, self.policy.carryover_days)

    def decide(self, state: SimState) -> F64:
        it, t = self.items, float(state.day)
        q = np.zeros(it.n)
        idx = np.flatnonzero(state.reviewing)
        pos = state.position
        lead_all = (
            cumulative_at(self._cum, t + self._lead / self.period_days) - cumulative_at(self._cum, t)
        ).mean(axis=1)
        demand = protection_demand(
            None,
            self._lead[idx],
            it.review_days[idx],
            self._sell_by[idx],
            period_days=self.period_days,
            start=t,
            cum=self._cum[idx],
        )
        for w, sel in _by_warehouse(it, idx):
            rows = idx[sel]
            here = it.warehouse == w
            free = free_capacity(float(self.limits.capacity[w]), it.volume[here], pos[here], lead_all[here])
            _, alloc = plan_orders(
                demand.take(sel), it.take(rows), pos[rows], float(self.limits.budget[w]), free, self.policy
            )
            q[rows] = alloc.qty
        return q


@dataclass
class SafetyStockPolicy:
    """Order up to mean + z sigma of protection-interval demand from a point forecast.

    Attributes:
        name: policy name.
        point: ``[N, H]`` daily point forecast from the cutoff (step 1 = day 0).
        sigma: ``[N]`` standard deviation of the forecaster's one-step errors (in-sample).
        items, limits: the series and their warehouses.
        service_level: target cycle service level (``policy.baseline_service_level``).
        period_days: days per step of the forecast.
    """

    name: str
    point: F64
    sigma: F64
    items: Items
    limits: Limits
    service_level: float = 0.95
    period_days: float = 1.0

    def __post_init__(self) -> None:
        self._cum = cumulative(np.maximum(self.point, 0.0)[:, None, :])  # [N, 1, H + 1]
        self._z = float(norm.ppf(self.service_level))

    def targets(self, day: int) -> tuple[F64, F64]:
        """``[N]`` order-up-to levels and expected lead-time demand for a decision on ``day``."""
        it, t = self.items, float(day)
        lead = it.lead_time_days / self.period_days
        span = lead + it.review_days / self.period_days
        at = self._cum
        base = cumulative_at(at, np.full((it.n, 1), t))[:, 0]
        mu = cumulative_at(at, (t + span)[:, None])[:, 0] - base
        mu_lead = cumulative_at(at, (t + lead)[:, None])[:, 0] - base
        mu_d = mu / np.maximum(span, 1e-9)
        sd_lead = it.lead_time_std_days / self.period_days
        sigma = np.sqrt(span * self.sigma**2 + (mu_d * sd_lead) ** 2)
        return mu + self._z * sigma, mu_lead

    def decide(self, state: SimState) -> F64:
        it = self.items
        level, mu_lead = self.targets(state.day)
        pos = state.position
        need = np.where(state.reviewing, np.maximum(level - pos, 0.0), 0.0)
        q = np.ceil(need / it.case_pack - 1e-9) * it.case_pack
        moq = np.maximum(np.ceil(it.moq / it.case_pack - 1e-9), 1.0) * it.case_pack
        q = np.where((q > 0) & (q < moq), moq, q)
        idx = np.flatnonzero(q > 0)
        for w, sel in _by_warehouse(it, idx):
            rows = idx[sel]
            here = it.warehouse == w
            free = free_capacity(float(self.limits.capacity[w]), it.volume[here], pos[here], mu_lead[here])
            spend, use = float(it.cost[rows] @ q[rows]), float(it.volume[rows] @ q[rows])
            f = min(1.0, self.limits.budget[w] / spend if spend > 0 else 1.0, free / use if use > 0 else 1.0)
            if f < 1.0:  # pro rata, down to whole packs; orders that fall below the MOQ are dropped
                scaled = np.floor(q[rows] * f / it.case_pack[rows] + 1e-9) * it.case_pack[rows]
                q[rows] = np.where(scaled < moq[rows] - 1e-9, 0.0, scaled)
        return q


@dataclass
class Refreshed:
    """One policy per forecast origin; the latest origin on or before the review day decides.

    Attributes:
        name: policy name.
        origins: episode days the forecasts were made at (ascending, the first 0): the policy of
            origin ``o`` was built from data up to the cutoff + ``o`` periods, so its day 0 is
            episode day ``o``.
        policies: one policy per origin, the same order.
    """

    name: str
    origins: Sequence[int]
    policies: Sequence[Policy]

    def __post_init__(self) -> None:
        o = list(self.origins)
        if not o or o[0] != 0 or np.any(np.diff(o) <= 0):
            raise ConfigError(f"forecast origins must start at 0 and ascend, got {o}")
        if len(o) != len(self.policies):
            raise ConfigError(f"{len(o)} forecast origins for {len(self.policies)} policies")

    def decide(self, state: SimState) -> F64:
        k = int(np.searchsorted(np.asarray(self.origins), state.day, side="right")) - 1
        origin = int(self.origins[k])
        return self.policies[k].decide(dataclasses.replace(state, day=state.day - origin))


def residual_sigma(residuals: F64, valid: npt.NDArray[np.bool_]) -> F64:
    """``[N]`` root mean square of the valid in-sample residuals (0 where there are none)."""
    count = valid.sum(axis=1)
    ss = np.where(valid, residuals**2, 0.0).sum(axis=1)
    return np.sqrt(ss / np.maximum(count, 1))


def estimate_dispersion(demand: F64, mean: F64) -> F64:
    """``[N]`` negative-binomial dispersion ``k`` (variance = mu + mu^2 / k) by moments; ``inf`` =
    Poisson. ``demand`` and ``mean`` are ``[N, T]`` (NaN where absent)."""
    ok = np.isfinite(demand) & np.isfinite(mean)
    d, m = np.where(ok, demand, 0.0), np.where(ok, mean, 0.0)
    excess = ((d - m) ** 2 - m).sum(axis=1)
    inv_k = excess / np.maximum((m**2).sum(axis=1), 1e-12)
    return np.where(inv_k > 1e-6, 1.0 / np.maximum(inv_k, 1e-6), np.inf)


def oracle_paths(mean: F64, dispersion: F64, num_paths: int, draws: KeyedDraws) -> F64:
    """``[N, S, H]`` paths of the true demand: Poisson(mean x Gamma(k, 1/k)) per day, as generated.

    Each series draws from its own two generators (:meth:`~.draws.KeyedDraws.generators`, one for
    the gamma and one for the Poisson draws), so its paths depend on its key, mean and ``k`` only,
    not on the other series. Draws are made step by step (all paths of step 1, then step 2, ...),
    so a longer horizon keeps the first steps' values.

    Args:
        mean: ``[N, H]`` daily demand means.
        dispersion: ``[N]`` negative-binomial ``k`` (``inf`` = Poisson).
        num_paths: ``S``.
        draws: keyed draws of the ``N`` series.
    """
    n, h = mean.shape
    if draws.n != n:
        raise SchemaError(f"keyed oracle draws for {draws.n} series, {n} demand means given")
    mu = np.maximum(mean, 0.0)[:, :, None]  # [N, H, 1]
    out = np.empty((n, num_paths, h))
    gammas = KeyedDraws((*draws.parts, 0), draws.keys).generators()
    counts = KeyedDraws((*draws.parts, 1), draws.keys).generators()
    for i, (g, c) in enumerate(zip(gammas, counts, strict=True)):
        k = float(dispersion[i])
        scale = g.standard_gamma(k, (h, num_paths)) / k if np.isfinite(k) else 1.0  # [H, S]
        out[i] = c.poisson(mu[i] * scale, (h, num_paths)).T
    return out


def autoets_forecast(history: list[F64], horizon: int, season_length: int) -> tuple[F64, F64]:
    """AutoETS point forecasts ``[N, H]`` and residual sigmas ``[N]`` (needs statsforecast).

    Untested here when statsforecast is absent; ``check_policies`` refuses the policy then.
    """
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    frames = [
        pd.DataFrame({"unique_id": i, "ds": np.arange(len(h)), "y": np.asarray(h, dtype=np.float64)})
        for i, h in enumerate(history)
        if len(h) > 0
    ]
    point = np.zeros((len(history), horizon))
    sigma = np.zeros(len(history))
    if not frames:
        return point, sigma
    sf = StatsForecast(models=[AutoETS(season_length=season_length)], freq=1, n_jobs=1)
    # pandas in, pandas out (statsforecast also accepts polars, hence its union return type)
    fc: pd.DataFrame = sf.forecast(df=pd.concat(frames), h=horizon, fitted=True)
    fitted: pd.DataFrame = sf.forecast_fitted_values()
    fc = fc.reset_index() if "unique_id" not in fc.columns else fc
    fitted = fitted.reset_index() if "unique_id" not in fitted.columns else fitted
    for uid, grp in fc.groupby("unique_id"):
        point[int(uid)] = np.maximum(grp["AutoETS"].to_numpy()[:horizon], 0.0)
    for uid, grp in fitted.groupby("unique_id"):
        res = (grp["y"] - grp["AutoETS"]).to_numpy()
        sigma[int(uid)] = float(np.sqrt(np.nanmean(res**2))) if res.size else 0.0
    return point, sigma
