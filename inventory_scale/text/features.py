"""Static real covariates from product text: the MiniLM embedding and the log list price.

``static_real [N, 385]`` per series = the 384-d embedding of its product text (title + description)
and ``log1p(unit_price) / log1p(1000)``. The LSTM learns a linear projection of it
(``model.text_dim`` wide) and feeds it at every step beside the category / warehouse / SKU
embeddings (``models/lstm.py``). A SKU missing from the products table gets zeros (logged).
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.text.embed import EMBED_DIM, EMBEDDING, embed_products

log = logging.getLogger(__name__)

STATIC_REAL_DIM = EMBED_DIM + 1
PRICE_SCALE = math.log1p(1000.0)


def text_options(cfg: Config) -> io.StorageOptions:
    """Storage options for ``text.cache`` (the run's ``storage`` group)."""
    return io.StorageOptions(**dataclasses.asdict(cfg.storage))


def static_real(series: pl.DataFrame, products: pl.DataFrame, cfg: Config) -> np.ndarray:
    """``[N, 385]`` float32 text covariates of ``series`` (rows with ``sku_id``), in its order.

    Embeds through the cache at ``text.cache``: only products whose text is not cached are encoded.
    """
    skus = series.select(S.SKU_ID).unique()
    prods = products.join(skus, on=S.SKU_ID, how="semi").unique(S.SKU_ID, keep="first")
    emb, stats = embed_products(
        prods,
        cfg.text.cache,
        batch_size=cfg.text.batch_size,
        device=cfg.text.device,
        opts=text_options(cfg),
    )
    table = emb.with_columns(
        (pl.Series(prods[S.UNIT_PRICE]).cast(pl.Float64).clip(0.0).log1p() / PRICE_SCALE)
        .cast(pl.Float32)
        .alias("_price")
    )
    joined = series.select(S.SKU_ID).join(table, on=S.SKU_ID, how="left", maintain_order="left")
    missing = joined[EMBEDDING].is_null()
    if missing.any():
        log.warning(
            "text features: %d series have no products row (zeros used), e.g. %s",
            int(missing.sum()),
            joined.filter(missing)[S.SKU_ID].head(5).to_list(),
        )
    vec = np.zeros((series.height, STATIC_REAL_DIM), dtype=np.float32)
    ok = ~missing.to_numpy()
    if ok.any():
        vec[ok, :EMBED_DIM] = np.asarray(joined.filter(~missing)[EMBEDDING].to_numpy(), dtype=np.float32)
        vec[ok, EMBED_DIM] = joined.filter(~missing)["_price"].fill_null(0.0).to_numpy()
    log.debug("text features for %d series (%s)", series.height, stats)
    return vec


def warm_cache(root: str, cfg: Config) -> dict[str, object]:
    """Embed every product of the dataset once (driver side), so shard tasks only read the cache."""
    opts = text_options(cfg)
    products = io.read_table(root, S.PRODUCTS, opts, columns=[S.SKU_ID, S.TITLE, S.DESCRIPTION])
    _, stats = embed_products(
        products, cfg.text.cache, batch_size=cfg.text.batch_size, device=cfg.text.device, opts=opts
    )
    return stats
