"""Series -> shards: stable, balanced by history length, optionally grouped.

A shard is the unit of work of one task: one global LSTM is trained per shard (DESIGN.md section
4). Assignment is deterministic for a given set of series: series are ordered by history length
(longest first, ties by a stable hash of the series key) and dealt to shards in snake order
(0, 1, .., K-1, K-1, .., 0), which balances both the series count and the total history length
per shard. With ``group_by`` (e.g. ``category``), each group gets its own shards, so a model only
sees series of one group. ``shard_size="all"`` gives one shard; ``"1"`` one series per shard.

No Ray here: this module is pure and imported by the runner and by in-process stages alike.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.errors import ConfigError


def stable_hash(keys: pl.Series) -> np.ndarray:
    """64-bit hash of each string key, identical across processes, machines and library versions."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little") for k in keys),
        dtype=np.uint64,
        count=len(keys),
    )


def _snake(n: int, k: int) -> np.ndarray:
    """Shard of the i-th item in snake order over ``k`` shards: 0..k-1, k-1..0, ..."""
    i = np.arange(n)
    lap, pos = np.divmod(i, k)
    return np.where(lap % 2 == 0, pos, k - 1 - pos).astype(np.int32)


def n_shards(n_series: int, shard_size: str) -> int:
    """Number of shards for ``n_series`` series at ``shard_size`` ("all" or a positive integer)."""
    if shard_size == "all":
        return 1
    if not shard_size.isdigit() or int(shard_size) <= 0:
        raise ConfigError(
            f"config key 'ray.shard_size' must be a positive integer or 'all', got {shard_size!r}"
        )
    return max(1, math.ceil(n_series / int(shard_size)))


def assign_shards(series: pl.DataFrame, shard_size: str, group_by: str | None = None) -> pl.DataFrame:
    """Assign every series to a shard.

    Args:
        series: one row per series with ``sku_id, warehouse_id, n_periods`` and the ``group_by``
            column when given.
        shard_size: target series per shard, or ``"all"``.
        group_by: optional column whose groups never share a shard.

    Returns:
        ``series`` with an ``shard`` Int32 column, sorted by (shard, sku_id, warehouse_id). Shard
        ids are dense from 0.
    """
    if group_by is not None and group_by not in series.columns:
        raise ConfigError(f"config key 'ray.group_by': column {group_by!r} not found; have {series.columns}")
    keys = pl.concat_str([pl.col(S.SKU_ID), pl.col(S.WAREHOUSE_ID)], separator="/")
    frame = series.with_columns(_hash=pl.Series(stable_hash(series.select(keys).to_series())))
    groups = [frame] if group_by is None else frame.partition_by(group_by, maintain_order=False)
    groups = sorted(groups, key=lambda g: str(g[group_by][0]) if group_by else "")
    out: list[pl.DataFrame] = []
    offset = 0
    for g in groups:
        k = n_shards(g.height, shard_size)
        g = g.sort([S.N_PERIODS, "_hash"], descending=[True, False])
        out.append(g.with_columns(pl.Series(S.SHARD, _snake(g.height, k) + offset)))
        offset += k
    return pl.concat(out).drop("_hash").sort([S.SHARD, S.SKU_ID, S.WAREHOUSE_ID])


def shard_seed(seed: int, shard_id: int) -> int:
    """Per-shard seed derived from the global seed and the shard id (stable, 31-bit)."""
    digest = hashlib.blake2b(f"{seed}:{shard_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF
