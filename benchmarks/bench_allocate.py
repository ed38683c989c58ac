"""Benchmark the per-warehouse reorder optimizer: scale through Ray, and greedy vs MILP.

Two measurements (``make bench-allocate`` runs both with the defaults)::

    # (a) 1,000,000 SKU-warehouse decisions: 200 warehouses x 5,000 SKUs, budget + capacity binding,
    #     one Ray task per warehouse on 2 CPUs
    .venv/bin/python benchmarks/bench_allocate.py scale --warehouses 200 --skus 5000 --cpus 2
    # (b) greedy (Lagrangian + rounding + repair + exchange) vs HiGHS MILP on 5,000-SKU warehouses
    .venv/bin/python benchmarks/bench_allocate.py gap --warehouses 3 --skus 5000 --milp-time-limit 120

A decision is everything the optimize stage does for a series once its sample paths are in memory:
lead times sampled per path, protection-interval (and shelf-life) sums from ``[N, S, H]`` daily
paths, the exact expected-profit curve, and the warehouse's allocation under its budget and
capacity with case packs and MOQs. Each task draws its own warehouse's paths (negative-binomial
daily demand with a weekly pattern; 100 paths x 28 days by default) from a seed derived from the
warehouse number, so the figures do not depend on reading forecasts from disk (the stage's I/O is
benchmarked by ``bench_scale.py``). Budgets and capacities are set to a share of what the
unconstrained orders would need, so both bind.

``gap`` reports, per warehouse, the greedy and MILP objectives re-scored on the exact profit
curves, the continuous Lagrangian optimum (an upper bound on any integer solution), the gaps and
the solve times. The MILP uses ``--segments`` breakpoints per series (``policy.milp_segments``).

Prints one JSON object (``--json`` writes it to a file too).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from inventory_scale.config import PolicyConfig, RayConfig
from inventory_scale.inventory.allocate import Problem, allocate, greedy, lagrangian
from inventory_scale.inventory.demand import protection_demand, sample_lead_times
from inventory_scale.inventory.items import Items, leftover_value
from inventory_scale.inventory.newsvendor import profit_curve
from inventory_scale.inventory.plan import plan_orders

log = logging.getLogger("bench_allocate")


@dataclass(frozen=True)
class Spec:
    """One synthetic warehouse: size, paths, how tight the limits are."""

    skus: int
    paths: int
    days: int
    budget_share: float
    capacity_share: float
    seed: int


def draw_paths(spec: Spec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``[N]`` mean daily demand and ``[N, S, H]`` float32 negative-binomial daily paths."""
    n = spec.skus
    mu = rng.lognormal(0.3, 1.2, n)  # mean daily demand, long tail
    week = 1.0 + 0.3 * np.sin(2 * np.pi * np.arange(spec.days) / 7)
    mean = mu[:, None, None] * week[None, None, :]
    k = 2.0
    daily = rng.negative_binomial(k, k / (k + mean), (n, spec.paths, spec.days)).astype(np.float32)
    return mu, daily


def warehouse(
    index: int, spec: Spec, pool: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[Items, np.ndarray, np.ndarray, float, float]:
    """Items, ``[N, S, H]`` daily paths, positions and the (budget, capacity) of warehouse ``index``.

    With a ``pool`` (``draw_paths`` output shared by all tasks) the warehouse's series are the
    pool's in a random order (drawing 10^8 negative-binomial values per task would time the
    benchmark's data, not the optimizer); economics, packs, lead times and limits are its own.
    """
    rng = np.random.default_rng([spec.seed, index])
    n = spec.skus
    if pool is None:
        mu, daily = draw_paths(spec, rng)
    else:
        perm = rng.permutation(n)
        mu, daily = pool[0][perm], pool[1][perm]
    cost = rng.uniform(1.0, 50.0, n)
    price = cost * rng.uniform(1.2, 2.5, n)
    pack = rng.choice([1.0, 1.0, 6.0, 12.0, 24.0], n)
    moq = pack * rng.choice([0.0, 1.0, 2.0, 4.0], n)
    shelf = np.where(rng.random(n) < 0.1, rng.integers(5, 30, n), np.nan).astype(np.float64)
    review = np.full(n, 7, dtype=np.int64)
    holding = np.full(n, 0.25)
    salvage = 0.3 * cost
    items = Items(
        warehouse=np.zeros(n, dtype=np.int64),
        price=price,
        cost=cost,
        salvage=salvage,
        goodwill=0.1 * price,
        holding_rate=holding,
        volume=rng.uniform(0.001, 0.05, n),
        case_pack=pack,
        moq=moq,
        lead_time_days=rng.uniform(3.0, 10.0, n),
        lead_time_std_days=rng.uniform(0.0, 2.0, n),
        review_days=review,
        shelf_life_days=shelf,
        leftover=leftover_value(cost, salvage, holding, review, "carryover"),
    )
    position = np.floor(mu * rng.uniform(0.0, 8.0, n))
    # limits: shares of what the unconstrained order-up-to levels would cost and occupy
    want = np.maximum(mu * (items.lead_time_days + review) * 1.2 - position, 0.0)
    budget = spec.budget_share * float(cost @ want)
    capacity = spec.capacity_share * float(items.volume @ want)
    return items, daily, position, budget, capacity


def decide_warehouse(
    index: int, spec: Spec, pool: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, Any]:
    """One warehouse's decisions: paths -> protection demand -> profit curves -> allocation."""
    t_task = time.perf_counter()
    items, daily, position, budget, capacity = warehouse(index, spec, pool)
    t0 = time.perf_counter()
    rng = np.random.default_rng([spec.seed, index, 1])
    lead = sample_lead_times(items.lead_time_days, items.lead_time_std_days, spec.paths, rng)
    demand = protection_demand(daily, lead, items.review_days, items.shelf_life_days)
    _, alloc = plan_orders(demand, items, position, budget, capacity, PolicyConfig())
    seconds = time.perf_counter() - t0
    spend, used = float(items.cost @ alloc.qty), float(items.volume @ alloc.qty)
    return {
        "status": "ok",
        "decisions": items.n,
        "orders": int((alloc.qty > 0).sum()),
        "budget_used": spend / budget if budget > 0 else 0.0,
        "capacity_used": used / capacity if capacity > 0 else 0.0,
        "within_limits": spend <= budget * (1 + 1e-9) and used <= capacity * (1 + 1e-9),
        "binding": {
            str(k): int(v) for k, v in zip(*np.unique(alloc.binding, return_counts=True), strict=True)
        },
        "decide_s": round(seconds, 3),
        "task_s": round(time.perf_counter() - t_task, 3),
    }


def _task(index: int, shared: tuple[Spec, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    spec, pool = shared
    return decide_warehouse(index, spec, pool)


def bench_scale(args: argparse.Namespace) -> dict[str, Any]:
    from inventory_scale.distributed.runner import run_tasks

    spec = Spec(args.skus, args.paths, args.days, args.budget_share, args.capacity_share, args.seed)
    ray_cfg = RayConfig(mode=args.mode, address="local", num_cpus=args.cpus, max_retries=0)
    t0 = time.perf_counter()
    pool = draw_paths(spec, np.random.default_rng([spec.seed, 10**6]))
    pool_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    results = run_tasks(
        _task,
        list(range(args.warehouses)),
        ray_cfg=ray_cfg,
        stage="bench-allocate",
        shared=(spec, pool),
        label=lambda i: f"W{i:04d}",
    )
    wall = time.perf_counter() - t0
    ok = [r for r in results if r["status"] == "ok"]
    binding: dict[str, int] = {}
    for r in ok:
        for k, v in r["binding"].items():
            binding[k] = binding.get(k, 0) + v
    decide = np.array([r["decide_s"] for r in ok])
    return {
        "bench": "scale",
        "warehouses": args.warehouses,
        "skus_per_warehouse": args.skus,
        "decisions": int(sum(r["decisions"] for r in ok)),
        "paths": args.paths,
        "days": args.days,
        "ray_mode": args.mode,
        "cpus": args.cpus,
        "wall_s": round(wall, 2),
        "path_pool_s": round(pool_s, 2),
        "tasks_ok": len(ok),
        "tasks_failed": len(results) - len(ok),
        "all_within_limits": all(r["within_limits"] for r in ok),
        "budget_used_min": round(min(r["budget_used"] for r in ok), 4) if ok else None,
        "capacity_used_min": round(min(r["capacity_used"] for r in ok), 4) if ok else None,
        "task_decide_s_mean": round(float(decide.mean()), 3) if ok else None,
        "task_decide_s_max": round(float(decide.max()), 3) if ok else None,
        "task_s_mean": round(float(np.mean([r["task_s"] for r in ok])), 3) if ok else None,
        "binding": binding,
    }


def bench_gap(args: argparse.Namespace) -> dict[str, Any]:
    spec = Spec(args.skus, args.paths, args.days, args.budget_share, args.capacity_share, args.seed)
    rows = []
    for index in range(args.warehouses):
        items, daily, position, budget, capacity = warehouse(index, spec)
        rng = np.random.default_rng([spec.seed, index, 1])
        lead = sample_lead_times(items.lead_time_days, items.lead_time_std_days, spec.paths, rng)
        demand = protection_demand(daily, lead, items.review_days, items.shelf_life_days)
        curve = profit_curve(demand, items)
        p = Problem(curve, position, items.cost, items.volume, items.case_pack, items.moq, budget, capacity)
        q_cont, lam, mu = lagrangian(p)
        bound = float(p.gain(q_cont).sum())
        t0 = time.perf_counter()
        g = greedy(p)
        g_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        m = allocate(
            p, "milp", time_limit_s=args.milp_time_limit, mip_gap=args.mip_gap, segments=args.segments
        )
        m_s = time.perf_counter() - t0 - g_s  # allocate() runs greedy first: MILP time alone
        rows.append(
            {
                "warehouse": index,
                "skus": items.n,
                "greedy": round(g.objective, 2),
                "milp": round(m.objective, 2),
                "milp_solver": m.solver,
                "continuous_bound": round(bound, 2),
                "gap_vs_milp_pct": round(100 * (m.objective - g.objective) / abs(m.objective), 4),
                "gap_vs_bound_pct": round(100 * (bound - g.objective) / abs(bound), 4),
                "greedy_s": round(g_s, 3),
                "milp_s": round(m_s, 2),
                "budget_price": round(lam, 5),
                "capacity_price": round(mu, 5),
            }
        )
        log.info("gap %s", rows[-1])
    return {
        "bench": "gap",
        "segments": args.segments,
        "milp_time_limit_s": args.milp_time_limit,
        "mip_gap": args.mip_gap,
        "warehouses": rows,
        "max_gap_vs_milp_pct": max(r["gap_vs_milp_pct"] for r in rows),
        "max_gap_vs_bound_pct": max(r["gap_vs_bound_pct"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bench", choices=["scale", "gap"])
    parser.add_argument("--warehouses", type=int, default=None, help="default 200 (scale), 3 (gap)")
    parser.add_argument("--skus", type=int, default=5000)
    parser.add_argument("--paths", type=int, default=100)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--budget-share", type=float, default=0.6)
    parser.add_argument("--capacity-share", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus", type=int, default=2, help="Ray CPUs (scale)")
    parser.add_argument("--mode", default="local", choices=["local", "inprocess"], help="scale: Ray or not")
    parser.add_argument("--milp-time-limit", type=float, default=120.0)
    parser.add_argument("--mip-gap", type=float, default=1e-4)
    parser.add_argument("--segments", type=int, default=24)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    if args.warehouses is None:
        args.warehouses = 200 if args.bench == "scale" else 3
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = bench_scale(args) if args.bench == "scale" else bench_gap(args)
    result["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} CPUs visible, {platform.processor() or 'cpu'}"
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
