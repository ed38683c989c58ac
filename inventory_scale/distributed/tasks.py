"""Per-shard task functions of the train and forecast stages (what the runner fans out).

Each is a plain module-level function ``(item, shared) -> result dict`` (see
:func:`~inventory_scale.distributed.runner.run_tasks`): it reads only its shard's slice, writes
its outputs atomically under names fixed by the shard id (:mod:`.outputs`), and raises
:class:`~inventory_scale.errors.InventoryScaleError` for bad data (the runner reports it).
No Ray here: the same functions run in a Ray worker or in-process (``ray.mode=inprocess``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.distributed import outputs
from inventory_scale.distributed.sharding import read_sales_slice

if TYPE_CHECKING:
    from inventory_scale.forecast import ShardData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardItem:
    """One unit of work: a shard id and its series (``sku_id, warehouse_id``)."""

    shard: int
    series: pl.DataFrame
    cold: pl.DataFrame | None = None  # forecast: cold-start series this shard's model forecasts
    member: int = 0  # train: which ensemble member (model.ensemble > 1 trains each as its own task)


@dataclass(frozen=True)
class StageInputs:
    """Read-only inputs every shard task of a stage shares (put in Ray's object store once)."""

    cfg: Config
    cutoff: dt.date
    bucketed: bool  # read the prepared slice (True) or the raw table with pushdown (False)
    checkpoints: dict[int, str] = dataclasses.field(default_factory=dict)  # forecast: shard -> fp

    @property
    def opts(self) -> io.StorageOptions:
        return io.StorageOptions(**dataclasses.asdict(self.cfg.storage))


def shard_label(item: ShardItem) -> str:
    """Name of a shard (and ensemble member) in logs and results."""
    return f"shard {item.shard}" + (f" member {item.member}" if item.member else "")


def read_shard(item: ShardItem, inp: StageInputs) -> ShardData:
    """The shard's inputs: sales from its prepared slice (bucketed) or the raw table (pushdown)."""
    from inventory_scale.forecast import ShardData, attach_planned, load_shard  # torch: in the task only

    cfg, opts = inp.cfg, inp.opts
    if not inp.bucketed:
        return attach_planned(load_shard(cfg.data.root, item.series, inp.cutoff, opts), cfg, inp.cutoff, opts)
    root = cfg.data.root
    keys = item.series.select(S.SKU_ID, S.WAREHOUSE_ID)
    skus = keys[S.SKU_ID].unique().to_list()
    whs = keys[S.WAREHOUSE_ID].unique().to_list()
    sales = read_sales_slice(cfg.run.dir, item.shard, keys, opts).filter(pl.col(S.DATE) <= inp.cutoff)
    products = io.read_table(root, S.PRODUCTS, opts, predicate=pl.col(S.SKU_ID).is_in(skus))
    warehouses = io.read_table(root, S.WAREHOUSES, opts, predicate=pl.col(S.WAREHOUSE_ID).is_in(whs))
    regions = warehouses[S.REGION].unique().to_list()
    calendar = io.read_table(root, S.CALENDAR, opts, predicate=pl.col(S.REGION).is_in(regions))
    inventory = io.read_table(root, S.INVENTORY, opts, predicate=pl.col(S.WAREHOUSE_ID).is_in(whs)).join(
        keys, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi"
    )
    return attach_planned(
        ShardData(keys, sales, products, warehouses, calendar, inventory), cfg, inp.cutoff, opts
    )


def _quiet_lightning() -> None:
    """Keep Lightning's per-trainer banners out of the stage log (one per shard otherwise)."""
    for name in ("lightning.pytorch", "pytorch_lightning", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def train_task(item: ShardItem, inp: StageInputs) -> dict[str, Any]:
    """Train one ensemble member of a shard's LSTM; write its info, then its checkpoint (its done
    marker): ``model.ckpt`` / ``info.json`` for member 0, ``member-NN.ckpt`` / ``info-member-NN.json``
    for the others. Members are independent tasks, so an ensemble trains on as many workers as it has
    members."""
    from inventory_scale.forecast import train_shard

    cfg, opts = inp.cfg, inp.opts
    _quiet_lightning()
    uri = outputs.member_uri(cfg.run.dir, item.shard, item.member)
    if io.exists(uri, opts):  # finished by an earlier attempt whose result was lost
        return {"shard": item.shard, "member": item.member, "status": "skipped", "checkpoint": uri}
    data = read_shard(item, inp)
    with tempfile.TemporaryDirectory(prefix="ckpt-") as tmp:
        _, ckpt, info = train_shard(
            data, cfg, cutoff=inp.cutoff, shard_id=item.shard, ckpt_dir=tmp, member=item.member
        )
        io.write_json(outputs.train_info_uri(cfg.run.dir, item.shard, item.member), info, opts)
        io.write_bytes(uri, Path(ckpt).read_bytes(), opts)
    return {**info, "member": item.member, "status": "ok", "checkpoint": uri}


def merge_members(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per shard from its members' task results (in shard, member order).

    Failed when any member failed (its reason), skipped when all were, ok otherwise. Member 0's
    metrics, plus ``members``, each member's ``val_loss`` / ``epochs`` / ``status``, and ``steps``
    and ``seconds`` summed over the members trained now. A one-member shard's result is unchanged.
    """
    from inventory_scale.models.ensemble import combine_member_stats

    by_shard: dict[int, list[dict[str, Any]]] = {}
    for r in results:
        by_shard.setdefault(int(r["shard"]), []).append(r)
    out = []
    for shard, parts in sorted(by_shard.items()):
        parts = sorted(parts, key=lambda r: int(r.get("member", 0)))
        merged = combine_member_stats(parts)
        if len(parts) > 1:
            statuses = [p["status"] for p in parts]
            failed = [p for p in parts if p["status"] == "failed"]
            merged.update(
                shard=shard,
                status="failed" if failed else "skipped" if all(s == "skipped" for s in statuses) else "ok",
                member_status=statuses,
            )
            if failed:
                merged["reason"] = f"member {failed[0].get('member', 0)}: {failed[0].get('reason')}"
        out.append(merged)
    return out


def _device_module(paths: list[Path], cfg: Config) -> Any:
    """Load a shard's member checkpoints (weights only) as one forecaster, onto the GPU when the
    trainer asks for one and has it."""
    import torch

    from inventory_scale.models.ensemble import as_forecaster
    from inventory_scale.models.module import load_forecaster

    module = as_forecaster([load_forecaster(p) for p in paths])
    wants_gpu = cfg.trainer.accelerator in ("gpu", "cuda", "auto")
    if wants_gpu and torch.cuda.is_available():
        module = module.to("cuda")
    return module


def forecast_task(item: ShardItem, inp: StageInputs) -> dict[str, Any]:
    """Sample paths for one shard; write its forecast parts (and paths), then its marker."""
    from inventory_scale.forecast import forecast_shard

    cfg, opts = inp.cfg, inp.opts
    with tempfile.TemporaryDirectory(prefix="ckpt-") as tmp:
        local = []
        for k, uri in enumerate(outputs.member_uris(cfg.run.dir, item.shard, cfg.model.ensemble)):
            local.append(Path(tmp) / f"member-{k}.ckpt")
            local[-1].write_bytes(io.read_bytes(uri, opts))
        module = _device_module(local, cfg)
    data = read_shard(item, inp)
    t0 = time.perf_counter()
    frame, paths = forecast_shard(module, data, cfg, cutoff=inp.cutoff, shard_id=item.shard)
    n_cold = 0
    if item.cold is not None and item.cold.height:
        from inventory_scale.forecast_cold import forecast_cold, load_cold

        cold_data = load_cold(cfg.data.root, item.cold, opts)
        cold_frame, cold_paths = forecast_cold(
            module, item.cold, cold_data, cfg, cutoff=inp.cutoff, shard_id=item.shard
        )
        frame, paths = pl.concat([frame, cold_frame], how="vertical"), np.concatenate([paths, cold_paths])
        n_cold = cold_paths.shape[0]
    seconds = time.perf_counter() - t0
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    files = outputs.write_shard_parts(frame, cfg.run.dir, spec, item.shard, opts)
    if cfg.forecast.keep_paths:
        files += outputs.write_shard_parts(paths_frame(frame, paths), cfg.run.dir, S.PATHS, item.shard, opts)
    marker = {
        "shard": item.shard,
        "rows": frame.height,
        "series": int(paths.shape[0]),
        "cold_start_series": n_cold,
        "files": files,
        "checkpoint": inp.checkpoints.get(item.shard),
    }
    io.write_json(outputs.marker_uri(io.join(cfg.run.dir, spec.name), item.shard), marker, opts)
    return {
        "shard": item.shard,
        "status": "ok",
        "series": int(paths.shape[0]),
        "cold_start_series": n_cold,
        "rows": frame.height,
        "forecast_seconds": round(seconds, 3),
        "paths_per_s": round(paths.shape[0] * paths.shape[1] / seconds, 1) if seconds > 0 else 0.0,
        "device": str(module.device),
    }


def paths_frame(frame: pl.DataFrame, paths: np.ndarray) -> pl.DataFrame:
    """Long ``paths/`` rows (keys, cutoff, sample_id, step, value) of a shard's ``[N, S, H]`` paths."""
    n, s, h = paths.shape
    keys = frame.select(S.SKU_ID, S.WAREHOUSE_ID, S.CUTOFF).unique(maintain_order=True)
    return pl.DataFrame(
        {
            S.SKU_ID: np.repeat(keys[S.SKU_ID].to_numpy(), s * h),
            S.WAREHOUSE_ID: np.repeat(keys[S.WAREHOUSE_ID].to_numpy(), s * h),
            S.CUTOFF: np.repeat(keys[S.CUTOFF].to_numpy(), s * h),
            S.SAMPLE_ID: np.tile(np.repeat(np.arange(s, dtype=np.int32), h), n),
            S.STEP: np.tile(np.arange(1, h + 1, dtype=np.int32), n * s),
            S.VALUE: paths.reshape(-1),
        }
    )
