"""Import the real retail data sets (``../shared/data``) into the data contract.

``import_dataset(cfg, root)`` reads source ``data.name`` from ``data.source_dir``, verifies the
files against ``SHA256SUMS`` (``data.verify_checksums``), maps them into the contract with the
source's reader (:mod:`inventory_scale.data.sources`, whose module docstrings state every
mapping rule) and writes ``sales``, ``products``, ``warehouses``, ``inventory``, ``inbound``
(empty: no source records orders in transit) and ``calendar`` under ``root``::

    from inventory_scale.config import DataConfig
    from inventory_scale.data.datasets import import_dataset
    rows = import_dataset(DataConfig(name="m5", freq="1d"), "datasets/m5")

Sources and frequencies: ``m5`` (1d), ``walmart_weekly`` (1w), ``store_item`` (1d),
``carparts`` (1mo); ``data.freq`` must equal the source's. ``data.max_series`` keeps the first N
series in ``(sku_id, warehouse_id)`` order. The data is not shipped with the repository: a
missing folder raises :class:`StorageError` saying where it was expected.

Fill rules for what no source records (every number from :class:`DataConfig`; "daily demand" of
a series is its mean ``units_sold`` per period over its kept rows divided by the period's days:
1, 7 or 365.25 / 12):

- products: ``unit_price`` from the source (M5 median price, else 1.0); ``unit_cost`` =
  ``unit_price x (1 - data.margin)``; ``salvage_value`` = ``unit_cost x data.salvage_fraction``;
  ``case_pack`` / ``moq`` / ``volume_m3`` = ``data.case_pack`` / ``data.moq`` /
  ``data.volume_m3``; ``launch_date`` = the product's first kept sales date (any warehouse).
- warehouses: ``capacity_m3`` = ``data.cover_days x sum(daily demand x volume_m3)`` over the
  warehouse's series; ``budget`` = ``data.budget_cover_days x sum(daily demand x unit_cost)``.
- inventory: ``on_hand`` = ``round(daily demand x data.review_period_days)``; ``on_order`` = 0;
  ``lead_time_days``, ``lead_time_std_days``, ``review_period_days``, ``holding_cost_rate`` from
  the config; ``stockout_penalty`` = ``data.goodwill_fraction x unit_price``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import DataConfig
from inventory_scale.data import io
from inventory_scale.data.io import StorageOptions
from inventory_scale.data.sources import carparts, m5, store_item, walmart
from inventory_scale.data.sources.base import SourceDef, SourceFrames
from inventory_scale.errors import ConfigError, DataQualityError, SchemaError, StorageError

log = logging.getLogger(__name__)

_DEFS: dict[str, SourceDef] = {
    d.name: d for d in (m5.SOURCE, walmart.SOURCE, store_item.SOURCE, carparts.SOURCE)
}
SOURCES: tuple[str, ...] = tuple(_DEFS)
"""Values of ``data.name`` that :func:`import_dataset` reads."""

CHECKSUM_FILE = "SHA256SUMS"
PERIOD_DAYS: dict[str, float] = {"1d": 1.0, "1w": 7.0, "1mo": 365.25 / 12}
"""Days per period, to turn per-period demand into the daily demand the fill rules use."""

_DAILY = "daily_demand"


def source_def(cfg: DataConfig) -> SourceDef:
    """The source named by ``data.name``, checked against ``data.freq``.

    Raises:
        ConfigError: unknown source (names ``data.name``) or wrong frequency (names ``data.freq``).
    """
    source = _DEFS.get(cfg.name)
    if source is None:
        raise ConfigError(
            f"config key 'data.name' must be one of {list(SOURCES)} to import, got {cfg.name!r}"
        )
    if cfg.freq != source.freq:
        raise ConfigError(
            f"config key 'data.freq' is {cfg.freq!r} but source {cfg.name!r} holds {source.freq!r} data; "
            f"set data.freq={source.freq}"
        )
    return source


def _read_checksums(source_dir: Path) -> dict[str, str]:
    """relative path -> expected SHA-256 hex digest, from ``SHA256SUMS`` (sha256sum format)."""
    sums_path = source_dir / CHECKSUM_FILE
    if not sums_path.is_file():
        raise SchemaError(f"{sums_path}: checksum file not found; cannot verify the source files")
    expected: dict[str, str] = {}
    for line in sums_path.read_text().splitlines():
        digest, _, name = line.strip().partition(" ")
        if digest and name:
            expected[name.strip().lstrip("*")] = digest.lower()
    return expected


def verify_checksums(source_dir: str, relative_paths: Sequence[str]) -> None:
    """Check files under ``source_dir`` against its ``SHA256SUMS``.

    Args:
        source_dir: folder holding ``SHA256SUMS`` and the files.
        relative_paths: files to check, as written in ``SHA256SUMS`` (``m5/m5_calendar.csv``).

    Raises:
        SchemaError: ``SHA256SUMS`` or one of the files is missing (names it).
        DataQualityError: a file is not listed or its digest differs (names the file).
    """
    base = Path(source_dir)
    expected = _read_checksums(base)
    for rel in relative_paths:
        path = base / rel
        if not path.is_file():
            raise SchemaError(f"{path}: source file not found")
        if rel not in expected:
            raise DataQualityError(f"{path}: no checksum listed in {base / CHECKSUM_FILE}")
        with path.open("rb") as f:
            actual = hashlib.file_digest(f, "sha256").hexdigest()
        if actual != expected[rel]:
            raise DataQualityError(
                f"{path}: SHA-256 checksum mismatch (expected {expected[rel]}, got {actual}); "
                "the file is corrupt or was changed"
            )
        log.debug("checksum ok: %s", path)


def _require_source(source_dir: Path, source: SourceDef) -> None:
    """Raise :class:`StorageError` / :class:`SchemaError` when the folder or a file is missing."""
    folder = source_dir / source.folder
    if not folder.is_dir():
        raise StorageError(
            f"source folder {folder.absolute()} not found: the real data sets are not shipped with the "
            f"repository; place the shared data folder there (see its README.md) or set data.source_dir"
        )
    for rel in source.files:
        if not (source_dir / rel).is_file():
            raise SchemaError(f"{source_dir / rel}: source file of {source.name!r} not found")


def _daily_demand(sales: pl.DataFrame, freq: str) -> pl.DataFrame:
    """Mean daily demand per series: sku_id, warehouse_id, daily_demand."""
    return sales.group_by(*S.SERIES_KEY, maintain_order=True).agg(
        (pl.col(S.UNITS_SOLD).cast(pl.Float64).mean() / PERIOD_DAYS[freq]).alias(_DAILY)
    )


def build_products(frames: SourceFrames, cfg: DataConfig) -> pl.DataFrame:
    """The ``products`` table: the source's item attributes plus the cost and pack fill rules."""
    launch = frames.sales.group_by(S.SKU_ID).agg(pl.col(S.DATE).min().alias(S.LAUNCH_DATE))
    frame = (
        frames.items.join(launch, on=S.SKU_ID, how="inner")
        .with_columns((pl.col(S.UNIT_PRICE) * (1.0 - cfg.margin)).alias(S.UNIT_COST))
        .with_columns(
            (pl.col(S.UNIT_COST) * cfg.salvage_fraction).alias(S.SALVAGE_VALUE),
            pl.lit(cfg.case_pack).alias(S.CASE_PACK),
            pl.lit(cfg.moq).alias(S.MOQ),
            pl.lit(cfg.volume_m3).alias(S.VOLUME_M3),
        )
        .sort(S.SKU_ID)
    )
    return S.conform(frame, S.PRODUCTS)


def build_inventory(daily: pl.DataFrame, products: pl.DataFrame, cfg: DataConfig) -> pl.DataFrame:
    """The ``inventory`` table: a review period of mean demand on hand, nothing on order."""
    frame = daily.join(products.select(S.SKU_ID, S.UNIT_PRICE), on=S.SKU_ID, how="left").select(
        *S.SERIES_KEY,
        (pl.col(_DAILY) * cfg.review_period_days).round().alias(S.ON_HAND),
        pl.lit(0.0).alias(S.ON_ORDER),
        pl.lit(cfg.lead_time_days).alias(S.LEAD_TIME_DAYS),
        pl.lit(cfg.lead_time_std_days).alias(S.LEAD_TIME_STD_DAYS),
        pl.lit(cfg.review_period_days).alias(S.REVIEW_PERIOD_DAYS),
        pl.lit(cfg.holding_cost_rate).alias(S.HOLDING_COST_RATE),
        (pl.col(S.UNIT_PRICE).cast(pl.Float64) * cfg.goodwill_fraction).alias(S.STOCKOUT_PENALTY),
    )
    return S.conform(frame.sort(*S.SERIES_KEY), S.INVENTORY)


def build_warehouses(
    daily: pl.DataFrame, products: pl.DataFrame, stores: pl.DataFrame, cfg: DataConfig
) -> pl.DataFrame:
    """The ``warehouses`` table: capacity and budget sized to cover days of mean demand."""
    per_series = daily.join(products.select(S.SKU_ID, S.UNIT_COST, S.VOLUME_M3), on=S.SKU_ID, how="left")
    sized = per_series.group_by(S.WAREHOUSE_ID).agg(
        (cfg.cover_days * (pl.col(_DAILY) * pl.col(S.VOLUME_M3).cast(pl.Float64)).sum()).alias(S.CAPACITY_M3),
        (cfg.budget_cover_days * (pl.col(_DAILY) * pl.col(S.UNIT_COST).cast(pl.Float64)).sum()).alias(
            S.BUDGET
        ),
    )
    frame = stores.join(sized, on=S.WAREHOUSE_ID, how="inner").sort(S.WAREHOUSE_ID)
    return S.conform(frame, S.WAREHOUSES)


def import_dataset(cfg: DataConfig, root: str, opts: StorageOptions | None = None) -> dict[str, int]:
    """Import real source ``cfg.name`` from ``cfg.source_dir`` into a dataset root.

    Args:
        cfg: data config: ``name`` (one of :data:`SOURCES`), ``freq`` (must match the source),
            ``source_dir``, ``verify_checksums``, ``max_series`` and the fill-rule fields.
        root: dataset root URI (local path or ``s3://``) the tables are written under.
        opts: storage options for an ``s3://`` root.

    Returns:
        Rows written per table name (``sales``, ``products``, ``warehouses``, ``inventory``,
        ``inbound``, ``calendar``).

    Raises:
        ConfigError: unknown ``data.name`` or a ``data.freq`` that is not the source's.
        StorageError: the source folder is missing (the data is not shipped with the repo).
        SchemaError: a source file or ``SHA256SUMS`` is missing, or a file cannot be parsed.
        DataQualityError: checksum mismatch, negative sales with ``negative_sales=error``,
            duplicate keys or gaps in a source.
    """
    source = source_def(cfg)
    source_dir = Path(cfg.source_dir)
    _require_source(source_dir, source)
    if cfg.verify_checksums:
        verify_checksums(str(source_dir), source.files)
    try:
        frames = source.read(cfg, source_dir)
    except (pl.exceptions.PolarsError, OSError) as e:
        files = ", ".join(str(source_dir / f) for f in source.files)
        raise SchemaError(f"source {source.name!r}: cannot parse {files}: {e}") from e
    products = build_products(frames, cfg)
    daily = _daily_demand(frames.sales, source.freq)
    tables: list[tuple[S.TableSpec, pl.DataFrame]] = [
        (S.SALES, frames.sales),
        (S.PRODUCTS, products),
        (S.WAREHOUSES, build_warehouses(daily, products, frames.stores, cfg)),
        (S.INVENTORY, build_inventory(daily, products, cfg)),
        (S.INBOUND, S.empty_frame(S.INBOUND)),
        (S.CALENDAR, frames.calendar),
    ]
    rows: dict[str, int] = {}
    for spec, frame in tables:
        io.write_table(frame, root, spec, opts)
        rows[spec.name] = frame.height
    log.info(
        "imported %s (%d series) into %s: %s",
        cfg.name,
        daily.height,
        root,
        ", ".join(f"{k}={v}" for k, v in rows.items()),
    )
    return rows
