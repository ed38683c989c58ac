"""Parquet tables under URIs (local path or ``s3://``), read lazily and written atomically.

Layout: a table is a folder ``<root>/<table>/`` of Parquet files, hive-partitioned by the table's
``partition_by`` column when it has one (``sales/warehouse_id=W001/part-00000.parquet``).

Reading goes through Polars lazy scans, so filters on the partition column prune whole folders and
filters or column selections on other columns are pushed into the Parquet reader.

Writing goes through :class:`TableWriter`: parts are written into a staging folder beside the table
and moved into place only when every part is written, so readers never see a half-written table or
partition; a failure leaves the previous version untouched. On S3 each object is one PUT (atomic
per object) and the staged objects are moved after the last one is written.

Credentials and endpoints come from :class:`StorageOptions` (config ``storage.*`` or the usual
``AWS_*`` environment variables) and are never written to logs or manifests.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from inventory_scale import schema as S
from inventory_scale.errors import SchemaError, StorageError

log = logging.getLogger(__name__)

S3_SCHEME = "s3://"


@dataclass(frozen=True)
class StorageOptions:
    """Object-storage settings. Empty fields fall back to the ``AWS_*`` environment variables."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None

    def resolved(self) -> StorageOptions:
        """Fill empty fields from the environment."""
        env = os.environ
        return StorageOptions(
            endpoint_url=self.endpoint_url or env.get("AWS_ENDPOINT_URL") or None,
            access_key_id=self.access_key_id or env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=self.secret_access_key or env.get("AWS_SECRET_ACCESS_KEY") or None,
            region=self.region or env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
        )

    def __repr__(self) -> str:  # never leak credentials through logs
        return f"StorageOptions(endpoint_url={self.endpoint_url!r}, credentials=<hidden>)"


def is_remote(uri: str) -> bool:
    """True for ``s3://`` URIs."""
    return uri.startswith(S3_SCHEME)


def join(uri: str, *parts: str) -> str:
    """Join path segments onto a URI with ``/`` (works for local paths and ``s3://``)."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def _filesystem(uri: str, opts: StorageOptions | None) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it for ``uri``."""
    if not is_remote(uri):
        return pafs.LocalFileSystem(), str(Path(uri).absolute())
    o = (opts or StorageOptions()).resolved()
    kwargs: dict[str, Any] = {}
    if o.endpoint_url:
        scheme, _, host = o.endpoint_url.partition("://")
        kwargs.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    if o.access_key_id:
        kwargs.update(access_key=o.access_key_id, secret_key=o.secret_access_key)
    kwargs["region"] = o.region or "us-east-1"
    return pafs.S3FileSystem(**kwargs), uri[len(S3_SCHEME) :]


def polars_storage_options(uri: str, opts: StorageOptions | None) -> dict[str, str] | None:
    """Storage options in the form Polars' object-store reader takes (None for local paths)."""
    if not is_remote(uri):
        return None
    o = (opts or StorageOptions()).resolved()
    out = {"aws_region": o.region or "us-east-1"}
    if o.endpoint_url:
        out["aws_endpoint_url"] = o.endpoint_url
        if o.endpoint_url.startswith("http://"):
            out["aws_allow_http"] = "true"
    if o.access_key_id:
        out["aws_access_key_id"] = o.access_key_id
        out["aws_secret_access_key"] = o.secret_access_key or ""
    return out


def exists(uri: str, opts: StorageOptions | None = None) -> bool:
    """True when ``uri`` names an existing file or folder."""
    fs, path = _filesystem(uri, opts)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def list_files(uri: str, opts: StorageOptions | None = None, suffix: str = "") -> list[pafs.FileInfo]:
    """Files under ``uri`` (recursive), sorted by path; hidden and staging entries skipped."""
    fs, path = _filesystem(uri, opts)
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    files = [
        i
        for i in infos
        if i.type == pafs.FileType.File
        and i.path.endswith(suffix)
        and not any(p.startswith((".", "_")) for p in i.path[len(path) :].split("/"))
    ]
    return sorted(files, key=lambda i: i.path)


def write_bytes(uri: str, data: bytes, opts: StorageOptions | None = None) -> None:
    """Write one file atomically (temp + rename locally, a single PUT on S3)."""
    fs, path = _filesystem(uri, opts)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = path if is_remote(uri) else f"{parent}/.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    if tmp != path:
        fs.move(tmp, path)


def read_bytes(uri: str, opts: StorageOptions | None = None) -> bytes:
    """Read one whole file; :class:`StorageError` names the URI when it is missing."""
    fs, path = _filesystem(uri, opts)
    try:
        with fs.open_input_stream(path) as f:
            return bytes(f.read())
    except (FileNotFoundError, OSError) as e:
        raise StorageError(f"cannot read {uri}: {e}") from e


def write_json(uri: str, obj: Any, opts: StorageOptions | None = None) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_bytes(uri, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode(), opts)


def read_json(uri: str, opts: StorageOptions | None = None) -> Any:
    """Read a JSON file written by :func:`write_json`."""
    return json.loads(read_bytes(uri, opts))


def remove(uri: str, opts: StorageOptions | None = None) -> None:
    """Delete a file or folder tree if it exists."""
    fs, path = _filesystem(uri, opts)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type == pafs.FileType.File:
        fs.delete_file(path)


class TableWriter:
    """Writes one table as Parquet parts, staged, then committed in one move.

    Usage::

        with TableWriter(root, schema.SALES) as w:
            for chunk in chunks:
                w.write(chunk)          # hive-partitioned by the spec's partition column

    A part is one Parquet file per (call, partition value). On a clean exit the staging folder
    replaces ``<root>/<table>``; on an exception the staging folder is deleted and the previous
    table, if any, stays as it was.
    """

    def __init__(
        self,
        root: str,
        spec: S.TableSpec,
        opts: StorageOptions | None = None,
        *,
        compression: str = "zstd",
        row_group_size: int = 512 * 1024,
    ) -> None:
        self.uri = join(root, spec.name)
        self.spec = spec
        self.opts = opts
        self.compression = compression
        self.row_group_size = row_group_size
        self._fs, self._final = _filesystem(self.uri, opts)
        self._staging = f"{self._final.rsplit('/', 1)[0]}/.staging-{spec.name}-{uuid.uuid4().hex[:12]}"
        self._n_parts = 0
        self.rows_written = 0

    def __enter__(self) -> TableWriter:
        self._fs.create_dir(self._staging, recursive=True)
        return self

    def write(self, frame: pl.DataFrame) -> None:
        """Write ``frame`` (cast to the spec's schema) as one part per partition value."""
        frame = S.conform(frame, self.spec)
        part = f"part-{self._n_parts:05d}.parquet"
        self._n_parts += 1
        col = self.spec.partition_by
        groups: Sequence[tuple[str, pl.DataFrame]]
        if col is None:
            groups = [("", frame)]
        else:
            groups = [
                (f"{col}={key[0]}/", sub.drop(col))
                for key, sub in frame.partition_by(col, as_dict=True, maintain_order=True).items()
            ]
        for prefix, sub in groups:
            path = f"{self._staging}/{prefix}{part}"
            self._fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            with self._fs.open_output_stream(path) as out:
                pq.write_table(
                    sub.to_arrow(),
                    out,
                    compression=self.compression,
                    row_group_size=self.row_group_size,
                )
        self.rows_written += frame.height

    def _commit(self) -> None:
        if self._n_parts == 0:  # an empty table still gets one (empty) file with the schema
            self.write(S.empty_frame(self.spec))
        fs, final = self._fs, self._final
        old = f"{final.rsplit('/', 1)[0]}/.old-{self.spec.name}-{uuid.uuid4().hex[:12]}"
        had_old = fs.get_file_info(final).type != pafs.FileType.NotFound
        if isinstance(fs, pafs.LocalFileSystem):
            if had_old:
                os.replace(final, old)
            os.replace(self._staging, final)
            if had_old:
                fs.delete_dir(old)
            return
        if had_old:  # object stores have no folder rename: drop the old objects, move the new
            fs.delete_dir(final)
        for info in fs.get_file_info(pafs.FileSelector(self._staging, recursive=True)):
            if info.type == pafs.FileType.File:
                fs.move(info.path, final + info.path[len(self._staging) :])
        fs.delete_dir(self._staging)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._commit()
            log.info("wrote %s: %d rows in %d part(s)", self.uri, self.rows_written, self._n_parts)
        else:
            with contextlib.suppress(OSError):
                self._fs.delete_dir(self._staging)


def write_table(frame: pl.DataFrame, root: str, spec: S.TableSpec, opts: StorageOptions | None = None) -> str:
    """Write a whole table in one part, atomically; returns the table URI."""
    with TableWriter(root, spec, opts) as w:
        w.write(frame)
    return w.uri


def table_files(root: str, spec: S.TableSpec, opts: StorageOptions | None = None) -> list[str]:
    """URIs of a table's Parquet files (empty when the table is absent)."""
    base = join(root, spec.name)
    prefix = S3_SCHEME if is_remote(base) else ""
    return [prefix + i.path for i in list_files(base, opts, suffix=".parquet")]


def scan_table(
    root: str,
    spec: S.TableSpec,
    opts: StorageOptions | None = None,
    *,
    conform: bool = True,
) -> pl.LazyFrame:
    """Lazy scan of a table with hive partitioning; filters and selections push down.

    Args:
        root: dataset root URI.
        spec: the table.
        opts: storage options for ``s3://`` roots.
        conform: select the spec's columns in canonical order (set False to see the raw columns,
            as the validator does).

    Raises:
        SchemaError: the table folder holds no Parquet file.
    """
    files = table_files(root, spec, opts)
    if not files:
        raise SchemaError(f"{join(root, spec.name)}: table '{spec.name}' has no Parquet files")
    hive_schema = (
        pl.Schema({spec.partition_by: spec.schema[spec.partition_by]}) if spec.partition_by else None
    )
    lf = pl.scan_parquet(
        files,
        hive_partitioning=spec.partition_by is not None,
        hive_schema=hive_schema,
        storage_options=polars_storage_options(root, opts),
    )
    if conform:
        lf = lf.select(spec.columns)
    return lf


def read_table(
    root: str,
    spec: S.TableSpec,
    opts: StorageOptions | None = None,
    *,
    columns: Sequence[str] | None = None,
    predicate: pl.Expr | None = None,
) -> pl.DataFrame:
    """Read a table eagerly, with optional column selection and row predicate pushed down."""
    lf = scan_table(root, spec, opts)
    if predicate is not None:
        lf = lf.filter(predicate)
    if columns is not None:
        lf = lf.select(columns)
    return lf.collect()


def parquet_schema(uri: str, opts: StorageOptions | None = None) -> dict[str, str]:
    """Column -> Arrow type name of one Parquet file, read from its footer only.

    Raises:
        SchemaError: the file is not Parquet or is corrupt (names the file).
    """
    fs, path = _filesystem(uri, opts)
    try:
        with fs.open_input_file(path) as f:
            sch = pq.read_schema(f)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError subclasses for bad files
        raise SchemaError(f"{uri}: not a readable Parquet file ({e})") from e
    return {f.name: str(f.type) for f in sch}


def iter_partition_values(root: str, spec: S.TableSpec, opts: StorageOptions | None = None) -> Iterator[str]:
    """Distinct values of the partition column, read from folder names (no data read)."""
    if spec.partition_by is None:
        return iter(())
    marker = f"{spec.partition_by}="
    seen: dict[str, None] = {}
    for f in table_files(root, spec, opts):
        for seg in f.split("/"):
            if seg.startswith(marker):
                seen.setdefault(seg[len(marker) :], None)
    return iter(seen)
