"""Parquet I/O: atomic table writes, hive partitions with pushdown, manifests, S3 via moto."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.config import Config, StorageConfig
from inventory_scale.data import io
from inventory_scale.errors import SchemaError
from inventory_scale.manifest import build_manifest, config_hash, read_manifest, write_manifest


def _sales(n_sku: int = 3, warehouses: tuple[str, ...] = ("W1", "W2"), days: int = 5) -> pl.DataFrame:
    rows = [
        (f"S{i}", w, dt.date(2024, 1, 1) + dt.timedelta(days=d), float(i + d), 9.99, d == 2, True)
        for i in range(n_sku)
        for w in warehouses
        for d in range(days)
    ]
    return pl.DataFrame(rows, schema=S.SALES.schema, orient="row")


def test_write_and_scan_roundtrip_with_hive_partitions(tmp_path: Path) -> None:
    frame = _sales()
    io.write_table(frame, str(tmp_path), S.SALES)
    files = io.table_files(str(tmp_path), S.SALES)
    assert [Path(f).parent.name for f in files] == ["warehouse_id=W1", "warehouse_id=W2"]
    back = io.read_table(str(tmp_path), S.SALES).sort(S.SALES.key)
    assert back.schema == S.SALES.schema
    assert back.equals(frame.sort(S.SALES.key))
    assert sorted(io.iter_partition_values(str(tmp_path), S.SALES)) == ["W1", "W2"]


def test_partition_filter_prunes_files(tmp_path: Path) -> None:
    io.write_table(_sales(), str(tmp_path), S.SALES)
    lf = io.scan_table(str(tmp_path), S.SALES).filter(pl.col(S.WAREHOUSE_ID) == "W2")
    out = lf.select(S.SKU_ID, S.UNITS_SOLD).collect()
    assert out.height == 15
    plan = lf.explain()
    assert "W2" in plan  # the predicate reaches the scan


def test_failed_write_keeps_previous_table(tmp_path: Path) -> None:
    root = str(tmp_path)
    io.write_table(_sales(n_sku=2), root, S.SALES)
    before = io.read_table(root, S.SALES)
    with pytest.raises(RuntimeError, match="boom"), io.TableWriter(root, S.SALES) as w:
        w.write(_sales(n_sku=5))
        raise RuntimeError("boom")
    after = io.read_table(root, S.SALES)
    assert after.sort(S.SALES.key).equals(before.sort(S.SALES.key))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


def test_rewrite_replaces_whole_table(tmp_path: Path) -> None:
    root = str(tmp_path)
    io.write_table(_sales(warehouses=("W1", "W2", "W3")), root, S.SALES)
    io.write_table(_sales(warehouses=("W9",)), root, S.SALES)
    assert sorted(io.iter_partition_values(root, S.SALES)) == ["W9"]
    assert io.read_table(root, S.SALES).height == 15


def test_chunked_writer_appends_parts(tmp_path: Path) -> None:
    with io.TableWriter(str(tmp_path), S.PRODUCTS) as w:
        for i in range(3):
            w.write(
                pl.DataFrame(
                    {
                        S.SKU_ID: [f"P{i}"],
                        S.CATEGORY: ["home"],
                        S.SUBCATEGORY: ["kitchen"],
                        S.TITLE: ["steel kettle"],
                        S.DESCRIPTION: [None],
                        S.UNIT_COST: [3.0],
                        S.UNIT_PRICE: [5.0],
                        S.SALVAGE_VALUE: [1.0],
                        S.SHELF_LIFE_DAYS: [None],
                        S.CASE_PACK: [6],
                        S.MOQ: [12],
                        S.VOLUME_M3: [0.01],
                        S.LAUNCH_DATE: [dt.date(2024, 1, 1)],
                    }
                )
            )
    assert w.rows_written == 3
    assert len(io.table_files(str(tmp_path), S.PRODUCTS)) == 3
    assert io.read_table(str(tmp_path), S.PRODUCTS)[S.SKU_ID].to_list() == ["P0", "P1", "P2"]


def test_empty_table_keeps_schema(tmp_path: Path) -> None:
    io.write_table(S.empty_frame(S.INBOUND), str(tmp_path), S.INBOUND)
    back = io.read_table(str(tmp_path), S.INBOUND)
    assert back.height == 0 and back.schema == S.INBOUND.schema


def test_missing_table_and_corrupt_file_are_named(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="table 'sales' has no Parquet files"):
        io.scan_table(str(tmp_path), S.SALES)
    bad = tmp_path / "x.parquet"
    bad.write_text("not parquet")
    with pytest.raises(SchemaError, match=r"x\.parquet: not a readable Parquet file"):
        io.parquet_schema(str(bad))


def test_manifest_records_config_hash_versions_and_inputs(tmp_path: Path) -> None:
    io.write_table(_sales(), str(tmp_path / "data"), S.SALES)
    cfg = Config(storage=StorageConfig(access_key_id="AKIA-SECRET", secret_access_key="shh"))
    m = build_manifest("generate", cfg, 3, [str(tmp_path / "data" / "sales")], rows={"sales": 30})
    write_manifest(str(tmp_path / "out"), m)
    text = (tmp_path / "out" / "manifest.json").read_text()
    assert "AKIA-SECRET" not in text and "shh" not in text
    back = read_manifest(str(tmp_path / "out"))
    assert back is not None
    assert back["seed"] == 3 and back["rows"] == {"sales": 30}
    assert back["inputs"][0]["files"] == 2 and back["inputs"][0]["bytes"] > 0
    assert {"polars", "pyarrow", "numpy", "python"} <= set(back["versions"])
    assert back["config_hash"] == config_hash(cfg)
    assert config_hash(Config(seed=1)) != config_hash(Config(seed=2))
    # credentials do not change the hash: the same run with other keys is the same run
    assert config_hash(cfg) == config_hash(
        Config(storage=StorageConfig(access_key_id="other", secret_access_key="x"))
    )
    assert json.loads(text)["config"]["storage"]["secret_access_key"] == "<redacted>"


def test_s3_roundtrip_through_moto_server(s3_server: str) -> None:
    root = "s3://inv/datasets/mk"
    io.write_table(_sales(warehouses=("W1",)), root, S.SALES)
    io.write_table(_sales(warehouses=("W1", "W2")), root, S.SALES)  # replace on object storage
    assert sorted(io.iter_partition_values(root, S.SALES)) == ["W1", "W2"]
    back = io.read_table(root, S.SALES, predicate=pl.col(S.WAREHOUSE_ID) == "W2")
    assert back.height == 15 and back.schema == S.SALES.schema
    io.write_json(io.join(root, "manifest.json"), {"ok": 1})
    assert io.read_json(io.join(root, "manifest.json")) == {"ok": 1}
    assert not [f for f in io.list_files("s3://inv/datasets") if ".staging" in f.path]
