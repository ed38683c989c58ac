"""The optimize stage end to end on a generated marketplace: plans rows, limits, packs, reasons."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import TINY, TINY_SERIES, copy_data

from inventory_scale import schema as S
from inventory_scale.cli import load_config
from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.distributed.tasks import paths_frame
from inventory_scale.errors import DataQualityError
from inventory_scale.forecast import baseline_shard, last_sales_date, list_series, load_shard
from inventory_scale.inventory.optimize import run_optimize


def _config(data: Path, run: Path, *extra: str) -> Config:
    return load_config([*TINY, f"data.root={data}", f"run.dir={run}", "ray=inprocess", *extra])


def _forecast(cfg: Config, keep_paths: bool) -> dt.date:
    """Seasonal-naive forecasts (and paths) into ``run.dir``: the optimizer's input, no training."""
    cutoff = last_sales_date(cfg.data.root)
    keys = list_series(cfg.data.root, cutoff).select(S.SKU_ID, S.WAREHOUSE_ID)
    data = load_shard(cfg.data.root, keys, cutoff)
    frame, paths = baseline_shard("seasonal_naive", data, cfg, cutoff=cutoff, shard_id=0)
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    io.write_table(frame, cfg.run.dir, spec)
    if keep_paths:
        io.write_table(paths_frame(frame, paths), cfg.run.dir, S.PATHS)
    return cutoff


@pytest.fixture(scope="module")
def tight(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny marketplace with case packs, MOQs and budgets tight enough to bind."""
    root = copy_data(tiny_data, tmp_path_factory.mktemp("tight") / "data")
    products = io.read_table(str(root), S.PRODUCTS)
    rng = np.random.default_rng(0)
    pack = rng.choice([1, 6, 12], products.height)
    products = products.with_columns(
        pl.Series(S.CASE_PACK, pack).cast(products.schema[S.CASE_PACK]),
        pl.Series(S.MOQ, pack * rng.choice([1, 2], products.height)).cast(products.schema[S.MOQ]),
    )
    io.write_table(products, str(root), S.PRODUCTS)
    wh = io.read_table(str(root), S.WAREHOUSES).sort(S.WAREHOUSE_ID)
    # first warehouse: a small budget; second: a small capacity
    budget = [200.0, 1e12]
    io.write_table(
        wh.with_columns(
            pl.Series(S.BUDGET, budget[: wh.height]).cast(wh.schema[S.BUDGET]),
            pl.Series(S.CAPACITY_M3, [1e12, 0.0][: wh.height]).cast(wh.schema[S.CAPACITY_M3]),
        ),
        str(root),
        S.WAREHOUSES,
    )
    return root


@pytest.mark.parametrize("keep_paths", [True, False])
def test_optimize_plans_respect_limits_packs_and_moq(tight: Path, tmp_path: Path, keep_paths: bool) -> None:
    cfg = _config(tight, tmp_path / "run")
    cutoff = _forecast(cfg, keep_paths)
    summary = run_optimize(cfg)
    assert summary["series"] == TINY_SERIES and summary["cutoff"] == cutoff.isoformat()
    plans = io.read_table(cfg.run.dir, S.PLANS)
    assert plans.columns == list(S.PLANS.schema.names())
    assert plans.height == TINY_SERIES and (plans[S.CUTOFF] == cutoff).all()
    products = io.read_table(cfg.data.root, S.PRODUCTS)
    wh = io.read_table(cfg.data.root, S.WAREHOUSES)
    j = plans.join(products, on=S.SKU_ID).join(wh, on=S.WAREHOUSE_ID)
    # per warehouse: spend within the budget; capacity 0 on the second warehouse means no orders there
    spend = j.group_by(S.WAREHOUSE_ID).agg(
        (pl.col(S.ORDER_QTY) * pl.col(S.UNIT_COST)).sum().alias("spend"), pl.col(S.BUDGET).first()
    )
    assert (spend["spend"] <= spend[S.BUDGET] * (1 + 1e-9)).all()
    first, second = sorted(wh[S.WAREHOUSE_ID].to_list())
    by_wh = dict(spend.select(S.WAREHOUSE_ID, "spend").rows())
    assert 0 < by_wh[first] <= 200.0
    assert (j.filter(pl.col(S.WAREHOUSE_ID) == second)[S.ORDER_QTY] == 0).all()
    # packs and MOQ
    q, pack, moq = j[S.ORDER_QTY].to_numpy(), j[S.CASE_PACK].to_numpy(), j[S.MOQ].to_numpy()
    np.testing.assert_allclose(q % pack, 0.0)
    assert ((q == 0) | (q >= moq)).all()
    # binding names and reasons: budget binds in the first warehouse, capacity in the second
    assert set(plans[S.BINDING_CONSTRAINT]) <= set(S.BINDING_VALUES)
    assert (plans[S.REASON].str.len_chars() > 10).all()
    names = dict(
        plans.group_by(S.WAREHOUSE_ID).agg(pl.col(S.BINDING_CONSTRAINT).unique()).rows()  # type: ignore[arg-type]
    )
    assert "budget" in names[first] and "capacity" in names[second]
    assert "capacity" not in names[first] and "budget" not in names[second]
    assert plans.filter(pl.col(S.BINDING_CONSTRAINT) == "budget")[S.REASON].str.contains("budget").all()
    # order-up-to = position + order, and expected fill rates are probabilities
    np.testing.assert_allclose(plans[S.ORDER_UP_TO], plans[S.INVENTORY_POSITION] + plans[S.ORDER_QTY])
    assert plans[S.EXPECTED_FILL_RATE].is_between(0, 1).all()


def test_product_without_cost_names_file_column_and_keys(tiny_data: Path, tmp_path: Path) -> None:
    root = copy_data(tiny_data, tmp_path / "data")
    products = io.read_table(str(root), S.PRODUCTS).sort(S.SKU_ID)
    bad = products[S.SKU_ID][0]
    products = products.with_columns(
        pl.when(pl.col(S.SKU_ID) == bad).then(None).otherwise(pl.col(S.UNIT_COST)).alias(S.UNIT_COST)
    )
    io.write_table(products, str(root), S.PRODUCTS)
    cfg = _config(root, tmp_path / "run")
    _forecast(cfg, keep_paths=True)
    with pytest.raises(DataQualityError) as err:
        run_optimize(cfg)
    msg = str(err.value)
    assert "products" in msg and S.UNIT_COST in msg and bad in msg, msg


def test_ended_series_order_nothing(tiny_data: Path, tmp_path: Path) -> None:
    # forecasts made while every series ran; then two series' sales rows stop 40 days before the
    # cutoff (delisted): with policy.ended_after_days=28 they order nothing and say why
    root = copy_data(tiny_data, tmp_path / "data")
    cfg = _config(root, tmp_path / "run")
    cutoff = _forecast(cfg, keep_paths=True)
    plain = _config(root, tmp_path / "plain", "policy.ended_after_days=null")
    _forecast(plain, keep_paths=True)
    probe = _config(root, tmp_path / "probe", "policy.ended_after_days=null")
    _forecast(probe, keep_paths=True)
    run_optimize(probe)  # the two largest orders while every series runs
    busy = io.read_table(probe.run.dir, S.PLANS).sort(S.ORDER_QTY)[-2:]
    sales = io.read_table(str(root), S.SALES)
    stop = cutoff - dt.timedelta(days=40)
    gone = busy.select(S.SKU_ID, S.WAREHOUSE_ID)
    kept = sales.join(gone, on=[S.SKU_ID, S.WAREHOUSE_ID], how="anti")
    cut = sales.join(gone, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi").filter(pl.col(S.DATE) <= stop)
    io.write_table(pl.concat([kept, cut]), str(root), S.SALES)
    run_optimize(cfg)
    run_optimize(plain)
    with_rule = io.read_table(cfg.run.dir, S.PLANS).join(gone, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
    without = io.read_table(plain.run.dir, S.PLANS).join(gone, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
    assert with_rule.height == 2 and without.height == 2
    assert (without[S.ORDER_QTY] > 0).all()  # the forecast still says they sell
    assert (with_rule[S.ORDER_QTY] == 0).all()
    assert with_rule[S.REASON].str.starts_with(f"ended: no sales row since {stop}").all()
    others = io.read_table(cfg.run.dir, S.PLANS).join(gone, on=[S.SKU_ID, S.WAREHOUSE_ID], how="anti")
    assert not others[S.REASON].str.starts_with("ended").any()
