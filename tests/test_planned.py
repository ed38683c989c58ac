"""Planned prices and promotions (data/planned.py): horizon covariates known at the cutoff."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from inventory_scale import schema as S
from inventory_scale.cli import load_config
from inventory_scale.data import io
from inventory_scale.data.planned import COLUMNS, read_planned
from inventory_scale.data.windows import PackedShard, pack_shard
from inventory_scale.errors import ConfigError, DataQualityError

D = dt.date
CUTOFF, H = D(2024, 1, 9), 3
PRODUCTS = pl.DataFrame({S.SKU_ID: ["A", "B"], S.CATEGORY: ["food", "toys"]})
WAREHOUSES = pl.DataFrame({S.WAREHOUSE_ID: ["W1"], S.REGION: ["US"]})


def calendar(first: dt.date, last: dt.date) -> pl.DataFrame:
    return pl.DataFrame({S.DATE: pl.date_range(first, last, eager=True)}).with_columns(
        pl.lit("US").alias(S.REGION),
        pl.lit(None, pl.String).alias(S.EVENT_NAME),
        pl.lit(None, pl.String).alias(S.EVENT_TYPE),
        pl.lit(False).alias(S.IS_HOLIDAY),
        pl.lit(False).alias(S.SNAP),
    )


def sales_rows() -> pl.DataFrame:
    """A sells 9 days at 2.0, B 5 days at 4.0; A's row after the cutoff (price 50, promotion) is
    what a backtest with ``planned_prices=sales`` may read, but only its price and flag."""
    rows = [("A", "W1", D(2024, 1, k), float(k), 2.0, False, True) for k in range(1, 10)]
    rows += [("B", "W1", D(2024, 1, 4 + k), 10.0, 4.0, False, True) for k in range(1, 6)]
    rows += [("A", "W1", D(2024, 1, 10), 999.0, 50.0, True, False)]
    return pl.DataFrame(rows, schema=S.SALES.schema, orient="row")


def plan(rows: list[tuple[str, str, dt.date, float | None, bool | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=S.PLANNED_PRICES.schema, orient="row")


def horizon(packed: PackedShard, i: int, name: str) -> np.ndarray:
    lo = packed.indptr[i] + packed.cutoff_index[i]
    return packed.time_feat[lo : packed.indptr[i + 1], list(packed.feature_names).index(name)]


def history(packed: PackedShard, i: int) -> np.ndarray:
    return packed.time_feat[packed.indptr[i] : packed.indptr[i] + packed.cutoff_index[i]]


def test_pack_reads_planned_horizon_prices_and_promotions() -> None:
    sales = sales_rows()
    cal = calendar(D(2023, 12, 1), D(2024, 2, 1))
    args = (sales, PRODUCTS, WAREHOUSES, cal)
    base = pack_shard(*args, freq="1d", cutoff=CUTOFF, horizon=H)
    planned = plan(
        [
            ("A", "W1", D(2024, 1, 9), 99.0, True),  # on the cutoff: history is what happened
            ("A", "W1", D(2024, 1, 10), 1.0, True),  # half price, promotion
            ("A", "W1", D(2024, 1, 11), None, None),  # keeps the planned price, no promotion
            ("C", "W1", D(2024, 1, 10), 7.0, True),  # not a series of the shard
        ]
    )
    packed = pack_shard(*args, freq="1d", cutoff=CUTOFF, horizon=H, planned=planned)
    # without a plan: last price carried forward, no promotion (A's sales row after the cutoff unseen)
    np.testing.assert_allclose(horizon(base, 0, S.RELATIVE_PRICE), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(horizon(base, 0, S.ON_PROMOTION), [0.0, 0.0, 0.0])
    # with it: A's horizon reads the plan, 01-12 (no row) keeps the last planned price
    np.testing.assert_allclose(horizon(packed, 0, S.RELATIVE_PRICE), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(horizon(packed, 0, S.ON_PROMOTION), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(horizon(packed, 1, S.RELATIVE_PRICE), [1.0, 1.0, 1.0])
    np.testing.assert_allclose(horizon(packed, 1, S.ON_PROMOTION), [0.0, 0.0, 0.0])
    # history, targets and masks are untouched; nothing past the cutoff becomes a target
    for i in range(2):
        np.testing.assert_array_equal(history(packed, i), history(base, i))
    np.testing.assert_array_equal(packed.values, base.values)
    np.testing.assert_array_equal(packed.observed, base.observed)
    assert packed.series.equals(base.series)


def test_read_planned_sources(tmp_path: Path) -> None:
    root = str(tmp_path / "data")
    io.write_table(sales_rows(), root, S.SALES)
    keys = pl.DataFrame({S.SKU_ID: ["A", "B"], S.WAREHOUSE_ID: ["W1", "W1"]})
    until = D(2024, 1, 12)
    assert read_planned(root, "none", keys, CUTOFF, until) is None
    assert read_planned(root, "table", keys, CUTOFF, until) is None  # no planned_prices table
    got = read_planned(root, "sales", keys, CUTOFF, until)
    assert got is not None and got.columns == list(COLUMNS)  # never units_sold or in_stock
    assert got.rows() == [("A", "W1", D(2024, 1, 10), 50.0, True)]
    assert read_planned(root, "sales", keys, D(2024, 1, 10), until).height == 0  # rows on the cutoff
    with pytest.raises(ConfigError, match=r"data\.planned_prices"):
        read_planned(root, "calendar", keys, CUTOFF, until)

    good = plan([("A", "W1", D(2024, 1, 11), 1.5, True), ("B", "W1", D(2024, 1, 20), 3.0, False)])
    io.write_table(good, root, S.PLANNED_PRICES)
    got = read_planned(root, "table", keys, CUTOFF, until)
    assert got is not None and got.rows() == [("A", "W1", D(2024, 1, 11), 1.5, True)]  # B's row is past until


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [("A", "W1", D(2024, 1, 11), 1.5, True), ("A", "W1", D(2024, 1, 11), 2.0, False)],
            r"planned_prices: 1 key\(s\) appear more than once in columns "
            r"\(sku_id, warehouse_id, date\).*A, W1",
        ),
        (
            [("A", "W1", D(2024, 1, 11), 1.5, True), ("B", "W1", D(2024, 1, 10), 0.0, None)],
            r"planned_prices: column 'price' must be > 0.*1 row\(s\): \(B, W1, 2024-01-10\)",
        ),
    ],
)
def test_broken_planned_table_names_table_column_and_keys(
    tmp_path: Path, rows: list[tuple[str, str, dt.date, float | None, bool | None]], message: str
) -> None:
    root = str(tmp_path / "data")
    io.write_table(plan(rows), root, S.PLANNED_PRICES)
    keys = pl.DataFrame({S.SKU_ID: ["A", "B"], S.WAREHOUSE_ID: ["W1", "W1"]})
    with pytest.raises(DataQualityError, match=message):
        read_planned(root, "table", keys, CUTOFF, D(2024, 1, 12))


def test_config_rejects_unknown_planned_source() -> None:
    with pytest.raises(ConfigError, match=r"data\.planned_prices"):
        load_config(["data.planned_prices=future"])


def test_trained_model_forecasts_the_lift_of_a_planned_promotion(tmp_path: Path) -> None:
    """Promotion days sell 8x in training; a promotion planned for horizon day 3 must lift that
    day's forecast, and only from the plan (the same model without it forecasts no lift)."""
    from inventory_scale.forecast import ShardData, forecast_shard, train_shard

    rng = np.random.default_rng(0)
    n_days, n_series, h = 240, 8, 7
    first = D(2023, 5, 1)
    dates = pl.date_range(first, first + dt.timedelta(days=n_days - 1), eager=True)
    cutoff = dates[-1]
    promo = rng.random((n_series, n_days)) < 0.1
    units = rng.poisson(np.where(promo, 24.0, 3.0)).astype(np.float32)
    skus = [f"S{i}" for i in range(n_series)]
    sales = pl.DataFrame(
        {
            S.SKU_ID: np.repeat(skus, n_days),
            S.WAREHOUSE_ID: "W1",
            S.DATE: np.tile(dates.to_numpy(), n_series),
            S.UNITS_SOLD: units.ravel(),
            S.PRICE: np.where(promo, 8.0, 10.0).ravel().astype(np.float32),
            S.ON_PROMOTION: promo.ravel(),
            S.IN_STOCK: True,
        }
    ).cast(dict(S.SALES.schema))
    series = pl.DataFrame({S.SKU_ID: skus, S.WAREHOUSE_ID: "W1"})
    products = pl.DataFrame({S.SKU_ID: skus, S.CATEGORY: "home"})
    cal = calendar(first, cutoff + dt.timedelta(days=h + 1))
    overrides = [
        f"data.horizon={h}",
        "data.context_length=28",
        "model.hidden_size=16",
        "model.num_layers=1",
        "model.batch_size=64",
        "model.last_year=false",
        "model.learning_rate=0.01",
        "trainer.max_epochs=6",
        "trainer.steps_per_epoch=60",
        "forecast.num_paths=100",
        "seed=5",
    ]
    cfg = load_config(overrides)
    data = ShardData(series, sales, products, WAREHOUSES, cal, S.empty_frame(S.INVENTORY))
    module, _, _ = train_shard(data, cfg, cutoff=cutoff, shard_id=0, ckpt_dir=str(tmp_path))
    day3 = cutoff + dt.timedelta(days=3)
    planned = series.with_columns(
        pl.lit(day3).alias(S.DATE), pl.lit(8.0).alias(S.PRICE), pl.lit(True).alias(S.ON_PROMOTION)
    )
    means = {}
    for name, rows in (("none", None), ("planned", planned.cast(dict(S.PLANNED_PRICES.schema)))):
        data.planned = rows
        frame, _ = forecast_shard(module, data, cfg, cutoff=cutoff, shard_id=0)
        means[name] = frame.group_by(S.DS).agg(pl.col(S.MEAN).mean()).sort(S.DS)[S.MEAN].to_numpy()
    lift = means["planned"][2] / means["none"][2]
    assert lift > 4.0, means  # true lift 8 (measured 7.2)
    others = np.delete(np.arange(h), 2)
    assert np.all(means["none"] < 5.0), means  # base demand 3
    np.testing.assert_allclose(means["planned"][others], means["none"][others], rtol=0.25)


def test_forecast_stage_reruns_on_a_new_plan_and_changes_only_the_planned_days(
    tiny_data: Path, tmp_path: Path
) -> None:
    from conftest import TINY, copy_data

    from inventory_scale.cli import main
    from inventory_scale.manifest import read_manifest

    root = copy_data(tiny_data, tmp_path / "data")
    args = [*TINY, f"data.root={root}", f"run.dir={tmp_path / 'run'}", "ray=inprocess"]
    cfg = load_config(args)
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    assert main(["train", *args]) == 0 and main(["forecast", *args]) == 0
    before = io.read_table(cfg.run.dir, spec).sort(spec.key)
    cutoff = before[S.CUTOFF][0]
    promoted = before.select(S.SKU_ID, S.WAREHOUSE_ID).unique().sort(S.SKU_ID, S.WAREHOUSE_ID).head(4)
    day = cutoff + dt.timedelta(days=3)
    table = promoted.with_columns(
        pl.lit(day).alias(S.DATE), pl.lit(0.5, pl.Float32).alias(S.PRICE), pl.lit(True).alias(S.ON_PROMOTION)
    )
    io.write_table(table, str(root), S.PLANNED_PRICES)
    assert main(["forecast", *args]) == 0
    manifest = read_manifest(io.join(cfg.run.dir, spec.name))
    assert manifest is not None and all(s["status"] == "ok" for s in manifest["shards"])  # not skipped
    after = io.read_table(cfg.run.dir, spec).sort(spec.key)
    assert after.height == before.height
    # same seed, same draws: every day before the planned one is unchanged for every series (the
    # protection-interval quantiles sum days up to the planned one, so they may change)
    daily = [S.SKU_ID, S.WAREHOUSE_ID, S.DS, S.MEAN, *(S.quantile_column(q) for q in cfg.forecast.quantiles)]
    early = pl.col(S.DS) < day
    assert after.filter(early).select(daily).equals(before.filter(early).select(daily))
    key = [S.SKU_ID, S.WAREHOUSE_ID]
    on_day = pl.col(S.DS) == day
    changed = (
        after.filter(on_day)
        .join(before.filter(on_day), on=key, suffix="_before")
        .filter(pl.col(S.MEAN) != pl.col(f"{S.MEAN}_before"))
        .select(key)
    )
    # the plan reaches the promoted series (3 steps of training barely learn the lift; the learned
    # lift is in test_trained_model_forecasts_the_lift_of_a_planned_promotion)
    assert promoted.join(changed, on=key, how="semi").height >= 1
