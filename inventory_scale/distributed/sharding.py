"""Series -> shards: stable, balanced by history length, optionally grouped.

A shard is the unit of work of one task: one global LSTM is trained per shard (DESIGN.md section
4). Assignment is deterministic for a given set of series: series are ordered by history length
(longest first, ties by a stable hash of the series key) and dealt to shards in snake order
(0, 1, .., K-1, K-1, .., 0), which balances both the series count and the total history length
per shard. With ``group_by`` (e.g. ``category``), each group gets its own shards, so a model only
sees series of one group. ``shard_size="all"`` gives one shard; ``"1"`` one series per shard.

:func:`prepare_sales` writes the sales history up to the cutoff once, bucketed by shard
(``<run.dir>/prepared/sales/shard=N/``), so each task reads exactly its slice instead of
scanning the raw table with pushdown (``ray.sales_layout=bucketed``, the default; ``raw`` skips
it). It is skipped when the prepared copy matches the sales input, cutoff and shard assignment.

No Ray here: this module is pure and imported by the runner and by in-process stages alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import time
from typing import Any

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.data import io
from inventory_scale.errors import ConfigError, SchemaError
from inventory_scale.manifest import fingerprint

log = logging.getLogger(__name__)

PREPARED = "prepared"
PREPARED_SALES = S.TableSpec(
    name=S.SALES.name,
    schema=pl.Schema([*S.SALES.schema.items(), (S.SHARD, pl.Int32())]),
    key=S.SALES.key,
    partition_by=S.SHARD,
)
"""Sales bucketed by shard (``<run.dir>/prepared/sales/shard=N/part-*.parquet``)."""


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


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from ``parts`` (joined by ``:`` and hashed)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def shard_seed(seed: int, shard_id: int) -> int:
    """Per-shard seed derived from the global seed and the shard id (stable, 31-bit)."""
    return derive_seed(seed, shard_id)


def shards_digest(shards: pl.DataFrame) -> str:
    """SHA-256 (16 hex digits) of a shard assignment: which series sit in which shard."""
    keys = shards.select(S.SKU_ID, S.WAREHOUSE_ID, S.SHARD).sort(S.SKU_ID, S.WAREHOUSE_ID)
    return hashlib.sha256(keys.write_csv().encode()).hexdigest()[:16]


def plan_hash(**parts: Any) -> str:
    """Stable hash of what an output depends on (configs as dicts, digests, dates)."""
    import json

    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepared_root(run_dir: str) -> str:
    """Where :func:`prepare_sales` writes (``<run.dir>/prepared``)."""
    return io.join(run_dir, PREPARED)


def shard_slice_uri(run_dir: str, shard_id: int) -> str:
    """Folder of one shard's prepared sales."""
    return io.join(prepared_root(run_dir), PREPARED_SALES.name, f"{S.SHARD}={shard_id}")


def prepare_sales(
    root: str, shards: pl.DataFrame, cutoff: dt.date, run_dir: str, opts: io.StorageOptions | None = None
) -> dict[str, Any]:
    """Write the sales up to ``cutoff`` bucketed by shard, once; skip when already up to date.

    Reads the raw table one ``warehouse_id`` partition at a time (memory: one partition), joins
    the shard of each series and writes one part per (partition, shard), staged and committed in
    one move (:class:`~inventory_scale.data.io.TableWriter`); a ``_plan.json`` beside it records
    the sales fingerprint, cutoff and shard digest it was made from.

    Returns:
        ``{"rows", "seconds", "reused"}``.
    """
    out = prepared_root(run_dir)
    plan_uri = io.join(out, "_plan.json")
    plan = plan_hash(
        sales=fingerprint(io.join(root, S.SALES.name), opts)["sha256"],
        cutoff=cutoff,
        shards=shards_digest(shards),
    )
    if io.exists(plan_uri, opts) and io.read_json(plan_uri, opts).get("hash") == plan:
        log.info("prepare: %s is up to date, reused", out)
        return {"rows": None, "seconds": 0.0, "reused": True}
    t0 = time.perf_counter()
    keys = shards.select(S.SKU_ID, S.WAREHOUSE_ID, S.SHARD)
    values: list[str | None] = [*io.iter_partition_values(root, S.SALES, opts)] or [None]
    with io.TableWriter(out, PREPARED_SALES, opts) as writer:
        for value in values:
            lf = io.scan_table(root, S.SALES, opts).filter(pl.col(S.DATE) <= cutoff)
            if value is not None:
                lf = lf.filter(pl.col(S.WAREHOUSE_ID) == value)
            part = lf.collect().join(keys, on=[S.SKU_ID, S.WAREHOUSE_ID], how="inner")
            if not part.is_empty():
                writer.write(part.sort(S.SHARD, S.SKU_ID, S.WAREHOUSE_ID, S.DATE))
    io.write_json(plan_uri, {"hash": plan, "cutoff": cutoff.isoformat()}, opts)
    seconds = time.perf_counter() - t0
    log.info(
        "prepare: %d sales rows bucketed into %d shard(s) in %.1fs",
        writer.rows_written,
        keys[S.SHARD].n_unique(),
        seconds,
    )
    return {"rows": writer.rows_written, "seconds": round(seconds, 2), "reused": False}


def read_sales_slice(
    run_dir: str, shard_id: int, series: pl.DataFrame, opts: io.StorageOptions | None = None
) -> pl.DataFrame:
    """One shard's prepared sales (SALES schema), restricted to ``series``.

    Raises:
        SchemaError: the slice is missing or unreadable (names the folder).
    """
    uri = shard_slice_uri(run_dir, shard_id)
    files = [("s3://" if io.is_remote(uri) else "") + f.path for f in io.list_files(uri, opts, ".parquet")]
    if not files:
        raise SchemaError(f"{uri}: no prepared sales for shard {shard_id}; rerun with ray.sales_layout=raw")
    try:
        sales = pl.scan_parquet(files, storage_options=io.polars_storage_options(uri, opts)).collect()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise SchemaError(f"{uri}: cannot read shard {shard_id}'s sales slice ({e})") from e
    missing = [c for c in S.SALES.columns if c not in sales.columns]
    if missing:
        raise SchemaError(f"{uri}: sales slice of shard {shard_id} lacks column(s) {missing}")
    return S.conform(sales, S.SALES).join(
        series.select(S.SKU_ID, S.WAREHOUSE_ID), on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi"
    )


def assign_cold(cold: pl.DataFrame, shard_ids: list[int]) -> pl.DataFrame:
    """Add ``shard``: each cold series goes to the model of a trained shard, by stable hash of its key."""
    keys = (cold[S.SKU_ID] + "|" + cold[S.WAREHOUSE_ID]).to_list()
    ids = np.array(sorted(shard_ids), dtype=np.int64)
    pick = (stable_hash(pl.Series(keys)) % np.uint64(max(len(ids), 1))).astype(np.int64)
    return cold.with_columns(pl.Series(S.SHARD, ids[pick] if len(ids) else pick, dtype=pl.Int64))
