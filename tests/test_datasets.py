"""Tests of the real-data loaders (inventory_scale.data.datasets and data/sources/).

Tests marked ``needs_data`` read ``../shared/data`` (override with INVENTORY_SCALE_SHARED_DATA)
and are skipped when it is absent; the rest build tiny source files in ``tmp_path``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import logging
import os
import shutil
from pathlib import Path

import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.config import DataConfig
from inventory_scale.data import io
from inventory_scale.data.datasets import SOURCES, import_dataset, verify_checksums
from inventory_scale.errors import ConfigError, DataQualityError, SchemaError, StorageError

SHARED = Path(
    os.environ.get("INVENTORY_SCALE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
needs_data = [
    pytest.mark.data,
    pytest.mark.skipif(
        not SHARED.is_dir(),
        reason=f"real data folder {SHARED} absent (not shipped with the repo); "
        "set INVENTORY_SCALE_SHARED_DATA to its path",
    ),
]
M5_SALES = "m5/m5_tiny_daily_28items_x_10stores.csv.gz"
FREQ = {"m5": "1d", "walmart_weekly": "1w", "store_item": "1d", "carparts": "1mo"}


def _cfg(name: str, source_dir: Path = SHARED, **kw: object) -> DataConfig:
    return DataConfig(name=name, freq=FREQ[name], source_dir=str(source_dir), **kw)  # type: ignore[arg-type]


def _tables(root: Path) -> dict[str, pl.DataFrame]:
    return {spec.name: io.read_table(str(root), spec) for spec in S.INPUT_TABLES}


def _n_series(sales: pl.DataFrame) -> int:
    return int(sales.select(pl.struct(*S.SERIES_KEY).n_unique()).item())


def _assert_contract(rows: dict[str, int], tables: dict[str, pl.DataFrame]) -> None:
    for spec in S.INPUT_TABLES:
        frame = tables[spec.name]
        assert frame.schema == spec.schema, spec.name
        assert rows[spec.name] == frame.height, spec.name
        assert frame.select(pl.struct(*spec.key).is_duplicated().sum()).item() == 0, spec.name
        for col in set(spec.columns) - spec.nullable:
            assert frame[col].null_count() == 0, (spec.name, col)
    assert rows["inbound"] == 0


def _max_abs(frame: pl.DataFrame, expr: pl.Expr) -> float:
    return float(frame.select(expr.cast(pl.Float64).abs().max()).item())


def _write_sums(folder: Path, files: list[str]) -> None:
    lines = []
    for rel in files:
        digest = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
        lines.append(f"{digest}  {rel}\n")
    (folder / "SHA256SUMS").write_text("".join(lines))


def _fake_store_item(folder: Path, rows: list[tuple[str, int, int, float]]) -> None:
    (folder / "store_item_demand").mkdir(parents=True)
    text = "date,store,item,sales\n" + "".join(f"{d},{s},{i},{v}\n" for d, s, i, v in rows)
    (folder / "store_item_demand" / "train.csv.gz").write_bytes(gzip.compress(text.encode()))
    _write_sums(folder, ["store_item_demand/train.csv.gz"])


@pytest.fixture(scope="module")
def m5_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], dict[str, pl.DataFrame]]:
    root = tmp_path_factory.mktemp("m5")
    rows = import_dataset(_cfg("m5"), str(root))
    return rows, _tables(root)


@pytest.fixture(scope="module")
def m5_raw() -> pl.DataFrame:
    return pl.read_csv(SHARED / M5_SALES, schema_overrides={"sell_price": pl.Float64, "sales": pl.Float64})


# --- no shared data needed ----------------------------------------------------------------------


def test_sources_and_config_errors(tmp_path: Path) -> None:
    assert SOURCES == ("m5", "walmart_weekly", "store_item", "carparts")
    with pytest.raises(ConfigError, match=r"data\.freq") as e:
        import_dataset(DataConfig(name="m5", freq="1w", source_dir=str(tmp_path)), str(tmp_path / "o"))
    assert "'1d'" in str(e.value)
    with pytest.raises(ConfigError, match=r"data\.name"):
        import_dataset(DataConfig(name="synthetic", source_dir=str(tmp_path)), str(tmp_path / "o"))


def test_missing_source_folder_names_path(tmp_path: Path) -> None:
    cfg = _cfg("carparts", tmp_path / "nowhere")
    with pytest.raises(StorageError, match="not shipped with the repository") as e:
        import_dataset(cfg, str(tmp_path / "out"))
    assert str(tmp_path / "nowhere" / "carparts") in str(e.value)
    assert not (tmp_path / "out").exists()


def test_verify_checksums(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.csv").write_text("x,y\n1,2\n")
    _write_sums(tmp_path, ["src/a.csv"])
    verify_checksums(str(tmp_path), ["src/a.csv"])  # intact: no error
    (tmp_path / "src" / "a.csv").write_text("x,y\n1,3\n")
    with pytest.raises(DataQualityError, match=r"src/a\.csv: SHA-256 checksum mismatch"):
        verify_checksums(str(tmp_path), ["src/a.csv"])
    (tmp_path / "src" / "b.csv").write_text("x\n")
    with pytest.raises(DataQualityError, match=r"b\.csv: no checksum listed"):
        verify_checksums(str(tmp_path), ["src/b.csv"])
    with pytest.raises(SchemaError, match=r"c\.csv: source file not found"):
        verify_checksums(str(tmp_path), ["src/c.csv"])
    (tmp_path / "SHA256SUMS").unlink()
    with pytest.raises(SchemaError, match="SHA256SUMS: checksum file not found"):
        verify_checksums(str(tmp_path), ["src/a.csv"])


def test_negative_sales_clip_and_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    days = ["2020-01-01", "2020-01-02", "2020-01-03"]
    rows = [(d, s, i, 2.0) for s in (1, 2) for i in (1, 2) for d in days]
    rows[4] = ("2020-01-02", 1, 2, -3.0)  # store 1, item 2
    _fake_store_item(tmp_path, rows)
    with pytest.raises(DataQualityError) as e:
        import_dataset(_cfg("store_item", tmp_path, negative_sales="error"), str(tmp_path / "o"))
    msg = str(e.value)
    assert "train.csv.gz" in msg and "column 'sales'" in msg and "1 negative" in msg
    assert "(1, 2, 2020-01-02)" in msg
    with caplog.at_level(logging.WARNING):
        out = import_dataset(_cfg("store_item", tmp_path, max_series=3), str(tmp_path / "o"))
    assert "clipped 1 negative value(s) of column 'sales'" in caplog.text
    sales = io.read_table(str(tmp_path / "o"), S.SALES)
    assert out["sales"] == 9 and _n_series(sales) == 3
    # first 3 series in (sku_id, warehouse_id) order: I01/S01, I01/S02, I02/S01
    keys = sales.select(*S.SERIES_KEY).unique().sort(*S.SERIES_KEY).rows()
    assert keys == [("I01", "S01"), ("I01", "S02"), ("I02", "S01")]
    assert sales.filter(pl.col(S.SKU_ID) == "I02")[S.UNITS_SOLD].to_list() == [2.0, 0.0, 2.0]
    calendar = io.read_table(str(tmp_path / "o"), S.CALENDAR)
    assert calendar[S.DATE].max() == dt.date(2020, 1, 3) + dt.timedelta(days=28)  # + data.horizon


def test_carparts_interior_gap_raises(tmp_path: Path) -> None:
    (tmp_path / "carparts").mkdir()
    text = "Part,Jan-98,Feb-98,Mar-98,Apr-98\n11,1,0,,\n12,0,,2,\n"
    (tmp_path / "carparts" / "carparts_monthly_2674series.csv.gz").write_bytes(gzip.compress(text.encode()))
    _write_sums(tmp_path, ["carparts/carparts_monthly_2674series.csv.gz"])
    with pytest.raises(DataQualityError, match=r"1 empty cell\(s\) between observed months.*\(12, Feb-98\)"):
        import_dataset(_cfg("carparts", tmp_path), str(tmp_path / "o"))
    out = import_dataset(_cfg("carparts", tmp_path, max_series=1), str(tmp_path / "o"))
    sales = io.read_table(str(tmp_path / "o"), S.SALES)
    assert out["sales"] == 2
    assert sales[S.DATE].to_list() == [dt.date(1998, 1, 1), dt.date(1998, 2, 1)]


# --- real data ----------------------------------------------------------------------------------


class TestM5:
    pytestmark = needs_data

    def test_contract_and_launch(
        self, m5_out: tuple[dict[str, int], dict[str, pl.DataFrame]], m5_raw: pl.DataFrame
    ) -> None:
        rows, t = m5_out
        _assert_contract(rows, t)
        sales = t["sales"]
        assert _n_series(sales) == 280
        assert (t["products"].height, t["warehouses"].height, t["inventory"].height) == (28, 10, 280)
        priced = m5_raw.filter(pl.col("sell_price").is_not_null())
        assert sales.height == priced.height == 454_447
        assert sales[S.UNITS_SOLD].sum() == pytest.approx(priced["sales"].sum()) == 2_934_611
        first_priced = priced.group_by(item="item_id", store="store_id").agg(
            pl.col("date").min().str.to_date()
        )
        first_kept = sales.group_by(item=S.SKU_ID, store=S.WAREHOUSE_ID).agg(pl.col(S.DATE).min())
        joined = first_priced.join(first_kept, on=["item", "store"])
        assert joined.height == 280 and (joined["date"] == joined[S.DATE]).all()
        launch = t["products"].filter(pl.col(S.SKU_ID) == "FOODS_1_033")[S.LAUNCH_DATE].item()
        assert launch == first_kept.filter(pl.col("item") == "FOODS_1_033")[S.DATE].min()
        promo_share = sales.select(pl.col(S.ON_PROMOTION).mean()).item()
        assert 0.005 < promo_share < 0.05  # price-drop rule: ~1.6% of rows
        assert sales[S.IN_STOCK].all()

    def test_products_and_fill_rules(
        self, m5_out: tuple[dict[str, int], dict[str, pl.DataFrame]], m5_raw: pl.DataFrame
    ) -> None:
        _, t = m5_out
        cfg = DataConfig(name="m5")
        p = t["products"]
        assert _max_abs(p, pl.col(S.UNIT_COST) - pl.col(S.UNIT_PRICE) * (1 - cfg.margin)) < 1e-5
        assert _max_abs(p, pl.col(S.SALVAGE_VALUE) - pl.col(S.UNIT_COST) * cfg.salvage_fraction) < 1e-5
        median = m5_raw.filter(pl.col("item_id") == "HOBBIES_1_157")["sell_price"].median()
        assert p.filter(pl.col(S.SKU_ID) == "HOBBIES_1_157")[S.UNIT_PRICE].item() == pytest.approx(median)
        foods = p.filter(pl.col(S.CATEGORY) == "FOODS")
        assert foods.height == 12 and (foods[S.SHELF_LIFE_DAYS] == 30).all()
        assert p.filter(pl.col(S.CATEGORY) != "FOODS")[S.SHELF_LIFE_DAYS].null_count() == 16
        row = p.filter(pl.col(S.SKU_ID) == "FOODS_1_033").row(0, named=True)
        assert row[S.SUBCATEGORY] == "FOODS_1" and "FOODS_1_033" in row[S.TITLE]
        mean = t["sales"].group_by(*S.SERIES_KEY).agg(pl.col(S.UNITS_SOLD).cast(pl.Float64).mean().alias("m"))
        inv = t["inventory"].join(mean, on=list(S.SERIES_KEY)).join(p, on=S.SKU_ID)
        assert (inv[S.ON_HAND] == (inv["m"] * cfg.review_period_days).round()).all()
        assert _max_abs(inv, pl.col(S.STOCKOUT_PENALTY) - pl.col(S.UNIT_PRICE) * cfg.goodwill_fraction) < 1e-5
        assert (inv[S.LEAD_TIME_DAYS] == cfg.lead_time_days).all() and (inv[S.ON_ORDER] == 0).all()
        ca1 = inv.filter(pl.col(S.WAREHOUSE_ID) == "CA_1")
        wh = t["warehouses"].filter(pl.col(S.WAREHOUSE_ID) == "CA_1").row(0, named=True)
        assert wh[S.REGION] == "CA"
        demand, money = ca1.select(
            pl.col("m").sum(), (pl.col("m") * pl.col(S.UNIT_COST)).sum().alias("c")
        ).row(0)
        assert wh[S.CAPACITY_M3] == pytest.approx(cfg.cover_days * demand * cfg.volume_m3, rel=1e-6)
        budget = cfg.budget_cover_days * money
        assert wh[S.BUDGET] == pytest.approx(budget, rel=1e-6)

    def test_calendar(self, m5_out: tuple[dict[str, int], dict[str, pl.DataFrame]]) -> None:
        cal = m5_out[1]["calendar"]
        assert cal.height == 1969 * 3 and sorted(cal[S.REGION].unique()) == ["CA", "TX", "WI"]

        def day(date: str, region: str = "CA") -> dict[str, object]:
            return cal.filter(
                (pl.col(S.DATE) == dt.date.fromisoformat(date)) & (pl.col(S.REGION) == region)
            ).row(0, named=True)

        assert day("2011-12-25")[S.EVENT_NAME] == "Christmas" and day("2011-12-25")[S.IS_HOLIDAY]
        superbowl = day("2011-02-06")
        assert superbowl[S.EVENT_NAME] == "SuperBowl" and superbowl[S.EVENT_TYPE] == "sporting"
        assert not superbowl[S.IS_HOLIDAY]
        assert day("2011-04-24")[S.EVENT_NAME] == "OrthodoxEaster|Easter"
        assert day("2011-04-24")[S.EVENT_TYPE] == "religious|cultural"
        assert [day("2011-02-01", r)[S.SNAP] for r in ("CA", "TX", "WI")] == [True, True, False]
        assert day("2011-01-29")[S.EVENT_NAME] is None and not day("2011-01-29")[S.IS_HOLIDAY]
        assert cal[S.DATE].max() == dt.date(2016, 6, 19)

    def test_max_series_subset(self, tmp_path: Path) -> None:
        rows = import_dataset(_cfg("m5", max_series=12), str(tmp_path))
        t = _tables(tmp_path)
        _assert_contract(rows, t)
        keys = t["inventory"].select(*S.SERIES_KEY).rows()
        assert len(keys) == 12 and keys[:2] == [("FOODS_1_033", "CA_1"), ("FOODS_1_033", "CA_2")]
        assert keys[-1] == ("FOODS_1_046", "CA_2")
        assert t["products"][S.SKU_ID].to_list() == ["FOODS_1_033", "FOODS_1_046"]


class TestOtherSources:
    pytestmark = needs_data

    def test_walmart(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        raw = pl.read_csv(SHARED / "walmart_weekly/train.csv.gz")
        n_negative = raw.filter(pl.col("Weekly_Sales") < 0).height
        n_zero = raw.filter(pl.col("Weekly_Sales") == 0).height
        with caplog.at_level(logging.WARNING):
            rows = import_dataset(_cfg("walmart_weekly"), str(tmp_path))
        assert f"clipped {n_negative} negative value(s) of column 'Weekly_Sales'" in caplog.text
        t = _tables(tmp_path)
        _assert_contract(rows, t)
        sales = t["sales"]
        assert _n_series(sales) == 3331 and sales.height == raw.height
        assert n_negative == 1285 and (sales[S.UNITS_SOLD] == 0).sum() == n_zero + n_negative
        assert sales[S.UNITS_SOLD].sum() == pytest.approx(
            raw["Weekly_Sales"].clip(lower_bound=0).sum(), rel=1e-6
        )
        assert (sales[S.PRICE] == 1.0).all() and (t["products"][S.UNIT_PRICE] == 1.0).all()
        returns = sales.filter(
            (pl.col(S.SKU_ID) == "D06")
            & (pl.col(S.WAREHOUSE_ID) == "S01")
            & (pl.col(S.DATE) == dt.date(2012, 8, 10))
        )
        assert returns[S.UNITS_SOLD].to_list() == [0.0]  # raw Weekly_Sales -139.65
        regions = dict(t["warehouses"].select(S.WAREHOUSE_ID, S.REGION).iter_rows())
        assert (regions["S01"], regions["S03"], regions["S33"]) == ("A", "B", "A")
        cal = t["calendar"]
        thanksgiving = cal.filter(pl.col(S.DATE) == dt.date(2010, 11, 26))
        assert thanksgiving.height == 3 and thanksgiving[S.IS_HOLIDAY].all()
        assert set(thanksgiving[S.EVENT_NAME]) == {"Thanksgiving"}
        assert not cal.filter(pl.col(S.DATE) == dt.date(2010, 11, 19))[S.IS_HOLIDAY].any()
        assert cal.filter(pl.col(S.IS_HOLIDAY))[S.DATE].n_unique() == 13
        assert cal[S.DATE].max() == dt.date(2013, 7, 26) and cal[S.DATE].dt.weekday().unique().to_list() == [
            5
        ]

    def test_walmart_negative_error(self, tmp_path: Path) -> None:
        with pytest.raises(DataQualityError) as e:
            import_dataset(_cfg("walmart_weekly", negative_sales="error"), str(tmp_path))
        msg = str(e.value)
        assert "train.csv.gz" in msg and "column 'Weekly_Sales'" in msg and "1285 negative" in msg
        assert "(Store, Dept, Date)" in msg and "(1, 6, 2012-08-10)" in msg

    def test_store_item(self, tmp_path: Path) -> None:
        rows = import_dataset(_cfg("store_item"), str(tmp_path))
        t = _tables(tmp_path)
        _assert_contract(rows, t)
        counts = t["sales"].group_by(*S.SERIES_KEY).len()
        assert counts.height == 500 and (counts["len"] == 1826).all()
        assert t["products"][S.SKU_ID].to_list() == [f"I{i:02d}" for i in range(1, 51)]
        assert t["warehouses"][S.WAREHOUSE_ID].to_list() == [f"S{s:02d}" for s in range(1, 11)]
        raw_total = pl.read_csv(SHARED / "store_item_demand/train.csv.gz")["sales"].sum()
        assert t["sales"][S.UNITS_SOLD].cast(pl.Float64).sum() == raw_total
        cal = t["calendar"]
        assert not cal[S.IS_HOLIDAY].any() and cal[S.EVENT_NAME].null_count() == cal.height
        assert cal.height == 1826 + 28 and set(cal[S.REGION]) == {"ALL"}

    def test_carparts_no_invented_zeros(self, tmp_path: Path) -> None:
        rows = import_dataset(_cfg("carparts"), str(tmp_path))
        t = _tables(tmp_path)
        _assert_contract(rows, t)
        sales = t["sales"]
        assert _n_series(sales) == 2674 and set(sales[S.WAREHOUSE_ID]) == {"W01"}
        wide = pl.read_csv(SHARED / "carparts/carparts_monthly_2674series.csv.gz")
        cells = wide.unpivot(index="Part").drop_nulls("value")
        assert sales.height == cells.height == 2674 * 51 - 6122
        assert sales[S.UNITS_SOLD].sum() == cells["value"].sum()
        part = sales.filter(pl.col(S.SKU_ID) == "P21029627")
        assert part[S.DATE].to_list()[-1] == dt.date(1999, 2, 1) and part.height == 14
        assert part[S.UNITS_SOLD].to_list()[-1] == 1.0  # Feb-99, the last observed cell
        assert t["calendar"][S.DATE].max() == dt.date(2004, 7, 1)  # Mar-02 + 28 months

    def test_checksum_mismatch_via_import(self, tmp_path: Path) -> None:
        rel = "carparts/carparts_monthly_2674series.csv.gz"
        (tmp_path / "carparts").mkdir()
        shutil.copy(SHARED / rel, tmp_path / rel)
        sums = [line for line in (SHARED / "SHA256SUMS").read_text().splitlines() if line.endswith(rel)]
        (tmp_path / "SHA256SUMS").write_text(sums[0] + "\n")
        assert import_dataset(_cfg("carparts", tmp_path, max_series=5), str(tmp_path / "o"))["sales"] > 0
        (tmp_path / rel).chmod(0o644)
        with (tmp_path / rel).open("ab") as f:
            f.write(b"\0")
        with pytest.raises(DataQualityError, match=r"carparts_monthly_2674series\.csv\.gz: SHA-256"):
            import_dataset(_cfg("carparts", tmp_path, max_series=5), str(tmp_path / "o"))
        unverified = _cfg("carparts", tmp_path, max_series=5, verify_checksums=False)
        with pytest.raises(SchemaError, match=r"cannot parse .*carparts_monthly_2674series\.csv\.gz"):
            import_dataset(unverified, str(tmp_path / "o"))
