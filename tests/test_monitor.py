"""Monitoring: planted anomalies are flagged with the right reason; clean data stays under the
derived false-alarm bound; the CLI stage writes the exceptions table and re-forecasts only the
shards that hold a flagged series."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import TINY, copy_data
from scipy import stats

from inventory_scale import schema as S
from inventory_scale.cli import load_config, main
from inventory_scale.config import MonitorConfig
from inventory_scale.data import io
from inventory_scale.monitor import detect, run_probability, sign_test_threshold

CUTOFF = dt.date(2025, 3, 1)
H = 28
NEW_DAYS = 14
ASOF = CUTOFF + dt.timedelta(days=NEW_DAYS)
QS = (0.05, 0.1, 0.5, 0.9, 0.95)


def _forecasts(mu: np.ndarray) -> pl.DataFrame:
    """Poisson forecasts (exact quantiles) for series ``S{i}/W1``, flat mean ``mu[i]``, H days."""
    n = len(mu)
    sku = np.repeat([f"S{i:04d}" for i in range(n)], H)
    m = np.repeat(mu, H)
    cols: dict[str, object] = {
        S.SKU_ID: sku,
        S.WAREHOUSE_ID: ["W1"] * (n * H),
        S.CUTOFF: [CUTOFF] * (n * H),
        S.DS: [CUTOFF + dt.timedelta(days=d) for _ in range(n) for d in range(1, H + 1)],
        S.STEP: np.tile(np.arange(1, H + 1), n).astype(np.int32),
        S.MEAN: m,
    }
    for q in QS:
        cols[S.quantile_column(q)] = stats.poisson.ppf(q, m)
    pi = 14.0  # lead 7 + review 7
    cols[S.PI_STEPS] = np.full(n * H, pi, dtype=np.int32)
    cols[S.PI_MEAN] = m * pi
    cols[S.protection_quantile_column(0.9)] = stats.poisson.ppf(0.9, m * pi)
    return pl.DataFrame(cols)


def _actuals(mu: np.ndarray, rng: np.random.Generator) -> pl.DataFrame:
    """Clean actuals: independent draws from each series' forecast distribution, NEW_DAYS days."""
    n = len(mu)
    y = rng.poisson(np.repeat(mu, NEW_DAYS)).astype(np.float64)
    return pl.DataFrame(
        {
            S.SKU_ID: np.repeat([f"S{i:04d}" for i in range(n)], NEW_DAYS),
            S.WAREHOUSE_ID: ["W1"] * (n * NEW_DAYS),
            S.DATE: [CUTOFF + dt.timedelta(days=d) for _ in range(n) for d in range(1, NEW_DAYS + 1)],
            S.UNITS_SOLD: y,
            S.IN_STOCK: [True] * (n * NEW_DAYS),
        }
    )


def _stock(mu: np.ndarray) -> pl.DataFrame:
    """Comfortable stock: 30 days of cover, next receipt in 7 days, not perishable."""
    n = len(mu)
    return pl.DataFrame(
        {
            S.SKU_ID: [f"S{i:04d}" for i in range(n)],
            S.WAREHOUSE_ID: ["W1"] * n,
            S.ON_HAND: 30.0 * mu,
            "in_transit": np.zeros(n),
            "next_receipt": [ASOF + dt.timedelta(days=7)] * n,
            S.SHELF_LIFE_DAYS: pl.Series([None] * n, dtype=pl.Int32),
        }
    )


def test_false_alarm_helpers_match_simulation() -> None:
    rng = np.random.default_rng(0)
    sims = rng.random((200_000, NEW_DAYS)) < 0.1
    runs = np.zeros(len(sims), dtype=bool)
    streak = np.zeros(len(sims), dtype=int)
    for d in range(NEW_DAYS):
        streak = np.where(sims[:, d], streak + 1, 0)
        runs |= streak >= 3
    assert run_probability(NEW_DAYS, 3, 0.1) == pytest.approx(runs.mean(), abs=0.002)
    assert run_probability(3, 3, 0.1) == pytest.approx(0.001)
    assert run_probability(2, 3, 0.1) == 0.0
    c = sign_test_threshold(14, 0.01)
    assert c == 13  # 2 P(Bin(14, .5) >= 13) = 0.0018 <= 0.01 < 2 P(>= 12) = 0.0129
    assert sign_test_threshold(6, 0.01) is None  # 6 days cannot reach 1%


def test_clean_stream_stays_under_the_false_alarm_bound() -> None:
    rng = np.random.default_rng(42)
    n = 1500
    mu = rng.uniform(2.0, 60.0, n)
    cfg = MonitorConfig()
    exc = detect(_forecasts(mu), _actuals(mu, rng), _stock(mu), ASOF, cfg)
    # Per series: P(band run) + P(sign test) <= run_probability(14, 3, 0.1) + alpha (days independent,
    # P(outside the 90% band) <= 0.1 and P(above / below the median) <= 0.5 for discrete demand too).
    bound = run_probability(NEW_DAYS, cfg.band_days, 0.1) + cfg.shift_alpha
    assert bound == pytest.approx(0.0209, abs=1e-4)  # 0.0109 + 0.01
    flagged = exc.select(S.SKU_ID).n_unique()
    allowed = n * bound + 4 * math.sqrt(n * bound * (1 - bound))  # bound + 4 binomial sd
    assert flagged <= allowed, (flagged, allowed, exc[S.REASON].value_counts())
    assert set(exc[S.REASON].to_list()) <= {"band_breach", "level_shift"}  # comfortable stock: no stock flags


def test_planted_anomalies_are_flagged_with_their_reason() -> None:
    rng = np.random.default_rng(7)
    n = 40
    mu = np.full(n, 20.0)
    fc = _forecasts(mu)
    act = _actuals(mu, rng)
    q95 = float(stats.poisson.ppf(0.95, 20.0))
    planted_shift, planted_band, planted_low = "S0001", "S0002", "S0003"
    act = act.with_columns(
        pl.when(pl.col(S.SKU_ID) == planted_shift)  # demand +80% from the first new day
        .then(pl.Series(rng.poisson(36.0, act.height)).cast(pl.Float64))
        .when(  # 4 days in a row far above the band in the middle of the window
            (pl.col(S.SKU_ID) == planted_band)
            & pl.col(S.DATE).is_between(CUTOFF + dt.timedelta(days=5), CUTOFF + dt.timedelta(days=8))
        )
        .then(pl.lit(3 * q95))
        .when(  # 5 days at zero, in stock: below the band
            (pl.col(S.SKU_ID) == planted_low)
            & pl.col(S.DATE).is_between(CUTOFF + dt.timedelta(days=10), CUTOFF + dt.timedelta(days=14))
        )
        .then(pl.lit(0.0))
        .otherwise(pl.col(S.UNITS_SOLD))
        .alias(S.UNITS_SOLD)
    )
    stock = _stock(mu).with_columns(
        pl.when(pl.col(S.SKU_ID) == "S0004")  # 3 days of stock, next receipt in 10 days
        .then(60.0)
        .when(pl.col(S.SKU_ID) == "S0005")  # 40 days of stock, 10-day shelf life
        .then(800.0)
        .when(pl.col(S.SKU_ID) == "S0006")  # 300 days of stock
        .then(6000.0)
        .otherwise(pl.col(S.ON_HAND))
        .alias(S.ON_HAND),
        pl.when(pl.col(S.SKU_ID) == "S0004")
        .then(pl.lit(ASOF + dt.timedelta(days=10)))
        .otherwise(pl.col("next_receipt"))
        .alias("next_receipt"),
        pl.when(pl.col(S.SKU_ID) == "S0005").then(10).otherwise(None).cast(pl.Int32).alias(S.SHELF_LIFE_DAYS),
    )
    exc = detect(fc, act, stock, ASOF, MonitorConfig())
    assert exc.columns == S.EXCEPTIONS.columns
    got = {(r[S.SKU_ID], r[S.REASON]): r for r in exc.iter_rows(named=True)}

    shift = got[(planted_shift, "level_shift")]
    assert "demand up" in shift[S.DETAIL] and shift[S.SEVERITY] == "high"  # +80% >= 2 x 25%
    band = got[(planted_band, "band_breach")]
    assert "above the 90% band 4 days in a row" in band[S.DETAIL] and band[S.SEVERITY] == "medium"
    low = got[(planted_low, "band_breach")]
    assert "below the 90% band 5 days in a row" in low[S.DETAIL]
    out = got[("S0004", "stockout_risk")]
    assert out[S.SEVERITY] == "high" and "emergency order" in out[S.SUGGESTED_ACTION]
    # 60 on hand vs 10 x 20 = 200 expected before the receipt
    assert "on hand 60 vs 200.0 expected demand" in out[S.DETAIL]
    expiry = got[("S0005", "expiry_risk")]
    assert "about 600 units will outdate" in expiry[S.DETAIL] and expiry[S.SEVERITY] == "high"
    assert ("S0006", "excess_risk") in got and "300 days" in got[("S0006", "excess_risk")][S.DETAIL]
    assert ("S0005", "excess_risk") not in got  # 40 days of cover is not excess
    assert exc.filter(pl.col(S.SKU_ID) == "S0004")[S.NEW_DAYS].to_list() == [NEW_DAYS]
    assert exc[S.SEVERITY].to_list()[0] == "high"  # most severe first
    planted = {planted_shift, planted_band, planted_low, "S0004", "S0005", "S0006"}
    others = exc.filter(~pl.col(S.SKU_ID).is_in(list(planted)))
    assert others.height <= 3  # 34 clean series: expected false alarms < 1


def test_stockout_days_are_not_below_band_breaches() -> None:
    mu = np.full(1, 20.0)
    act = _actuals(mu, np.random.default_rng(1)).with_columns(
        pl.when(pl.col(S.DATE) > CUTOFF + dt.timedelta(days=7))
        .then(0.0)
        .otherwise(pl.col(S.UNITS_SOLD))
        .alias(S.UNITS_SOLD),
        (pl.col(S.DATE) <= CUTOFF + dt.timedelta(days=7)).alias(S.IN_STOCK),  # out of stock after day 7
    )
    exc = detect(_forecasts(mu), act, None, ASOF, MonitorConfig())
    assert "band_breach" not in exc[S.REASON].to_list() and "level_shift" not in exc[S.REASON].to_list()


def _plant_spike(root: Path, sku: str, wh: str, after: dt.date) -> None:
    """Multiply one series' sales after ``after`` by 10 (+20) in place, file by file."""
    for f in sorted((root / S.SALES.name).rglob("*.parquet")):
        part = pl.read_parquet(f)
        hit = (pl.col(S.SKU_ID) == sku) & (pl.col(S.DATE) > after)
        if f.parent.name == f"{S.WAREHOUSE_ID}={wh}" or (
            S.WAREHOUSE_ID in part.columns and wh in part[S.WAREHOUSE_ID]
        ):
            part = part.with_columns(
                pl.when(hit)
                .then(pl.col(S.UNITS_SOLD) * 10 + 20)
                .otherwise(pl.col(S.UNITS_SOLD))
                .alias(S.UNITS_SOLD),
                pl.when(hit).then(True).otherwise(pl.col(S.IN_STOCK)).alias(S.IN_STOCK),
            )
            part.write_parquet(f)


def test_monitor_stage_and_reforecast_of_affected_shards(tiny_data: Path, tmp_path: Path) -> None:
    root = copy_data(tiny_data, tmp_path / "data")
    last = io.read_table(str(root), S.SALES)[S.DATE].max()
    cutoff = last - dt.timedelta(days=10)  # type: ignore[operator]
    args = [*TINY, f"data.root={root}", f"run.dir={tmp_path / 'run'}", f"run.cutoff={cutoff}"]
    args += ["ray=inprocess", "ray.shard_size=8", "monitor.excess_cover_days=100000"]
    for stage in ("train", "forecast", "optimize"):
        assert main([stage, *args]) == 0
    _plant_spike(root, "SKU000003", "W001", cutoff)
    assert main(["monitor", *args, "monitor.reforecast=true"]) == 0
    cfg = load_config(args)
    exc = io.read_table(io.join(cfg.run.dir, "monitor"), S.EXCEPTIONS)
    spiked = exc.filter((pl.col(S.SKU_ID) == "SKU000003") & (pl.col(S.WAREHOUSE_ID) == "W001"))
    assert "band_breach" in spiked[S.REASON].to_list()
    assert exc[S.ASOF].unique().to_list() == [last] and exc[S.CUTOFF].unique().to_list() == [cutoff]
    shards = io.read_table(cfg.run.dir, S.SHARDS)
    flagged = shards.join(
        exc.select(S.SKU_ID, S.WAREHOUSE_ID).unique(), on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi"
    )
    sub = io.join(cfg.run.dir, "monitor", "reforecast")
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    refc = io.read_table(sub, spec)
    redone = shards.join(
        refc.select(S.SKU_ID, S.WAREHOUSE_ID).unique(), on=[S.SKU_ID, S.WAREHOUSE_ID], how="semi"
    )
    assert sorted(redone[S.SHARD].unique().to_list()) == sorted(flagged[S.SHARD].unique().to_list())
    assert redone.height == shards.filter(pl.col(S.SHARD).is_in(flagged[S.SHARD].unique().to_list())).height
    assert refc[S.CUTOFF].unique().to_list() == [last]  # forecast again from the new sales
    plans = io.read_table(sub, S.PLANS)
    assert plans.select(S.SKU_ID, S.WAREHOUSE_ID).n_unique() == redone.height
