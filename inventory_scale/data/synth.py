"""Synthetic marketplace generator: every input table of the data contract plus the demand truth.

Run it through the pipeline (``inventory-scale generate``) or directly::

    from inventory_scale.config import DataConfig
    from inventory_scale.data.synth import generate_marketplace
    rows = generate_marketplace(DataConfig(n_skus=300, n_warehouses=3), "datasets/synthetic", seed=0)

Demand of series ``s`` (SKU ``i`` in warehouse ``w``, region ``r``, category ``c``) on day ``t``::

    mean[s, t] = level[i] * level[w] * exp(trend[i] * t / 365 + ar1[s, t]) * weekly[c, dow]
                 * season[s, t] * events[r, c, t] * (price[s, t] / ref[s]) ** elasticity[i]
                 * promo_uplift * launch ramp * phase-out
    demand[s, t] ~ Poisson(mean * Gamma(k, 1/k))       (negative binomial, dispersion k[i])
    units_sold   = demand, except in stockout spells (in_stock = False): 0, or a fraction on the
                   first day of a spell

Series are simulated in fixed blocks of :data:`BLOCK_SKUS` SKUs (all warehouses), each with its own
random stream ``SeedSequence(seed, spawn_key=(2, block))``, as ``[series, days]`` numpy arrays; blocks
are re-cut into parts of ``cfg.chunk_series`` series and written as they come, so memory stays
bounded by one part and the tables do not depend on ``chunk_series``. All tables are staged and
committed together when the last part is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from scipy.signal import lfilter
from scipy.special import i0e

from inventory_scale import schema as S
from inventory_scale.config import DataConfig
from inventory_scale.data import catalog as C
from inventory_scale.data import events as E
from inventory_scale.data.io import StorageOptions, TableWriter
from inventory_scale.errors import ConfigError

log = logging.getLogger(__name__)

NDArray = npt.NDArray[Any]
F32 = np.float32
BLOCK_SKUS = 128  # fixed: changing it changes every table generated from a seed
AR_COEF = 0.97  # day-to-day persistence of the local level noise
STREAM_CATALOG, STREAM_WAREHOUSES, STREAM_SERIES = 0, 1, 2
# Keys of the per-series arrays passed from the simulator to the writers (not column names).
_SKU, _WH, _ACTIVE, _ARRIVAL, _RECENT = "sku_index", "warehouse_index", "active", "arrival_offset", "recent"


def _rng(seed: int, *key: int) -> np.random.Generator:
    """Independent stream ``key`` of ``seed`` (what ``SeedSequence(seed).spawn`` would hand out)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


@dataclass(frozen=True)
class Warehouses:
    """Warehouse attributes, arrays of shape ``[n_warehouses]``; ``region`` indexes ``E.REGIONS``."""

    ids: list[str]
    region: NDArray
    level: NDArray
    price: NDArray
    season_shift: NDArray
    lead_time: NDArray


def sample_warehouses(n: int, rng: np.random.Generator) -> Warehouses:
    """``n`` warehouses assigned to regions round-robin, with jittered regional traits."""
    region = np.arange(n) % len(E.REGIONS)
    regions = [E.REGIONS[r] for r in region]
    return Warehouses(
        ids=[f"W{w + 1:03d}" for w in range(n)],
        region=region,
        level=(np.array([r.level for r in regions]) * rng.uniform(0.7, 1.3, n)).astype(F32),
        price=rng.uniform(0.92, 1.12, n).astype(F32),
        season_shift=(np.array([r.season_shift_days for r in regions]) + rng.normal(0, 4, n)).astype(F32),
        lead_time=(np.array([r.lead_time_factor for r in regions]) * rng.uniform(0.85, 1.15, n)).astype(F32),
    )


@dataclass(frozen=True)
class Context:
    """Everything a block needs: catalog, warehouses, calendar arrays (``[T]``) and event effects."""

    cfg: DataConfig
    catalog: C.Catalog
    warehouses: Warehouses
    effects: E.EventEffects
    weekly: NDArray  # [C, 7]
    dow: NDArray  # [T] day of week, Monday = 0
    doy: NDArray  # [T] day of year, 0-based
    lunar: NDArray  # [T] signed days to the nearest lunar new year
    sku_ids: pl.Series
    wh_ids: pl.Series
    epoch: int  # start date as days since 1970-01-01


def _context(cfg: DataConfig, start: dt.date, seed: int) -> Context:
    cat = C.sample_catalog(cfg, start, _rng(seed, STREAM_CATALOG))
    warehouses = sample_warehouses(cfg.n_warehouses, _rng(seed, STREAM_WAREHOUSES))
    dates = [start + dt.timedelta(days=t) for t in range(cfg.days)]
    return Context(
        cfg=cfg,
        catalog=cat,
        warehouses=warehouses,
        effects=E.event_effects(start, cfg.days, C.CATEGORIES),
        weekly=C.weekly_factors(),
        dow=np.array([d.weekday() for d in dates]),
        doy=np.array([d.timetuple().tm_yday - 1 for d in dates], dtype=F32),
        lunar=E.lunar_offsets(start, cfg.days),
        sku_ids=cat.products.get_column(S.SKU_ID),
        wh_ids=pl.Series(warehouses.ids),
        epoch=(start - dt.date(1970, 1, 1)).days,
    )


def _season(ctx: Context, i: NDArray, w: NDArray) -> NDArray:
    """Yearly seasonality of each series, ``[S, T]`` float32 with yearly mean ~1."""
    cat, prof = ctx.catalog, ctx.catalog.profile[i]
    region = ctx.warehouses.region[w]

    def per_series(name: str) -> NDArray:
        return np.array([getattr(p, name) for p in C.PROFILES])[prof]

    weather, lunar = per_series("weather"), per_series("anchor") == "lunar"
    regional = np.where(weather, np.array([r.weather_amplitude for r in E.REGIONS])[region], 1.0)
    regional *= np.where(lunar, np.array([r.lunar_strength for r in E.REGIONS])[region], 1.0)
    amp = per_series("amplitude") * cat.amp_scale[i] * regional
    kb, ka = per_series("kappa_before") * cat.kappa_scale[i], per_series("kappa_after") * cat.kappa_scale[i]
    peak = per_series("peak") + cat.peak_jitter[i] + np.where(weather, ctx.warehouses.season_shift[w], 0.0)
    d = np.where(lunar[:, None], ctx.lunar[None, :], ctx.doy[None, :]) - peak[:, None].astype(F32)
    d = (d + F32(182.5)) % F32(365.0) - F32(182.5)  # signed distance to the peak, [S, T]
    k = np.where(d < 0, kb[:, None], ka[:, None]).astype(F32)
    bump = np.exp(k * (np.cos(d * F32(2 * np.pi / 365)) - F32(1.0)))
    norm = 1.0 + amp * (i0e(kb) + i0e(ka)) / 2  # yearly mean of 1 + amp * bump
    return ((1.0 + amp[:, None].astype(F32) * bump) / norm[:, None].astype(F32)).astype(F32)


def _spells(u: NDArray, p: NDArray, mean_len: NDArray, allowed: NDArray | None = None) -> NDArray:
    """Boolean ``[S, T]`` mask of spells starting where ``u < p`` with geometric lengths.

    The length reuses the start's uniform (``u / p`` is again uniform), so no extra draws are needed.
    ``p`` and ``mean_len`` broadcast to ``u``'s shape; ``allowed`` masks where spells may start.
    """
    n_s, n_t = u.shape
    p = np.broadcast_to(p, u.shape)
    starts = (u < p) if allowed is None else (u < p) & allowed
    s, t = np.nonzero(starts)
    v = u[s, t] / p[s, t]
    q = 1.0 / np.broadcast_to(mean_len, u.shape)[s, t]
    end = np.minimum(t + 1 + np.floor(np.log1p(-v) / np.log1p(-q)).astype(np.int64), n_t)
    width = n_t + 1
    size = n_s * width
    delta = np.bincount(s * width + t, minlength=size) - np.bincount(s * width + end, minlength=size)
    return np.cumsum(delta.reshape(n_s, width), axis=1)[:, :n_t] > 0


def _simulate_block(ctx: Context, b: int, seed: int, totals: NDArray) -> dict[str, NDArray]:
    """Simulate SKUs ``[b * BLOCK_SKUS, (b + 1) * BLOCK_SKUS)`` in every warehouse.

    Args:
        ctx: shared context.
        b: block index.
        seed: global seed (the block's stream is ``(seed, STREAM_SERIES, b)``).
        totals: ``[2, W]`` float64, filled with the block's recent daily demand volume (m^3) and
            cost value per warehouse (sizes capacities and budgets).

    Returns:
        Arrays with leading axis ``S`` (series, SKU-major): daily ``[S, T]`` ones keyed by their
        column names plus ``active``; per-series inventory fields ``[S]``; inbound ``[S, 2]``.
    """
    cfg, cat, wh, n_t = ctx.cfg, ctx.catalog, ctx.warehouses, ctx.cfg.days
    lo, hi = b * BLOCK_SKUS, min((b + 1) * BLOCK_SKUS, cfg.n_skus)
    i, w = np.repeat(np.arange(lo, hi), cfg.n_warehouses), np.tile(np.arange(cfg.n_warehouses), hi - lo)
    n_s, c, region, t = i.size, cat.category[i], wh.region[w], np.arange(n_t)
    rng = _rng(seed, STREAM_SERIES, b)

    # level x trend x persistent local noise x weekly x season x events
    level = cat.level[i] * wh.level[w] * rng.lognormal(0.0, 0.35, n_s).astype(F32)
    eps = rng.standard_normal((n_s, n_t), dtype=F32)
    eps[:, 0] /= np.sqrt(1.0 - AR_COEF**2)  # start the AR(1) in its stationary distribution
    log_mu = lfilter([1.0], [1.0, -AR_COEF], eps, axis=1).astype(F32) * cat.noise_sd[i, None]
    log_mu += cat.trend[i, None] * (t / F32(365.0)).astype(F32)
    mu = level[:, None] * np.exp(log_mu) * ctx.weekly[c][:, ctx.dow] ** cat.weekly_amp[i, None]
    mu *= _season(ctx, i, w) * ctx.effects.multiplier[region, c]

    # prices: permanent changes, promotions (spells + shopping events), clearance before discontinuation
    u = rng.random((n_s, n_t), dtype=F32)
    promo = _spells(u, cat.promo_rate[i, None], cat.promo_len[i, None])
    promo |= rng.random(n_s)[:, None] < 0.5 * ctx.effects.shopping[region]  # sellers join sale events
    end, launch = cat.end_day[i, None], cat.launch_day[i, None]
    clearance = (end < n_t) & (t >= end - 21)
    ref = cat.unit_price[i] * wh.price[w]
    log_step = ((t >= cat.price_change_day[i][:, :, None]) * cat.price_change[i][:, :, None]).sum(axis=1)
    discount = np.where(clearance, F32(0.4), np.where(promo, cat.promo_discount[i, None], F32(0.0)))
    price = np.round(ref[:, None] * np.exp(log_step) * (1.0 - discount), 2).astype(F32)
    promo |= clearance
    mu *= (price / ref[:, None]) ** cat.elasticity[i, None] * np.where(
        promo, cat.promo_uplift[i, None], F32(1)
    )

    # life cycle: rows exist from launch to discontinuation; ramp-up after launch, fade before the end
    active = (t >= launch) & (t < end)
    ramp = np.where(launch > 0, -np.expm1(-np.maximum(t - launch + 1, 0) / cat.ramp_days[i, None]), 1.0)
    fade = np.where(end < n_t, np.clip((end - t) / 60.0, 0.25, 1.0), 1.0)
    mu = np.where(active, mu * ramp * fade, 0.0).astype(F32)

    # negative-binomial demand, then stockout spells (likelier when demand runs high) censor sales
    k = cat.dispersion[i, None]
    demand = rng.poisson(mu * rng.standard_gamma(np.broadcast_to(k, mu.shape), dtype=F32) / k).astype(F32)
    u = rng.random((n_s, n_t), dtype=F32)
    typical = mu.sum(axis=1, keepdims=True) / np.maximum(active.sum(axis=1, keepdims=True), 1) + 1e-6
    pressure = np.clip(mu / typical, 0.5, 4.0)
    oos = _spells(u, cat.stockout_rate[i, None] * pressure, cat.stockout_len[i, None], active) & active
    first = oos & ~np.concatenate([np.zeros((n_s, 1), dtype=bool), oos[:, :-1]], axis=1)
    partial = np.where(first, rng.random((n_s, n_t), dtype=F32), F32(0.0))
    sold = np.where(oos, np.floor(demand * partial), demand).astype(F32)

    out = {_SKU: i, _WH: w, _ACTIVE: active, S.DEMAND_MEAN: mu, S.DEMAND: demand, S.UNITS_SOLD: sold}
    out |= {S.PRICE: price, S.ON_PROMOTION: promo, S.IN_STOCK: ~oos}
    out |= _stock(ctx, i, w, mu[:, -28:].mean(axis=1), oos[:, -1], rng)
    recent = out.pop(_RECENT)
    totals[0] = np.bincount(w, recent * cat.volume[i], minlength=cfg.n_warehouses)
    totals[1] = np.bincount(w, recent * cat.unit_cost[i], minlength=cfg.n_warehouses)
    return out


def _stock(
    ctx: Context, i: NDArray, w: NDArray, recent: NDArray, out_at_end: NDArray, rng: np.random.Generator
) -> dict[str, NDArray]:
    """Inventory state after the last day and in-transit orders, per series (``[S]`` / ``[S, 2]``)."""
    cfg, cat, n_s = ctx.cfg, ctx.catalog, i.size
    u = rng.random((10, n_s))
    alive = cat.end_day[i] >= cfg.days
    recent = np.where(alive, recent, 0.0)
    raw_lead = cfg.lead_time_days * ctx.warehouses.lead_time[w] * np.exp(0.2 * rng.standard_normal(n_s))
    lead = np.round(np.maximum(raw_lead, 1.0), 1)
    rp = cfg.review_period_days
    review = np.select([u[0] < 0.7, u[0] < 0.9], [rp, 2 * rp], max(1, rp // 2))
    on_hand = np.where(out_at_end | ~alive, 0.0, np.round(recent * u[1] * cfg.cover_days * 1.5))
    # up to two in-transit orders: the first within the lead time, the second one review later
    has = alive & (recent > 0) & (u[2:4] < np.array([[0.6], [0.35]]))
    has[1] &= has[0]
    ceil_lead = np.ceil(lead).astype(np.int64)
    arrival = np.stack(
        [1 + (u[4] * ceil_lead).astype(np.int64), ceil_lead + 1 + (u[5] * review).astype(np.int64)]
    )
    pack = cat.case_pack[i]
    cases = np.maximum(np.ceil(recent * review * (0.5 + u[6:8]) / pack), np.ceil(cat.moq[i] / pack))
    quantity = np.where(has, np.maximum(cases, 1) * pack, 0.0)
    holding = cfg.holding_cost_rate * (0.8 + 0.45 * u[9]) * np.where(cat.perishable[i], 1.5, 1.0)
    penalty = cfg.goodwill_fraction * cat.unit_price[i] * np.exp(rng.normal(0.0, 0.4, n_s))
    return {
        S.ON_HAND: on_hand.astype(F32),
        S.ON_ORDER: quantity.sum(axis=0).astype(F32),
        S.LEAD_TIME_DAYS: lead.astype(F32),
        S.LEAD_TIME_STD_DAYS: (cfg.lead_time_std_days * lead / cfg.lead_time_days * (0.5 + u[8])).astype(F32),
        S.REVIEW_PERIOD_DAYS: review.astype(np.int32),
        S.HOLDING_COST_RATE: holding.astype(F32),
        S.STOCKOUT_PENALTY: penalty.astype(F32),
        _ARRIVAL: np.where(has, arrival, 0).T,
        S.QUANTITY: quantity.T.astype(F32),
        _RECENT: recent,
    }


def _rebatch(blocks: Iterable[dict[str, NDArray]], size: int) -> Iterator[dict[str, NDArray]]:
    """Re-cut a stream of per-series array dicts into parts of exactly ``size`` series (last: rest)."""
    pending: list[dict[str, NDArray]] = []
    n = 0
    for block in blocks:
        pending.append(block)
        n += block[_SKU].size
        while n >= size:
            merged = pending[0] if len(pending) == 1 else _concat(pending)
            yield {k: v[:size] for k, v in merged.items()}
            pending, n = [{k: v[size:] for k, v in merged.items()}], n - size
    if n:
        yield _concat(pending)


def _concat(parts: list[dict[str, NDArray]]) -> dict[str, NDArray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _frames(ctx: Context, part: dict[str, NDArray]) -> dict[str, pl.DataFrame]:
    """Sales, truth, inventory and inbound frames of one part (active days only for daily tables)."""
    n_t = ctx.cfg.days
    flat = np.flatnonzero(part[_ACTIVE])
    series = flat // n_t
    keys = {
        S.SKU_ID: ctx.sku_ids.gather(part[_SKU][series]),
        S.WAREHOUSE_ID: ctx.wh_ids.gather(part[_WH][series]),
        S.DATE: pl.Series((ctx.epoch + flat % n_t).astype(np.int32)).cast(pl.Date),
    }
    daily = {col: part[col].ravel()[flat] for col in (*S.SALES.columns[3:], S.DEMAND_MEAN, S.DEMAND)}
    ids = {S.SKU_ID: ctx.sku_ids.gather(part[_SKU]), S.WAREHOUSE_ID: ctx.wh_ids.gather(part[_WH])}
    s, k = np.nonzero(part[_ARRIVAL])  # series-major, slots in arrival order: sorted by key
    inbound = {
        S.SKU_ID: ctx.sku_ids.gather(part[_SKU][s]),
        S.WAREHOUSE_ID: ctx.wh_ids.gather(part[_WH][s]),
        S.ARRIVAL_DATE: pl.Series((ctx.epoch + n_t - 1 + part[_ARRIVAL][s, k]).astype(np.int32)).cast(
            pl.Date
        ),
        S.QUANTITY: part[S.QUANTITY][s, k],
    }
    frames = {
        S.SALES.name: pl.DataFrame({**keys, **{c: daily[c] for c in S.SALES.columns[3:]}}),
        S.TRUTH.name: pl.DataFrame({**keys, S.DEMAND_MEAN: daily[S.DEMAND_MEAN], S.DEMAND: daily[S.DEMAND]}),
        S.INVENTORY.name: pl.DataFrame({**ids, **{c: part[c] for c in S.INVENTORY.columns[2:]}}),
        S.INBOUND.name: pl.DataFrame(inbound),
    }
    return frames


def _warehouses_frame(ctx: Context, totals: NDArray) -> pl.DataFrame:
    """Warehouses sized to their demand: capacity for ``cover_days`` (+30% headroom), budget for
    ``budget_cover_days`` of recent demand at cost. ``totals`` is ``[2, W]`` (m^3/day, cost/day)."""
    cfg, wh = ctx.cfg, ctx.warehouses
    frame = pl.DataFrame(
        {
            S.WAREHOUSE_ID: wh.ids,
            S.REGION: [E.REGIONS[r].name for r in wh.region],
            S.CAPACITY_M3: np.maximum(np.round(cfg.cover_days * 1.3 * totals[0], 2), 1.0),
            S.BUDGET: np.maximum(np.round(cfg.budget_cover_days * totals[1], 2), 1.0),
        }
    )
    return S.conform(frame, S.WAREHOUSES)


def generate_marketplace(
    cfg: DataConfig, root: str, seed: int, opts: StorageOptions | None = None
) -> dict[str, int]:
    """Write sales, products, warehouses, inventory, inbound, calendar and truth tables under root.

    Every SKU is stocked in every warehouse (``n_skus * n_warehouses`` series); daily rows run from
    a series' launch (or ``start_date``) to its discontinuation (or the last day).

    Args:
        cfg: data config: ``n_skus`` x ``n_warehouses`` series over ``days`` days from ``start_date``,
            written in parts of ``chunk_series`` series; the fill-rule fields centre per-SKU values.
        root: dataset root URI (local path or ``s3://``); existing tables there are replaced.
        seed: global seed; the same ``(cfg, seed)`` gives identical tables whatever ``chunk_series``.
        opts: storage options for ``s3://`` roots.

    Returns:
        Rows written per table name (``sales``, ``truth``, ``products``, ...).

    Raises:
        ConfigError: negative seed, or a horizon outside the years the event calendar covers.
    """
    if seed < 0:
        raise ConfigError(f"config key 'seed' must be >= 0, got {seed!r}")
    start = dt.date.fromisoformat(cfg.start_date)
    E.check_years(start, cfg.days)
    t0 = time.perf_counter()
    ctx = _context(cfg, start, seed)
    n_blocks = -(-cfg.n_skus // BLOCK_SKUS)
    totals = np.zeros((n_blocks, 2, cfg.n_warehouses))
    log.info(
        "generating %d SKUs x %d warehouses x %d days into %s (seed %d)",
        cfg.n_skus,
        cfg.n_warehouses,
        cfg.days,
        root,
        seed,
    )
    specs = (S.PRODUCTS, S.CALENDAR, S.SALES, S.TRUTH, S.INVENTORY, S.INBOUND, S.WAREHOUSES)
    with contextlib.ExitStack() as stack:
        writers = {spec.name: stack.enter_context(TableWriter(root, spec, opts)) for spec in specs}
        writers[S.PRODUCTS.name].write(ctx.catalog.products)
        writers[S.CALENDAR.name].write(E.build_calendar(start, cfg.days))
        blocks = (_simulate_block(ctx, b, seed, totals[b]) for b in range(n_blocks))
        for n, part in enumerate(_rebatch(blocks, cfg.chunk_series)):
            for name, frame in _frames(ctx, part).items():
                writers[name].write(frame)
            log.debug("part %d: %d series", n, part[_SKU].size)
        writers[S.WAREHOUSES.name].write(_warehouses_frame(ctx, totals.sum(axis=0)))
    rows = {name: w.rows_written for name, w in writers.items()}
    log.info("generated %s in %.1f s", rows, time.perf_counter() - t0)
    return rows
