"""Policy A/B backtest through the CLI: policy.parquet rows, paired differences, errors, extensions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import TINY, copy_data

from inventory_scale import schema as S
from inventory_scale.cli import EXIT_USAGE, main
from inventory_scale.config import PolicyConfig
from inventory_scale.data import io
from inventory_scale.data.listing import ended_series
from inventory_scale.evaluation.policy_backtest import paired_summary
from inventory_scale.evaluation.policy_forecasts import extend_paths, fit_horizon, hindsight_at
from inventory_scale.inventory.draws import KeyedDraws
from inventory_scale.inventory.policies import PathPolicy
from inventory_scale.inventory.simulate import simulate

POLICIES = ["newsvendor_seasonal_naive", "seasonal_naive_ss", "moving_average_ss", "oracle", "hindsight"]


def test_policy_backtest_writes_kpis_and_paired_summary(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    args = [
        *TINY,
        f"data.root={tiny_data}",
        f"run.dir={run}",
        "ray=inprocess",
        "backtest.cutoffs=2",
        "backtest.step=14",
        "backtest.models=[seasonal_naive]",
        f"backtest.policies=[{','.join(POLICIES)}]",
    ]
    capsys.readouterr()
    assert main(["backtest", *args]) == 0
    summary = json.loads(capsys.readouterr().out)["policy"]
    kpi = pl.read_parquet(run / "backtest" / "policy.parquet")
    assert kpi.columns == [S.POLICY, S.CUTOFF, S.WAREHOUSE_ID, S.KPI, S.VALUE]
    assert sorted(kpi[S.POLICY].unique()) == sorted(POLICIES)
    assert kpi[S.CUTOFF].n_unique() == 2
    assert set(kpi[S.WAREHOUSE_ID]) == {"W001", "W002", S.ALL_WAREHOUSES}
    wide = kpi.pivot(on=S.KPI, index=[S.POLICY, S.CUTOFF, S.WAREHOUSE_ID], values=S.VALUE)
    assert wide[S.FILL_RATE].is_between(0, 1).all() and (wide[S.SALES_UNITS] <= wide[S.DEMAND] + 1e-9).all()
    # every policy meets the same demand at each cutoff and warehouse
    assert (wide.group_by(S.CUTOFF, S.WAREHOUSE_ID).agg(pl.col(S.DEMAND).n_unique())[S.DEMAND] == 1).all()
    # totals add up over warehouses
    parts = (
        wide.filter(pl.col(S.WAREHOUSE_ID) != S.ALL_WAREHOUSES)
        .group_by(S.POLICY, S.CUTOFF)
        .agg(pl.col(S.PROFIT).sum())
    )
    total = wide.filter(pl.col(S.WAREHOUSE_ID) == S.ALL_WAREHOUSES).join(parts, on=[S.POLICY, S.CUTOFF])
    np.testing.assert_allclose(total[S.PROFIT], total[f"{S.PROFIT}_right"], rtol=1e-9)
    # paired comparison of the reference with each other policy over 2 cutoffs x 2 warehouses
    assert summary["reference"] == POLICIES[0]
    paired = {row["vs"]: row for row in summary["paired"]}
    assert set(paired) == set(POLICIES[1:])
    for row in paired.values():
        assert row["pairs"] == 4
        lo, hi = row["profit_diff_ci95"]
        assert lo <= row["profit_diff"] <= hi
        assert len(row["profit_lift_ci95_pct"]) == 2 and len(row["fill_rate"]) == 2
    # knowing the realised demand in advance earns more than the forecast-driven policies
    everywhere = wide.filter(pl.col(S.WAREHOUSE_ID) == S.ALL_WAREHOUSES)
    profit = dict(everywhere.group_by(S.POLICY).agg(pl.col(S.PROFIT).sum()).iter_rows())
    forecast_driven = ["newsvendor_seasonal_naive", "seasonal_naive_ss", "moving_average_ss"]
    assert profit["hindsight"] > max(profit[p] for p in forecast_driven)


def test_paired_summary_values() -> None:
    rows = []
    for cutoff, (a, b) in enumerate([(110.0, 100.0), (220.0, 200.0), (330.0, 300.0)]):
        for policy, profit in (("ours", a), ("base", b)):
            for kpi, value in (
                (S.PROFIT, profit),
                (S.SALES_UNITS, 9.0),
                (S.DEMAND, 10.0),
                (S.FILL_RATE, 0.9),
            ):
                rows.append((policy, cutoff, "W1", kpi, value))
    frame = pl.DataFrame(rows, schema=[S.POLICY, S.CUTOFF, S.WAREHOUSE_ID, S.KPI, S.VALUE], orient="row")
    (row,) = paired_summary(frame, "ours")
    assert row["vs"] == "base" and row["pairs"] == 3
    assert row["profit_diff"] == pytest.approx(20.0)  # mean of 10, 20, 30
    lo, hi = row["profit_diff_ci95"]
    half = 4.303 * 10.0 / np.sqrt(3)  # t(0.975, 2) x sd / sqrt(n)
    assert lo == pytest.approx(20 - half, abs=0.01) and hi == pytest.approx(20 + half, abs=0.01)
    assert row["profit_lift_pct"] == pytest.approx(10.0)
    assert row["profit_lift_ci95_pct"] == [pytest.approx(10.0), pytest.approx(10.0)]  # every pair +10%
    assert row["fill_rate"] == [0.9, 0.9] and row["fill_rate_diff_pp"] == 0


def test_unknown_policy_is_refused_before_any_output(tiny_data: Path, tmp_path: Path) -> None:
    args = [*TINY, f"data.root={tiny_data}", f"run.dir={tmp_path}", "backtest.models=[seasonal_naive]"]
    assert main(["backtest", *args, "backtest.policies=[no_such_policy]"]) == EXIT_USAGE
    assert not (tmp_path / "backtest").exists()


def test_fit_horizon_and_seasonal_extension() -> None:
    assert fit_horizon(48, 28, np.array([200, 300])) == 48  # history allows the full horizon
    assert fit_horizon(48, 28, np.array([90, 91, 92])) == 45  # half the median history
    assert fit_horizon(48, 28, np.array([20])) == 28  # never below the configured horizon
    rng = np.random.default_rng(0)
    paths = rng.poisson(5.0, (3, 50, 14)).astype(np.float64)
    paths[:, :, 7:] += 100.0  # the second week is distinct: the extension must reuse its phase
    out = extend_paths(paths, 30, 7, KeyedDraws.of((0, 17), np.arange(3)))
    assert out.shape == (3, 50, 30)
    np.testing.assert_array_equal(out[:, :, :14], paths)
    assert (out[:, :, 14:] >= 100).all()  # steps 14.. copy the last sampled season (steps 7..13)
    for t in range(14, 30):  # each value comes from the same phase of some path of the series
        src = 7 + (t - 14) % 7
        for i in range(3):
            assert set(out[i, :, t]) <= set(paths[i, :, src])
    assert not np.array_equal(out[:, :, 14:21], paths[:, :, 7:14])  # shuffled across paths


def test_reforecast_within_the_episode(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # forecasts again at episode day 7 of 14 (most series review weekly): the LSTM (trained once
    # per cutoff) and the baselines read the sales up to each origin; the oracle stays put
    policies = ["newsvendor", "seasonal_naive_ss", "oracle"]
    base = [
        *(a for a in TINY if not a.startswith("data.horizon=")), "data.horizon=14",
        f"data.root={tiny_data}", "ray=inprocess", "backtest.cutoffs=1",
        "backtest.models=[seasonal_naive]", f"backtest.policies=[{','.join(policies)}]",
    ]  # fmt: skip
    wide = {}
    for every in ("null", "7"):
        capsys.readouterr()
        assert (
            main(["backtest", *base, f"run.dir={tmp_path / every}", f"backtest.reforecast_every={every}"])
            == 0
        )
        days = [m for m in capsys.readouterr().err.splitlines() if "forecasts from" in m]
        assert len(days) == (1 if every == "null" else 2), days
        kpi = pl.read_parquet(tmp_path / every / "backtest" / "policy.parquet")
        wide[every] = kpi.pivot(on=S.KPI, index=[S.POLICY, S.WAREHOUSE_ID], values=S.VALUE).sort(
            S.POLICY, S.WAREHOUSE_ID
        )
    once, again = wide["null"], wide["7"]
    oracle = pl.col(S.POLICY) == "oracle"
    assert once.filter(oracle).equals(again.filter(oracle))
    np.testing.assert_allclose(once[S.DEMAND], again[S.DEMAND])  # the same demand for everyone
    for name in ("newsvendor", "seasonal_naive_ss"):  # later forecasts changed some orders
        a, b = (w.filter(pl.col(S.POLICY) == name) for w in (once, again))
        assert not np.allclose(a[S.PURCHASE_COST], b[S.PURCHASE_COST]), name


def test_ended_series_are_left_out_for_every_policy(tiny_data: Path, tmp_path: Path) -> None:
    root = copy_data(tiny_data, tmp_path / "data")
    sales = io.read_table(str(root), S.SALES)
    cutoff = sales[S.DATE].max() - dt.timedelta(days=7)  # the one cutoff of a 7-day episode
    gone = sales.select(S.SKU_ID, S.WAREHOUSE_ID).unique().sort(S.SKU_ID, S.WAREHOUSE_ID)[:1]
    stop = cutoff - dt.timedelta(days=40)
    cut = sales.join(gone, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi").filter(pl.col(S.DATE) <= stop)
    io.write_table(
        pl.concat([sales.join(gone, on=[S.SKU_ID, S.WAREHOUSE_ID], how="anti"), cut]), str(root), S.SALES
    )
    ended = ended_series(str(root), cutoff, 28)
    assert ended.select(S.SKU_ID, S.WAREHOUSE_ID).equals(gone) and ended["last_date"].to_list() == [stop]
    assert ended_series(str(root), cutoff, 41).is_empty() and ended_series(str(root), cutoff, None).is_empty()
    other = [w for w in sales[S.WAREHOUSE_ID].unique().to_list() if w != gone[S.WAREHOUSE_ID][0]]
    assert ended_series(str(root), cutoff, 28, warehouses=other).is_empty()
    policies = ["seasonal_naive_ss", "oracle"]
    base = [
        *TINY, f"data.root={root}", "ray=inprocess", "backtest.cutoffs=1",
        "backtest.models=[seasonal_naive]", f"backtest.policies=[{','.join(policies)}]",
    ]  # fmt: skip
    for days, present in (("28", False), ("null", True)):
        run = tmp_path / f"run-{days}"
        assert main(["backtest", *base, f"run.dir={run}", f"policy.ended_after_days={days}"]) == 0
        series = io.read_table(str(run / "backtest"), S.POLICY_SERIES)
        assert sorted(series[S.POLICY].unique()) == sorted(policies)
        hit = series.join(gone, on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi")
        assert hit.height == (2 if present else 0)
        assert series[S.CUTOFF].unique().to_list() == [cutoff]


def test_hindsight_sells_all_demand_after_the_first_lead_time_and_leaves_nothing() -> None:
    from test_inventory_simulate import limits, make_items

    days, lead = 21, 2
    rng = np.random.default_rng(3)
    demand = rng.poisson([[2.0], [6.0], [11.0]], (3, days)).astype(np.float64)
    f = hindsight_at(demand, days + 6, num_paths=4)
    assert f.paths is not None and f.paths.shape == (3, 4, days + 6)
    np.testing.assert_array_equal(f.paths[:, 2, :days], demand)
    assert not f.paths[:, :, days:].any()  # nothing is demanded after the episode
    items = make_items(3, review=1)  # deterministic 2-day lead time, no budget or capacity limit
    policy = PathPolicy("hindsight", f.paths, items, limits(), PolicyConfig(), seed=1)
    res = simulate(items, limits(), demand, policy, start_on_hand=[0.0] * 3, lead_times=[[lead] * days] * 3)
    np.testing.assert_allclose(res.sales[lead:], demand[:, lead:].T)  # every unit from day 2 on
    assert not res.sales[:lead].any()  # nothing on hand before the first receipt
    np.testing.assert_allclose(res.on_hand[-1], 0.0)  # and nothing left at the end
    np.testing.assert_allclose(res.orders.sum(axis=0), demand[:, lead:].sum(axis=1))
