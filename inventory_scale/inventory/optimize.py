"""The ``optimize`` stage: per-warehouse reorder plans from a run's forecasts.

``inventory-scale optimize data.root=... run.dir=...`` reads ``<run.dir>/forecasts/`` (and
``<run.dir>/paths/`` when the forecast kept its sample paths) with the dataset's ``products``,
``warehouses``, ``inventory`` and ``inbound`` tables, and writes ``<run.dir>/plans/``
(:data:`schema.PLANS`, partitioned by warehouse) with a manifest.

Warehouses are the unit of work: :func:`group_warehouses` gives each large warehouse its own task
and packs small ones together up to ``policy.task_skus`` series; ``distributed.runner.run_tasks``
runs :func:`optimize_task` once per group (Ray, or in-process with ``ray.mode=inprocess``). A task
reads only its warehouses' partitions, plans each warehouse, and writes its rows atomically to a
staging folder keyed by the config hash; a rerun skips groups whose rows exist. When every task
is done the rows are committed to ``plans/`` in one atomic move and the staging folder removed.

A series that ended before the cutoff (no sales row in its last ``policy.ended_after_days`` days:
delisted) is planned with zero demand, so it orders nothing, and its reason says so.

Without kept paths the sample paths are rebuilt from the frame's protection-interval quantiles
(``demand.paths_from_quantiles``, logged as a warning): run the forecast with
``forecast.keep_paths=true`` for the exact distribution.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.data.listing import ended_series
from inventory_scale.errors import DataQualityError, SchemaError, format_keys
from inventory_scale.inventory.demand import (
    PERIOD_DAYS,
    inventory_position,
    paths_from_quantiles,
    protection_demand,
    sample_lead_times,
)
from inventory_scale.inventory.items import items_from_frames, sell_by_days
from inventory_scale.inventory.plan import free_capacity, plan_orders, plan_rows

log = logging.getLogger(__name__)

PI_PREFIX = "pi_q"


@dataclass(frozen=True)
class OptimizeGroup:
    """One task: the warehouses it plans and how many series they hold."""

    warehouses: tuple[str, ...]
    series: int

    @property
    def label(self) -> str:
        head = ",".join(self.warehouses[:3])
        return head + (f",+{len(self.warehouses) - 3}" if len(self.warehouses) > 3 else "")


@dataclass(frozen=True)
class OptimizeShared:
    """What every task reads: the config, the forecast origin and where its rows go."""

    cfg: Config
    cutoff: dt.date
    staging: str
    opts: io.StorageOptions | None


def group_warehouses(counts: dict[str, int], task_skus: int) -> list[OptimizeGroup]:
    """Tasks: one per warehouse of >= ``task_skus`` series, small ones packed up to that size.

    Packing is first-fit over warehouses sorted by size (largest first), deterministic.
    """
    groups: list[list[str]] = []
    sizes: list[int] = []
    for wh, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        slot = next((i for i, s in enumerate(sizes) if s + n <= task_skus), None) if n < task_skus else None
        if slot is None:
            groups.append([wh])
            sizes.append(n)
        else:
            groups[slot].append(wh)
            sizes[slot] += n
    return [OptimizeGroup(tuple(g), s) for g, s in zip(groups, sizes, strict=True)]


def warehouse_seed(seed: int, warehouse: str) -> np.random.SeedSequence:
    """Seed of a warehouse's lead-time draws: the global seed and a stable hash of its id."""
    return np.random.SeedSequence([seed, zlib.crc32(warehouse.encode())])


def _paths(
    cfg: Config, forecasts: pl.DataFrame, keys: pl.DataFrame, paths: pl.DataFrame | None, wh: str
) -> np.ndarray:
    """``[N, S, H]`` sample paths of ``keys`` (kept paths, else rebuilt from the frame)."""
    n = keys.height
    h = int(forecasts.select(pl.col(S.STEP).max()).item() or 0)
    if paths is not None and not paths.is_empty():
        p = paths.join(keys.with_row_index("_row"), on=[S.SKU_ID, S.WAREHOUSE_ID], how="inner")
        s = int(p.select(pl.col(S.SAMPLE_ID).max()).item() or 0) + 1
        if p.height != n * s * h:
            raise DataQualityError(
                f"paths of warehouse {wh}: {p.height} rows, expected {n} series x {s} samples x {h} steps"
            )
        p = p.sort("_row", S.SAMPLE_ID, S.STEP)
        return p[S.VALUE].cast(pl.Float64).to_numpy().reshape(n, s, h)
    log.warning("optimize %s: no kept paths; rebuilding them from the pi_q* columns", wh)
    pcols = sorted((c for c in forecasts.columns if c.startswith(PI_PREFIX)), key=lambda c: float(c[4:]))
    if not pcols:
        raise SchemaError(f"forecasts of warehouse {wh} have no {PI_PREFIX}* columns and no paths were kept")
    wide = forecasts.sort(S.SKU_ID, S.STEP)
    first = wide.filter(pl.col(S.STEP) == 1).sort(S.SKU_ID)
    mean = wide[S.MEAN].cast(pl.Float64).to_numpy().reshape(n, h)
    rng = np.random.default_rng(warehouse_seed(cfg.seed + 1, wh))
    return paths_from_quantiles(
        [float(c[4:]) for c in pcols],
        first.select(pcols).to_numpy(),
        mean,
        first[S.PI_STEPS].to_numpy(),
        cfg.forecast.num_paths,
        rng,
    )


def plan_warehouse(shared: OptimizeShared, wh: str, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Plan rows of one warehouse from its slices of the forecast and input tables."""
    cfg = shared.cfg
    fc = tables["forecasts"].filter(pl.col(S.WAREHOUSE_ID) == wh)
    keys = fc.select(S.SKU_ID, S.WAREHOUSE_ID).unique().sort(S.SKU_ID)
    if keys.is_empty():
        return S.empty_frame(S.PLANS)
    paths = tables.get("paths")
    paths = None if paths is None else paths.filter(pl.col(S.WAREHOUSE_ID) == wh)
    arr = _paths(cfg, fc, keys, paths, wh)
    ended = keys.join(tables["ended"], on=[S.SKU_ID, S.WAREHOUSE_ID], how="left")["last_date"]
    gone = ended.is_not_null().to_numpy()
    if gone.any():  # delisted: no demand, so no order (copy only then: the paths may be read-only)
        arr = arr.copy()
        arr[gone] = 0.0
    inv = inventory_position(
        tables["inventory"].filter(pl.col(S.WAREHOUSE_ID) == wh), tables["inbound"], shared.cutoff
    )
    where = {t.name: io.join(cfg.data.root, t.name) for t in (S.PRODUCTS, S.WAREHOUSES)}
    items, limits = items_from_frames(
        keys, tables["products"], inv, tables["warehouses"], cfg.policy, cfg.data, where
    )
    position = keys.join(inv, on=[S.SKU_ID, S.WAREHOUSE_ID], how="left")[S.INVENTORY_POSITION]
    missing = keys.filter(position.is_null())
    if missing.height:
        log.warning(
            "optimize %s: %d series without an inventory row start from 0: %s",
            wh,
            missing.height,
            format_keys(missing.rows()),
        )
    pos = position.fill_null(0.0).to_numpy().astype(np.float64)
    rng = np.random.default_rng(warehouse_seed(cfg.seed, wh))
    lead = sample_lead_times(items.lead_time_days, items.lead_time_std_days, arr.shape[1], rng)
    demand = protection_demand(
        arr,
        lead,
        items.review_days,
        sell_by_days(items, cfg.policy.carryover_days),
        period_days=PERIOD_DAYS[cfg.data.freq],
    )
    w = limits.ids.index(wh)
    free = free_capacity(float(limits.capacity[w]), items.volume, pos, demand.lead.mean(axis=1))
    problem, alloc = plan_orders(demand, items, pos, float(limits.budget[w]), free, cfg.policy)
    log.info(
        "optimize %s: %d series, %d orders, spend %.0f of %.0f, %.2f of %.2f m3 free, %s in %.2fs",
        wh,
        items.n,
        int((alloc.qty > 0).sum()),
        items.cost @ alloc.qty,
        limits.budget[w],
        items.volume @ alloc.qty,
        free,
        alloc.solver,
        alloc.seconds,
    )
    rows = plan_rows(keys, shared.cutoff, problem, alloc, demand, items, cfg.policy)
    return rows.with_columns(
        pl.when(ended.is_not_null())
        .then(pl.format("ended: no sales row since {} (policy.ended_after_days), nothing ordered", ended))
        .otherwise(pl.col(S.REASON))
        .alias(S.REASON)
    )


def _read(root: str, spec: S.TableSpec, whs: list[str], opts: io.StorageOptions | None) -> pl.DataFrame:
    lf = io.scan_table(root, spec, opts, conform=spec.name not in ("forecasts",))
    if S.WAREHOUSE_ID in spec.schema.names():
        lf = lf.filter(pl.col(S.WAREHOUSE_ID).is_in(whs))
    return lf.collect()


def _task_uri(shared: OptimizeShared, group: OptimizeGroup) -> str:
    return io.join(shared.staging, f"task-{zlib.crc32(','.join(group.warehouses).encode()):08x}")


def optimize_task(group: OptimizeGroup, shared: OptimizeShared) -> dict[str, Any]:
    """Plan the warehouses of one group and stage their rows (a Ray task; plain function)."""
    out = _task_uri(shared, group)
    if io.exists(io.join(out, "_SUCCESS"), shared.opts):
        return {"status": "skipped", "warehouses": list(group.warehouses), "series": group.series}
    t0 = time.perf_counter()
    cfg, opts, whs = shared.cfg, shared.opts, list(group.warehouses)
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    tables = {
        "forecasts": _read(cfg.run.dir, spec, whs, opts).filter(pl.col(S.CUTOFF) == shared.cutoff),
        "inventory": _read(cfg.data.root, S.INVENTORY, whs, opts),
        "inbound": _read(cfg.data.root, S.INBOUND, whs, opts),
        "warehouses": _read(cfg.data.root, S.WAREHOUSES, whs, opts),
        "ended": ended_series(cfg.data.root, shared.cutoff, cfg.policy.ended_after_days, opts, whs),
    }
    skus = tables["forecasts"][S.SKU_ID].unique().to_list()
    tables["products"] = io.read_table(
        cfg.data.root, S.PRODUCTS, opts, predicate=pl.col(S.SKU_ID).is_in(skus)
    )
    has_paths = bool(io.table_files(cfg.run.dir, S.PATHS, opts))
    parts = []
    for wh in whs:  # one warehouse's paths in memory at a time
        if has_paths:
            tables["paths"] = (
                io.scan_table(cfg.run.dir, S.PATHS, opts)
                .filter((pl.col(S.WAREHOUSE_ID) == wh) & (pl.col(S.CUTOFF) == shared.cutoff))
                .select(S.SKU_ID, S.WAREHOUSE_ID, S.SAMPLE_ID, S.STEP, S.VALUE)
                .collect()
            )
        parts.append(plan_warehouse(shared, wh, tables))
    rows = pl.concat(parts)
    io.write_table(rows, out, S.PLANS, opts)
    io.write_bytes(io.join(out, "_SUCCESS"), b"", opts)
    counts = rows.group_by(S.BINDING_CONSTRAINT).len().rows()
    return {
        "status": "ok",
        "warehouses": whs,
        "series": rows.height,
        "orders": int((rows[S.ORDER_QTY] > 0).sum()),
        "binding": {k: int(v) for k, v in counts},
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _reasons(failed: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['task']} ({r.get('reason', '')})" for r in failed[:5])


def run_optimize(cfg: Config, opts: io.StorageOptions | None = None) -> dict[str, Any]:
    """Plan every warehouse of the run's forecasts; write ``<run.dir>/plans/`` and its manifest.

    Returns:
        Summary: cutoff, warehouses, series, orders, capital spent, rows per binding constraint,
        task counts (``distributed.runner.summarize``).

    Raises:
        SchemaError: the run has no forecasts.
        DataQualityError: some tasks failed (their names and reasons); the others' rows are
            committed and their staged rows kept, so a rerun redoes only the failed ones.
    """
    from inventory_scale.distributed.runner import run_tasks, summarize
    from inventory_scale.manifest import build_manifest, config_hash, write_manifest

    t0 = time.perf_counter()
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    fc = io.scan_table(cfg.run.dir, spec, opts, conform=False)
    if cfg.run.cutoff:
        cutoff = dt.date.fromisoformat(cfg.run.cutoff)
    else:
        cutoff = fc.select(pl.col(S.CUTOFF).max()).collect().item()
    first = fc.filter((pl.col(S.CUTOFF) == cutoff) & (pl.col(S.STEP) == 1))
    counts = dict(first.group_by(S.WAREHOUSE_ID).len().collect().rows())
    if not counts:
        raise SchemaError(f"{io.join(cfg.run.dir, spec.name)}: no forecasts for cutoff {cutoff}")
    groups = group_warehouses({str(k): int(v) for k, v in counts.items()}, cfg.policy.task_skus)
    staging = io.join(cfg.run.dir, f".optimize-staging-{config_hash(cfg)[:12]}")
    shared = OptimizeShared(cfg, cutoff, staging, opts)
    log.info("optimize: %d warehouses in %d task(s), cutoff %s", len(counts), len(groups), cutoff)
    results = run_tasks(
        optimize_task, groups, ray_cfg=cfg.ray, stage="optimize", shared=shared, label=lambda g: g.label
    )
    done = [g for g, r in zip(groups, results, strict=True) if r["status"] in ("ok", "skipped")]
    failed = [r for r in results if r["status"] == "failed"]
    if not done:
        raise DataQualityError(f"optimize: every task failed: {_reasons(failed)}")
    with io.TableWriter(cfg.run.dir, S.PLANS, opts) as writer:
        for g in done:
            writer.write(io.read_table(_task_uri(shared, g), S.PLANS, opts))
    plans = io.scan_table(cfg.run.dir, S.PLANS, opts)
    totals = (
        plans.select(
            pl.len().alias("series"),
            (pl.col(S.ORDER_QTY) > 0).sum().alias("orders"),
            pl.col(S.ORDER_QTY).sum().alias("units"),
        )
        .collect()
        .row(0, named=True)
    )
    binding = dict(plans.group_by(S.BINDING_CONSTRAINT).len().sort(S.BINDING_CONSTRAINT).collect().rows())
    tasks = summarize(results)
    out = io.join(cfg.run.dir, S.PLANS.name)
    inputs = [io.join(cfg.run.dir, spec.name)] + [
        io.join(cfg.data.root, t.name) for t in (S.PRODUCTS, S.WAREHOUSES, S.INVENTORY, S.INBOUND)
    ]
    seconds = round(time.perf_counter() - t0, 2)
    manifest = build_manifest(
        "optimize", cfg, cfg.seed, inputs, opts, cutoff=cutoff.isoformat(), tasks=results, seconds=seconds
    )
    write_manifest(out, manifest, opts)
    if failed:
        raise DataQualityError(
            f"optimize: {len(failed)} of {len(results)} task(s) failed: {_reasons(failed)}"
        )
    io.remove(staging, opts)
    return {
        "stage": "optimize",
        "output": out,
        "cutoff": cutoff.isoformat(),
        "warehouses": len(counts),
        **{k: (round(float(v), 2) if k == "units" else int(v)) for k, v in totals.items()},
        "binding": {str(k): int(v) for k, v in binding.items()},
        "tasks": tasks["tasks"],
        "tasks_skipped": tasks["tasks_skipped"],
        "seconds": seconds,
    }
