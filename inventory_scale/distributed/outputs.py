"""Per-shard outputs: where each shard writes, how a finished shard is recognised, plan checks.

Every shard task writes its own files, each atomically (temp + rename locally, one PUT on S3),
under names that depend only on the shard id, so a retried or re-run task overwrites instead of
appending, and rows are never duplicated:

- training: ``<run.dir>/models/shard=NNNNN/model.ckpt`` (written last: it marks the shard done)
  and ``info.json`` beside it;
- forecasts: ``<run.dir>/forecasts/warehouse_id=W/part-shardNNNNN.parquet``, one part per
  warehouse the shard covers (``paths/`` likewise), then the shard marker
  ``<run.dir>/forecasts/_shards/shard=NNNNN.json`` (files, rows, checkpoint it came from).

Readers (``io.scan_table``) skip ``_``- and ``.``-prefixed entries, so markers, plans and temp
files never show up as rows. ``_plan.json`` in an output folder records the hash of everything
the outputs depend on (config, cutoff, shard assignment, input fingerprint): when it changes, the
folder is cleared and every shard is redone, so stale shards of another config are never reused.
"""

from __future__ import annotations

import io as _bytes_io
import logging
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from inventory_scale import schema as S
from inventory_scale.data import io
from inventory_scale.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)

MODELS = "models"
MARKERS = "_shards"
PLAN = "_plan.json"


def checkpoint_uri(run_dir: str, shard_id: int) -> str:
    """The shard's model checkpoint (its presence marks a trained shard)."""
    return io.join(run_dir, MODELS, f"shard={shard_id:05d}", "model.ckpt")


def member_uri(run_dir: str, shard_id: int, member: int) -> str:
    """Checkpoint of one ensemble member of a shard: :func:`checkpoint_uri` for member 0."""
    if member == 0:
        return checkpoint_uri(run_dir, shard_id)
    return io.join(run_dir, MODELS, f"shard={shard_id:05d}", f"member-{member:02d}.ckpt")


def member_uris(run_dir: str, shard_id: int, members: int) -> list[str]:
    """Checkpoints of a shard's ``members`` ensemble members, in member order."""
    return [member_uri(run_dir, shard_id, k) for k in range(members)]


def train_info_uri(run_dir: str, shard_id: int, member: int = 0) -> str:
    """Training metrics of a shard's member (series, windows, seconds), written before its checkpoint."""
    name = "info.json" if member == 0 else f"info-member-{member:02d}.json"
    return io.join(run_dir, MODELS, f"shard={shard_id:05d}", name)


def part_name(shard_id: int) -> str:
    """File name of a shard's part inside each partition folder."""
    return f"part-shard{shard_id:05d}.parquet"


def marker_uri(out_dir: str, shard_id: int) -> str:
    """The marker a forecast-like shard writes last."""
    return io.join(out_dir, MARKERS, f"shard={shard_id:05d}.json")


def write_shard_parts(
    frame: pl.DataFrame, root: str, spec: S.TableSpec, shard_id: int, opts: io.StorageOptions | None
) -> list[dict[str, Any]]:
    """Write one shard's rows of a table: one Parquet file per partition value, each atomic.

    Returns:
        ``[{"uri", "rows"}]`` per file written.
    """
    frame = S.conform(frame, spec)
    base = io.join(root, spec.name)
    col = spec.partition_by
    groups = (
        [("", frame)]
        if col is None
        else [
            (f"{col}={key[0]}", sub.drop(col))
            for key, sub in frame.partition_by(col, as_dict=True, maintain_order=True).items()
        ]
    )
    written = []
    for folder, sub in groups:
        buf = _bytes_io.BytesIO()
        pq.write_table(sub.to_arrow(), buf, compression="zstd")
        uri = io.join(base, folder, part_name(shard_id)) if folder else io.join(base, part_name(shard_id))
        io.write_bytes(uri, buf.getvalue(), opts)
        written.append({"uri": uri, "rows": sub.height})
    return written


def finished_markers(out_dir: str, opts: io.StorageOptions | None) -> dict[int, dict[str, Any]]:
    """Shard id -> marker of every finished shard under ``out_dir``."""
    base = io.join(out_dir, MARKERS)
    out: dict[int, dict[str, Any]] = {}
    prefix = "s3://" if io.is_remote(base) else ""
    fs_infos = io.list_files(base, opts, ".json") if io.exists(base, opts) else []
    for f in fs_infos:
        name = f.path.rsplit("/", 1)[-1]
        if name.startswith("shard="):
            out[int(name[len("shard=") : -len(".json")])] = io.read_json(prefix + f.path, opts)
    return out


def finished_members(run_dir: str, opts: io.StorageOptions | None) -> dict[tuple[int, int], str]:
    """(shard id, member) -> fingerprint (``size:mtime_ns``) of every checkpoint under ``models/``."""
    out: dict[tuple[int, int], str] = {}
    for f in io.list_files(io.join(run_dir, MODELS), opts, ".ckpt"):
        folder, name = f.path.rsplit("/", 2)[-2:]
        if not folder.startswith("shard="):
            continue
        if name == "model.ckpt":
            member = 0
        elif name.startswith("member-") and name[len("member-") : -len(".ckpt")].isdigit():
            member = int(name[len("member-") : -len(".ckpt")])
        else:
            continue
        out[(int(folder[len("shard=") :]), member)] = f"{f.size}:{f.mtime_ns}"
    return out


def finished_checkpoints(run_dir: str, opts: io.StorageOptions | None, members: int = 1) -> dict[int, str]:
    """Shard id -> fingerprint of every shard whose ``members`` checkpoints are all there.

    One member: the ``size:mtime_ns`` of ``model.ckpt``; several: the members' joined by ``|``, so
    retraining any member changes it.
    """
    found = finished_members(run_dir, opts)
    shards = {shard for shard, _ in found}
    return {
        shard: "|".join(found[(shard, k)] for k in range(members))
        for shard in sorted(shards)
        if all((shard, k) in found for k in range(members))
    }


def reset_if_plan_changed(out_dir: str, plan: str, opts: io.StorageOptions | None, what: str) -> bool:
    """Clear ``out_dir`` when its ``_plan.json`` differs from ``plan`` (or is absent); write ``plan``.

    Returns:
        True when the folder was cleared (everything must be redone).
    """
    uri = io.join(out_dir, PLAN)
    old = io.read_json(uri, opts).get("hash") if io.exists(uri, opts) else None
    if old == plan:
        return False
    if io.exists(out_dir, opts):
        if old is not None:
            log.warning(
                "%s: %s was made from another config or input (plan %s != %s): redoing it",
                what,
                out_dir,
                old,
                plan,
            )
        io.remove(out_dir, opts)
    io.write_json(uri, {"hash": plan}, opts)
    return True


def invalidate_manifest(out_dir: str, opts: io.StorageOptions | None) -> None:
    """Remove a stage manifest before redoing shards: a folder without one is unfinished."""
    io.remove(io.join(out_dir, MANIFEST_NAME), opts)
