"""One shard, end to end: read its slice, train its LSTM, sample paths, summarise them.

These are the plain functions a Ray task (``distributed/runner.py``) or an in-process stage
(``pipeline.py``) calls per shard:

- :func:`load_shard` reads only the shard's series from the dataset root (partition pruning on
  ``warehouse_id`` + predicate pushdown on ``sku_id``), up to the cutoff.
- :func:`train_shard` packs the shard into CSR windows and fits one global DeepAR-style LSTM; the
  checkpoint carries the vocabularies, so forecasting needs nothing else.
- :func:`forecast_shard` draws ``num_paths`` joint sample paths for every series of the shard in
  batched tensors on the module's device (chunks of at most ``forecast.sample_rows`` series x
  paths rows, so memory stays bounded whatever the shard size) and turns them into the forecast
  frame.
- :func:`baseline_shard` does the same for the seasonal baselines, so metrics, optimizer and
  simulator treat every model alike.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pytorch_lightning as lightning
import torch

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.data.datamodule import ShardDataModule
from inventory_scale.data.features import event_names, events_of, offset_date
from inventory_scale.data.last_year import (
    GROUP_LAST_YEAR_FEATURES,
    LAST_YEAR_FEATURES,
    last_year_learnable,
    without_last_year,
)
from inventory_scale.data.listing import last_sales_date, list_series
from inventory_scale.data.planned import read_planned
from inventory_scale.data.windows import PackedShard, inference_batch, pack_shard
from inventory_scale.distributed.sharding import shard_seed
from inventory_scale.errors import DataQualityError
from inventory_scale.forecast_frame import protection_steps, summarize_paths
from inventory_scale.models.baselines import FITS, baseline_paths
from inventory_scale.models.ensemble import Forecaster, as_forecaster, combine_member_stats, member_seed
from inventory_scale.models.fit import fit_forecaster
from inventory_scale.models.lstm import LSTMConfig
from inventory_scale.models.module import ForecastModule

log = logging.getLogger(__name__)

__all__ = [
    "ShardData",
    "attach_planned",
    "forecast_shard",
    "last_sales_date",
    "list_series",
    "load_shard",
    "train_ensemble",
    "train_shard",
]

PERIOD_DAYS = {"1d": 1.0, "1w": 7.0, "1mo": 365.25 / 12}


@dataclass
class ShardData:
    """The tables one shard needs, restricted to its series (sales up to the cutoff)."""

    series: pl.DataFrame  # sku_id, warehouse_id (the shard's series, in shard order)
    sales: pl.DataFrame
    products: pl.DataFrame
    warehouses: pl.DataFrame
    calendar: pl.DataFrame
    inventory: pl.DataFrame
    planned: pl.DataFrame | None = None  # horizon prices / promotions (attach_planned)


def load_shard(
    root: str,
    series: pl.DataFrame,
    cutoff: dt.date,
    opts: io.StorageOptions | None = None,
) -> ShardData:
    """Read the slices of every input table that ``series`` needs, sales up to ``cutoff``.

    Args:
        root: dataset root URI.
        series: ``sku_id, warehouse_id`` of the shard.
        cutoff: last date of history to read.
        opts: storage options for ``s3://`` roots.
    """
    keys = series.select(S.SKU_ID, S.WAREHOUSE_ID)
    skus = keys[S.SKU_ID].unique().to_list()
    whs = keys[S.WAREHOUSE_ID].unique().to_list()
    sales = (
        io.scan_table(root, S.SALES, opts)
        .filter(pl.col(S.WAREHOUSE_ID).is_in(whs) & pl.col(S.SKU_ID).is_in(skus) & (pl.col(S.DATE) <= cutoff))
        .collect()
        .join(keys, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
    )
    products = io.read_table(root, S.PRODUCTS, opts, predicate=pl.col(S.SKU_ID).is_in(skus))
    warehouses = io.read_table(root, S.WAREHOUSES, opts, predicate=pl.col(S.WAREHOUSE_ID).is_in(whs))
    regions = warehouses[S.REGION].unique().to_list()
    calendar = io.read_table(root, S.CALENDAR, opts, predicate=pl.col(S.REGION).is_in(regions))
    inventory = io.read_table(root, S.INVENTORY, opts, predicate=pl.col(S.WAREHOUSE_ID).is_in(whs)).join(
        keys, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi"
    )
    return ShardData(keys, sales, products, warehouses, calendar, inventory)


def attach_planned(
    data: ShardData, cfg: Config, cutoff: dt.date, opts: io.StorageOptions | None = None
) -> ShardData:
    """``data`` with its horizon's planned prices / promotions (``data.planned_prices``) read in."""
    until = offset_date(cutoff, cfg.data.freq, cfg.data.horizon)
    data.planned = read_planned(cfg.data.root, cfg.data.planned_prices, data.series, cutoff, until, opts)
    return data


def pack(
    data: ShardData,
    cfg: Config,
    cutoff: dt.date,
    vocab: dict[str, list[str]] | None = None,
    text: bool | None = None,
    last_year: bool | None = None,
    events: Sequence[str] | None = None,
    last_year_group: bool | None = None,
) -> PackedShard:
    """CSR-pack a shard for training or inference (horizon covariates past the cutoff).

    ``text`` (default ``model.text_features``) adds the product-text covariates ``static_real``;
    ``last_year`` (default ``model.last_year``) the last-year demand covariates, ``last_year_group``
    (default ``model.last_year_group``) their group means; ``events`` (default:
    every event of the shard's calendar with ``model.named_events``, else none) the per-event
    distances.
    """
    if data.sales.is_empty():
        raise DataQualityError(f"no sales rows up to {cutoff} for this shard's {data.series.height} series")
    packed = pack_shard(
        data.sales,
        data.products,
        data.warehouses,
        data.calendar,
        freq=cfg.data.freq,
        cutoff=cutoff,
        horizon=cfg.data.horizon,
        vocab=vocab,
        last_year=cfg.model.last_year if last_year is None else last_year,
        planned=data.planned,
        events=(event_names(data.calendar) if cfg.model.named_events else ()) if events is None else events,
        subcategory=cfg.model.subcategory,
        last_year_group=cfg.model.last_year_group if last_year_group is None else last_year_group,
    )
    if cfg.model.text_features if text is None else text:
        from inventory_scale.text.features import static_real

        packed.static_real = static_real(packed.series, data.products, cfg)
    return packed


def module_uses_text(module: Forecaster) -> bool:
    """Whether a trained module reads product-text covariates (``static_real``)."""
    return module.net.config.static_real_dim > 0


def module_events(module: Forecaster) -> tuple[str, ...]:
    """The named events whose distances a trained module reads (from its feature names)."""
    return events_of((module.scaler_state or {}).get("feature_names", []))


def module_uses_last_year(module: Forecaster) -> bool:
    """Whether a trained module reads the last-year covariates (named in its feature names)."""
    return LAST_YEAR_FEATURES[0] in (module.scaler_state or {}).get("feature_names", [])


def module_uses_group(module: Forecaster) -> bool:
    """Whether a trained module reads the group last-year covariates (``model.last_year_group``)."""
    return GROUP_LAST_YEAR_FEATURES[0] in (module.scaler_state or {}).get("feature_names", [])


def training_pack(data: ShardData, cfg: Config, cutoff: dt.date, shard_id: int) -> PackedShard:
    """The shard packed for training; last-year covariates dropped under the history rule."""
    packed = pack(data, cfg, cutoff)
    if packed.last_year is not None and not last_year_learnable(packed, cfg.model.last_year_min_years):
        log.info(
            "shard %d: last-year covariates off: median history %d < model.last_year_min_years=%s + H",
            shard_id, int(np.median(packed.cutoff_index)), cfg.model.last_year_min_years,
        )  # fmt: skip
        packed = without_last_year(packed)
    return packed


def train_shard(
    data: ShardData,
    cfg: Config,
    *,
    cutoff: dt.date,
    shard_id: int,
    ckpt_dir: str,
    callbacks: Sequence[lightning.Callback] = (),
    member: int = 0,
    packed: PackedShard | None = None,
) -> tuple[ForecastModule, str, dict[str, Any]]:
    """Fit one global LSTM on a shard; returns (module, checkpoint path, info).

    ``callbacks`` are extra Lightning callbacks for the fit (the sweep scores each epoch with one).
    ``member`` picks the seed of one ensemble member (:func:`~.models.ensemble.member_seed`; 0 is
    the shard's own seed); :func:`train_ensemble` trains all of them from one ``packed`` shard
    (:func:`training_pack`, built here when not given).
    """
    t0 = time.perf_counter()
    if packed is None:
        packed = training_pack(data, cfg, cutoff, shard_id)
    seed = member_seed(shard_seed(cfg.seed, shard_id), member)
    dm = ShardDataModule(
        packed,
        cfg.model,
        context_length=cfg.data.context_length,
        steps_per_epoch=cfg.trainer.steps_per_epoch,
        seed=seed,
    )
    net = LSTMConfig.from_model_config(
        cfg.model,
        num_time_features=dm.num_time_features,
        cardinalities=dm.cardinalities,
        context_length=cfg.data.context_length,
        horizon=cfg.data.horizon,
        freq=cfg.data.freq,
        static_real_dim=0 if packed.static_real is None else packed.static_real.shape[1],
    )
    scaler_state = {"vocab": packed.vocab, "feature_names": list(packed.feature_names), "freq": packed.freq}
    stats: dict[str, Any] = {}
    module, ckpt = fit_forecaster(
        dm,
        net,
        cfg.model,
        cfg.trainer,
        seed,
        ckpt_dir,
        scaler_state,
        stats=stats,
        label=f"shard {shard_id}" + (f" member {member}" if member else ""),
        callbacks=callbacks,
    )
    info = {
        "shard": shard_id,
        "series": packed.n_series,
        "train_windows": len(dm.train_windows),
        **stats,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    return module, ckpt, info


def train_ensemble(
    data: ShardData, cfg: Config, *, cutoff: dt.date, shard_id: int, ckpt_dir: str
) -> tuple[Forecaster, list[str], dict[str, Any]]:
    """Fit the shard's ``model.ensemble`` members one after another (seeds by :func:`member_seed`).

    Returns ``(forecaster, checkpoint paths, info)``: the module itself for one member, an
    :class:`~.models.ensemble.Ensemble` for several; checkpoints in member order (member ``k`` under
    ``ckpt_dir/member-k``); info is member 0's, with ``members``, every member's ``val_loss`` and
    ``epochs``, and ``seconds`` / ``steps`` summed over the members.
    """
    packed = training_pack(data, cfg, cutoff, shard_id)  # once: every member reads the same windows
    modules, ckpts, infos = [], [], []
    for k in range(cfg.model.ensemble):
        sub = ckpt_dir if k == 0 else f"{ckpt_dir}/member-{k}"
        module, ckpt, info = train_shard(
            data, cfg, cutoff=cutoff, shard_id=shard_id, ckpt_dir=sub, member=k, packed=packed
        )
        modules.append(module)
        ckpts.append(ckpt)
        infos.append(info)
    return as_forecaster(modules), ckpts, combine_member_stats(infos)


def _horizon_dates(cutoff: dt.date, freq: str, horizon: int) -> list[dt.date]:
    return [offset_date(cutoff, freq, h) for h in range(1, horizon + 1)]


def _pi_steps(data: ShardData, series: pl.DataFrame, cfg: Config) -> np.ndarray:
    """Protection interval per series in periods; config fill rules where inventory lacks a row."""
    inv = series.join(data.inventory, on=[S.SKU_ID, S.WAREHOUSE_ID], how="left")
    lead = inv[S.LEAD_TIME_DAYS].fill_null(cfg.data.lead_time_days).to_numpy()
    review = inv[S.REVIEW_PERIOD_DAYS].fill_null(cfg.data.review_period_days).to_numpy()
    return protection_steps(lead, review, PERIOD_DAYS[cfg.data.freq])


def shard_frame(
    paths: np.ndarray,
    packed: PackedShard,
    data: ShardData,
    cfg: Config,
    cutoff: dt.date,
    point: np.ndarray | None = None,
) -> pl.DataFrame:
    """The forecast rows (quantiles, mean, protection-interval demand) of ``packed``'s series."""
    series = packed.series.select(S.SKU_ID, S.WAREHOUSE_ID)
    return summarize_paths(
        paths,
        series,
        cutoff,
        _horizon_dates(cutoff, cfg.data.freq, cfg.data.horizon),
        cfg.forecast.quantiles,
        _pi_steps(data, series, cfg),
        cfg.forecast.protection_quantiles,
        point=point,
    )


def sample_chunked(
    module: Forecaster,
    batch: dict[str, torch.Tensor],
    num_paths: int,
    max_rows: int,
    generator: torch.Generator,
) -> np.ndarray:
    """Paths ``[N, S, H]`` drawn chunk by chunk of series, at most ``max_rows`` series x paths each.

    The sampler's buffers grow with series x paths x (lag history + horizon); one chunk at a time
    keeps the peak bounded. Chunks draw from one generator in order, so a rerun gives the same paths.
    """
    n = next(iter(batch.values())).shape[0]
    step = max(1, max_rows // num_paths)
    out = np.empty((n, num_paths, module.net.config.horizon), dtype=np.float32)
    for lo in range(0, n, step):
        part = {k: v[lo : lo + step] for k, v in batch.items()}
        out[lo : lo + step] = module.sample(part, num_paths, generator=generator).float().cpu().numpy()
    return out


@torch.no_grad()
def forecast_shard(
    module: Forecaster, data: ShardData, cfg: Config, *, cutoff: dt.date, shard_id: int
) -> tuple[pl.DataFrame, np.ndarray]:
    """Sample paths for every series of a shard; returns (forecast frame, paths ``[N, S, H]``)."""
    vocab = (module.scaler_state or {}).get("vocab")
    packed = pack(
        data,
        cfg,
        cutoff,
        vocab=vocab,
        text=module_uses_text(module),
        last_year=module_uses_last_year(module),
        events=module_events(module),
        last_year_group=module_uses_group(module),
    )
    batch = inference_batch(packed, cfg.data.context_length)
    device = module.device
    batch = {k: v.to(device) for k, v in batch.items()}
    gen = torch.Generator(device=device).manual_seed(shard_seed(cfg.seed, shard_id))
    paths = sample_chunked(module, batch, cfg.forecast.num_paths, cfg.forecast.sample_rows, gen)
    return shard_frame(paths, packed, data, cfg, cutoff), paths


def baseline_shard(
    name: str, data: ShardData, cfg: Config, *, cutoff: dt.date, shard_id: int
) -> tuple[pl.DataFrame, np.ndarray]:
    """Seasonal baseline forecast for a shard through the same frame as the LSTM."""
    packed = pack(data, cfg, cutoff, text=False, last_year=False, events=())
    history = [
        packed.values[packed.indptr[i] : packed.indptr[i] + packed.cutoff_index[i]]
        for i in range(packed.n_series)
    ]
    rng = np.random.default_rng(shard_seed(cfg.seed, shard_id))
    paths = baseline_paths(
        name,
        history,
        horizon=cfg.data.horizon,
        season_length=cfg.data.season_length,
        num_paths=cfg.forecast.num_paths,
        rng=rng,
    )
    point = FITS[name](history, cfg.data.horizon, cfg.data.season_length).point  # [N, H]
    return shard_frame(paths, packed, data, cfg, cutoff, point=point), paths
