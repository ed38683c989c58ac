"""Cold start: forecasts for SKUs launched after the cutoff, with no sales history at all.

A product whose ``launch_date`` lies in ``(cutoff, cutoff + horizon]`` and that has no sales row on
or before the cutoff is a cold-start series in every warehouse the ``inventory`` table lists it
for (every warehouse when it lists none). The global LSTM forecasts it from what it knows without
history: product text (``model.text_features``), category, warehouse, price and calendar, with an
empty context and the SKU index unknown, exactly the launch windows it trains on
(``model.launch_share``). Its series starts at the launch (aligned to the cutoff's period grid):
the model draws the first H periods after launch, and they are shifted onto the forecast's
horizon (periods before the launch are 0). Nothing of the new SKU's sales is read.

The rows join the forecast like any other series, so the optimizer plans for them too.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.data.features import (
    build_features,
    encode_static,
    named_event_features,
    offset_date,
    time_features,
)
from inventory_scale.data.last_year import GROUP_LAST_YEAR_FEATURES, LAST_YEAR_FEATURES
from inventory_scale.data.listing import OFFSET
from inventory_scale.data.windows import PackedShard, inference_batch
from inventory_scale.distributed.sharding import shard_seed
from inventory_scale.forecast import (
    ShardData,
    module_events,
    module_uses_group,
    module_uses_last_year,
    module_uses_text,
    sample_chunked,
    shard_frame,
)
from inventory_scale.models.ensemble import Forecaster

log = logging.getLogger(__name__)

START = "_start"


def load_cold(root: str, cold: pl.DataFrame, opts: io.StorageOptions | None = None) -> ShardData:
    """The tables a cold-start forecast reads; ``sales`` is empty (no history is read)."""
    skus = cold[S.SKU_ID].unique().to_list()
    whs = cold[S.WAREHOUSE_ID].unique().to_list()
    products = io.read_table(root, S.PRODUCTS, opts, predicate=pl.col(S.SKU_ID).is_in(skus))
    warehouses = io.read_table(root, S.WAREHOUSES, opts, predicate=pl.col(S.WAREHOUSE_ID).is_in(whs))
    regions = warehouses[S.REGION].unique().to_list()
    calendar = io.read_table(root, S.CALENDAR, opts, predicate=pl.col(S.REGION).is_in(regions))
    keys = cold.select(S.SKU_ID, S.WAREHOUSE_ID)
    inventory = io.read_table(root, S.INVENTORY, opts, predicate=pl.col(S.SKU_ID).is_in(skus)).join(
        keys, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi"
    )
    sales = pl.DataFrame(schema=S.SALES.schema)
    return ShardData(keys, sales, products, warehouses, calendar, inventory)


def pack_launch(
    cold: pl.DataFrame,
    data: ShardData,
    cfg: Config,
    cutoff: dt.date,
    vocab: dict[str, list[str]],
    text: bool,
    last_year: bool = False,
    events: Sequence[str] = (),
    last_year_group: bool = False,
) -> PackedShard:
    """H periods per cold series from its (aligned) launch: covariates only, no observed target.

    ``last_year`` (the module reads those covariates): all zero, a new SKU has no last year
    (``last_year_group``: its group's columns are zero too, read as "no reference").
    ``events``: the named events whose distances the module reads.
    """
    freq, horizon = cfg.data.freq, cfg.data.horizon
    start = [offset_date(cutoff, freq, int(k)) for k in cold[OFFSET].to_list()]
    prices = data.products.select(S.SKU_ID, S.UNIT_PRICE).unique(S.SKU_ID, keep="first")
    seed_rows = (
        cold.select(S.SKU_ID, S.WAREHOUSE_ID)
        .with_columns(pl.Series(S.DATE, start, dtype=pl.Date))
        .join(prices, on=S.SKU_ID, how="left")
        .select(
            S.SKU_ID,
            S.WAREHOUSE_ID,
            S.DATE,
            pl.lit(0.0, pl.Float32).alias(S.UNITS_SOLD),
            pl.col(S.UNIT_PRICE).cast(pl.Float32).alias(S.PRICE),
            pl.lit(False).alias(S.ON_PROMOTION),
            pl.lit(True).alias(S.IN_STOCK),
        )
    )
    end = offset_date(max(start), freq, horizon - 1)
    frame = build_features(
        seed_rows, data.products, data.warehouses, data.calendar, freq=freq, end=end, events=events
    )
    keys = list(S.SERIES_KEY)
    frame = frame.filter(pl.int_range(pl.len()).over(keys) < horizon)
    series = frame.group_by(keys, maintain_order=True).agg(
        pl.col(S.CATEGORY).first(), pl.col(S.SUBCATEGORY).first()
    )
    n = series.height
    names = (*time_features(freq), *named_event_features(events))
    packed = PackedShard(
        series=series,
        values=np.zeros(n * horizon, dtype=np.float32),
        observed=np.zeros(n * horizon, dtype=np.float32),
        time_feat=np.ascontiguousarray(frame.select(names).to_numpy(), dtype=np.float32),
        indptr=(np.arange(n + 1) * horizon).astype(np.int64),
        start=frame.group_by(keys, maintain_order=True).agg(pl.col(S.DATE).first())[S.DATE].to_numpy(),
        cutoff_index=np.zeros(n, dtype=np.int64),
        static_cat=encode_static(series, vocab),
        vocab=vocab,
        feature_names=(*names, *LAST_YEAR_FEATURES, *(GROUP_LAST_YEAR_FEATURES if last_year_group else ()))
        if last_year
        else names,
        freq=freq,
        cutoff=cutoff,
        horizon=horizon,
        last_year=np.zeros((n * horizon, 4 if last_year_group else 2), dtype=np.float32)
        if last_year
        else None,
    )
    if text:
        from inventory_scale.text.features import static_real

        packed.static_real = static_real(series, data.products, cfg)
    return packed


def launch_paths(
    module: Forecaster, cold: pl.DataFrame, data: ShardData, cfg: Config, cutoff: dt.date, shard_id: int
) -> tuple[PackedShard, np.ndarray]:
    """Paths ``[N, S, H]`` of the first H periods after each launch (launch-relative), and the pack."""
    import torch

    vocab = (module.scaler_state or {})["vocab"]
    uses = module_uses_text(module), module_uses_last_year(module)
    packed = pack_launch(
        cold,
        data,
        cfg,
        cutoff,
        vocab,
        *uses,
        events=module_events(module),
        last_year_group=module_uses_group(module),
    )
    batch = {k: v.to(module.device) for k, v in inference_batch(packed, cfg.data.context_length).items()}
    gen = torch.Generator(device=module.device).manual_seed(shard_seed(cfg.seed, shard_id) + 7919)
    with torch.no_grad():
        paths = sample_chunked(module, batch, cfg.forecast.num_paths, cfg.forecast.sample_rows, gen)
    return packed, paths


def forecast_cold(
    module: Forecaster,
    cold: pl.DataFrame,
    data: ShardData,
    cfg: Config,
    *,
    cutoff: dt.date,
    shard_id: int,
) -> tuple[pl.DataFrame, np.ndarray]:
    """Forecast frame and horizon paths ``[N, S, H]`` (0 before each launch) of the cold series."""
    cold = cold.sort(S.SKU_ID, S.WAREHOUSE_ID)
    packed, rel = launch_paths(module, cold, data, cfg, cutoff, shard_id)
    offset = packed.series.join(cold, on=list(S.SERIES_KEY), how="left", maintain_order="left")[OFFSET]
    paths = np.zeros_like(rel)
    horizon = rel.shape[2]
    for i, k in enumerate(offset.to_numpy()):
        paths[i, :, k - 1 :] = rel[i, :, : horizon - k + 1]
    log.info("cold start: %d series launched after %s (shard %d's model)", packed.n_series, cutoff, shard_id)
    return shard_frame(paths, packed, data, cfg, cutoff), paths
