"""Scales, metric kernels, evaluate_forecasts / aggregate_metrics and the oracle, against hand values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from scipy import stats

from inventory_scale import schema as S
from inventory_scale.errors import ConfigError, DataQualityError, SchemaError
from inventory_scale.evaluation import scores
from inventory_scale.evaluation.metrics import (
    METRICS,
    N_SERIES,
    aggregate_metrics,
    evaluate_forecasts,
    oracle_forecasts,
)
from inventory_scale.evaluation.scales import series_scales
from inventory_scale.forecast_frame import summarize_paths

D0 = dt.date(2024, 1, 1)
Y = np.array([[1.0, 2.0, 3.0]])
F = np.array([[1.0, 1.0, 4.0]])


def _history(series: dict[str, list[float]], price: float | list[float] = 1.0) -> pl.DataFrame:
    frames = []
    for sku, values in series.items():
        n = len(values)
        frames.append(
            pl.DataFrame(
                {
                    S.SKU_ID: [sku] * n,
                    S.WAREHOUSE_ID: ["W1"] * n,
                    S.DATE: [D0 + dt.timedelta(days=i) for i in range(n)],
                    S.UNITS_SOLD: values,
                    S.PRICE: price[:n] if isinstance(price, list) else [price] * n,
                },
                schema_overrides={S.UNITS_SOLD: pl.Float64, S.PRICE: pl.Float64},
            )
        )
    return pl.concat(frames)


def _normal_crps(mu: float, sigma: float, y: float) -> float:
    z = (y - mu) / sigma
    return sigma * (z * (2 * stats.norm.cdf(z) - 1) + 2 * stats.norm.pdf(z) - 1 / np.sqrt(np.pi))


# --- kernels ----------------------------------------------------------------------------------


def test_point_kernels_match_hand_values() -> None:
    # errors f - y = [0, -1, 1]: mean |e| = 2/3, mean e^2 = 2/3, sum e = 0
    assert scores.mase(Y, F, np.array([0.5]))[0] == pytest.approx(4 / 3)
    assert scores.rmsse(Y, F, np.array([2.0]))[0] == pytest.approx(np.sqrt(1 / 3))
    assert scores.bias(Y, F)[0] == pytest.approx(0.0)
    b = scores.bias(np.array([[2.0, 2.0], [0.0, 0.0]]), np.array([[3.0, 3.0], [1.0, 0.0]]))
    assert b[0] == pytest.approx(0.5) and np.isnan(b[1])  # no demand: undefined, not inf


def test_zero_scale_raises_instead_of_inf() -> None:
    with pytest.raises(DataQualityError, match="zero"):
        scores.mase(Y, F, np.array([0.0]))
    with pytest.raises(SchemaError):
        scores.rmsse(Y, F[:, :2], np.array([1.0]))


def test_scaled_pinball_hand_value_and_monotone() -> None:
    q = np.array([[[1.0, 1.0, 4.0], [2.0, 2.0, 2.0]]])  # levels 0.5, 0.9
    # q0.5: y - q = [0, 1, -1] -> 0.5 |e| mean 1/3; q0.9: y - q = [-1, 0, 1] -> [0.1, 0, 0.9] mean 1/3
    assert scores.scaled_pinball(Y, q, [0.5, 0.9], np.array([0.5]))[0] == pytest.approx((1 / 3) / 0.5)
    assert scores.scaled_pinball(Y, np.stack([Y, Y], axis=1), [0.5, 0.9], np.array([1.0]))[0] == 0.0
    # quantiles of the true distribution beat the same quantiles shifted away, more so the further
    rng = np.random.default_rng(0)
    y = rng.poisson(5.0, size=(1, 4000)).astype(float)
    levels = [0.1, 0.5, 0.9]
    true_q = np.broadcast_to(stats.poisson.ppf(levels, 5.0)[None, :, None], (1, 3, 4000))
    losses = [scores.scaled_pinball(y, true_q + d, levels, np.array([1.0]))[0] for d in (0, 2, 4)]
    assert losses[0] < losses[1] < losses[2]
    with pytest.raises(ConfigError):
        scores.scaled_pinball(Y, q, [0.9, 0.5], np.array([1.0]))


def test_quantile_crps_weights_and_hand_value() -> None:
    np.testing.assert_allclose(scores.quantile_weights([0.1, 0.5, 0.9]), [0.3, 0.4, 0.3])
    q = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 4.0], [2.0, 2.0, 2.0]]])  # levels 0.1, 0.5, 0.9
    # pinball: q0.1 = mean(0.1 * [1, 2, 3]) = 0.2; q0.5 = 1/3; q0.9 = 1/3
    expected = 2 * (0.3 * 0.2 + 0.4 / 3 + 0.3 / 3) / 2.0
    assert scores.quantile_crps(Y, q, [0.1, 0.5, 0.9], np.array([2.0]))[0] == pytest.approx(expected)


def test_crps_point_mass_equals_absolute_error_over_scale() -> None:
    samples = np.full((1, 50, 2), 2.0)
    y = np.array([[1.0, 4.0]])
    assert scores.crps_from_samples(samples, y, np.array([0.5]))[0] == pytest.approx((1 + 2) / 2 / 0.5)


def test_crps_sorted_formula_matches_brute_force_and_normal_closed_form() -> None:
    rng = np.random.default_rng(1)
    small = rng.gamma(2.0, size=(3, 40, 4))
    y = rng.gamma(2.0, size=(3, 4))
    pair = np.abs(small[:, :, None, :] - small[:, None, :, :]).mean(axis=(1, 2))  # [N, H]
    brute = (np.abs(small - y[:, None, :]).mean(axis=1) - 0.5 * pair).mean(axis=1)
    np.testing.assert_allclose(scores.crps_from_samples(small, y), brute, rtol=1e-12)

    mu, sigma, ys = 3.0, 2.0, np.array([[1.0, 3.0, 4.5, 8.0]])
    draws = rng.normal(mu, sigma, size=(1, 40_000, 4))
    closed = np.mean([_normal_crps(mu, sigma, v) for v in ys[0]])
    assert scores.crps_from_samples(draws, ys)[0] == pytest.approx(closed, rel=0.01)
    levels = np.linspace(0.01, 0.99, 99)  # the quantile approximation is close on a fine grid
    qs = np.broadcast_to(stats.norm.ppf(levels, mu, sigma)[None, :, None], (1, 99, 4))
    assert scores.quantile_crps(ys, qs, levels, np.array([1.0]))[0] == pytest.approx(closed, rel=0.03)


def test_interval_coverage_counts_closed_bounds() -> None:
    y = np.array([[1.0, 5.0, 3.0, 0.0]])
    lo = np.array([[0.0, 0.0, 3.0, 1.0]])
    hi = np.array([[2.0, 4.0, 3.0, 2.0]])
    assert scores.interval_coverage(y, lo, hi)[0] == 0.5  # in, above, on both bounds, below


# --- scales -----------------------------------------------------------------------------------


def test_pit_coverage_hand_values() -> None:
    # samples {0, 0, 1, 1}: y = 1 has PIT on [0.5, 1], y = 0 on [0, 0.5], y = 2 at 1 (outside)
    samples = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    y = np.array([[1.0, 0.0, 2.0]])
    assert scores.pit_coverage(samples, y, 0.8)[0] == pytest.approx((0.4 / 0.5 + 0.4 / 0.5 + 0.0) / 3)
    assert scores.pit_coverage(samples, y, 0.9)[0] == pytest.approx((0.45 / 0.5 + 0.45 / 0.5) / 3)
    # distinct (continuous) samples: the indicator F(y) in [a, b]
    cont = np.arange(100, dtype=np.float64)[None, :, None]
    assert scores.pit_coverage(cont, np.array([[50.5]]), 0.8)[0] == 1.0
    assert scores.pit_coverage(cont, np.array([[95.5]]), 0.8)[0] == 0.0
    with pytest.raises(SchemaError):
        scores.pit_coverage(samples, y[:, :2], 0.8)
    with pytest.raises(ConfigError):
        scores.pit_coverage(samples, y, 1.0)


def test_pit_coverage_is_nominal_for_calibrated_counts_where_closed_intervals_are_not() -> None:
    rng = np.random.default_rng(0)
    lam = rng.choice([0.3, 2.0], size=(200, 1))  # intermittent and low-count series
    y = rng.poisson(lam, size=(200, 28)).astype(np.float64)
    samples = rng.poisson(lam[:, :, None], size=(200, 2000, 28)).astype(np.float32)
    q = np.quantile(samples, [0.1, 0.9], axis=1)  # [2, N, H]
    closed = scores.interval_coverage(y, q[0], q[1]).mean()
    pit = scores.pit_coverage(samples, y, 0.8).mean()
    assert closed > 0.9  # zeros and ones at the end-points count as covered
    assert pit == pytest.approx(0.8, abs=0.015)


def test_series_scales_hand_values_and_m5_start() -> None:
    # m = 2: |y_t - y_{t-2}| = 2, 4, 1, 1 -> 2.0; from the first sale [2, 4, 1, 3]: diffs 2, -3, 2
    out = series_scales(_history({"A": [0, 0, 2, 4, 1, 3]}), season_length=2)
    row = out.row(0, named=True)
    assert row[S.SCALE_MAE] == pytest.approx(2.0)
    assert row[S.SCALE_MSE] == pytest.approx(17 / 3)  # leading zeros do not count
    assert row[S.VELOCITY_CLASS] == "smooth"  # ADI 4/4, CV2 = 1.25 / 2.5^2 = 0.2


def test_wrmsse_weight_is_dollar_sales_of_last_28_periods() -> None:
    n = 40
    prices = [float(i) for i in range(n)]
    hist = _history({"A": [2.0] * n, "B": [1.0] * n}, price=prices)
    out = series_scales(hist, season_length=7).sort(S.SKU_ID)
    last28 = sum(prices[n - 28 :])
    np.testing.assert_allclose(out.get_column(S.WEIGHT).to_numpy(), [2 * last28, last28])
    short = series_scales(hist, season_length=7, weight_window=3)
    assert short.get_column(S.WEIGHT).to_list() == pytest.approx([2 * (37 + 38 + 39), 37 + 38 + 39])


def test_scale_guard_replaces_zero_scales() -> None:
    hist = _history({"A": [0, 0, 2, 4, 1, 3], "B": [5.0] * 6, "C": [0.0] * 6})
    out = series_scales(hist, season_length=2).sort(S.SKU_ID)
    # B (constant) and C (never sold) get the mean of the positive scales: A's
    assert out.get_column(S.SCALE_MAE).to_list() == pytest.approx([2.0, 2.0, 2.0])
    assert out.get_column(S.SCALE_MSE).to_list() == pytest.approx([17 / 3] * 3)
    alone = series_scales(_history({"C": [0.0] * 6}), season_length=2)
    assert alone.row(0, named=True)[S.SCALE_MAE] == 1.0  # nothing positive to borrow: 1.0


def test_velocity_classes_of_constructed_series() -> None:
    series = {
        "smooth": [5, 6, 5, 4, 5, 6, 5, 5, 6],  # every period, low CV
        "erratic": [1, 20, 1, 20, 1, 20, 1, 20, 1],  # every period, CV2 ~ 1.0
        "intermittent": [0, 0, 5, 0, 0, 5, 0, 0, 5],  # ADI 7/3 from the first sale, CV2 0
        "lumpy": [0, 1, 0, 0, 30, 0, 0, 2, 0],  # ADI 8/3, CV2 high
        "zero": [0] * 9,
    }
    out = series_scales(_history({k: [float(v) for v in vs] for k, vs in series.items()}), season_length=3)
    got = dict(zip(out.get_column(S.SKU_ID), out.get_column(S.VELOCITY_CLASS), strict=True))
    assert got == {k: k for k in series}


def test_series_scales_rejects_bad_input() -> None:
    with pytest.raises(SchemaError, match="price"):
        series_scales(_history({"A": [1.0, 2.0]}).drop(S.PRICE), season_length=1)
    with pytest.raises(DataQualityError):
        series_scales(_history({"A": [1.0, None]}), season_length=1)  # type: ignore[list-item]
    with pytest.raises(ConfigError):
        series_scales(_history({"A": [1.0, 2.0]}), season_length=0)


# --- evaluate_forecasts / aggregate_metrics / oracle -----------------------------------------


def _case() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, np.ndarray]:
    """Two series, H = 3, point-mass paths f; actuals y; scales set by hand."""
    f = np.array([[1.0, 1.0, 4.0], [2.0, 2.0, 2.0]])
    y = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    paths = np.repeat(f[:, None, :], 5, axis=1)  # [2, 5, 3]
    series = pl.DataFrame({S.SKU_ID: ["A", "B"], S.WAREHOUSE_ID: ["W1", "W2"]})
    dates = [D0 + dt.timedelta(days=i) for i in range(1, 4)]
    qs = [0.05, 0.1, 0.5, 0.9, 0.95]
    fc = summarize_paths(paths, series, D0, dates, qs, np.array([2, 2]), [0.5])
    actuals = pl.DataFrame(
        {
            S.SKU_ID: ["A"] * 3 + ["B"] * 3,
            S.WAREHOUSE_ID: ["W1"] * 3 + ["W2"] * 3,
            S.DATE: dates * 2,
            S.UNITS_SOLD: y.reshape(-1),
        }
    )
    scales = pl.DataFrame(
        {
            S.SKU_ID: ["B", "A"],  # order differs from the forecasts on purpose
            S.WAREHOUSE_ID: ["W2", "W1"],
            S.SCALE_MAE: [1.0, 0.5],
            S.SCALE_MSE: [4.0, 2.0],
            S.WEIGHT: [10.0, 30.0],
            S.VELOCITY_CLASS: ["lumpy", "smooth"],
        }
    )
    return fc, actuals, scales, paths


def test_evaluate_forecasts_hand_values() -> None:
    fc, actuals, scales, paths = _case()
    out = evaluate_forecasts(
        fc, actuals, scales, quantiles=[0.05, 0.1, 0.5, 0.9, 0.95], samples=paths, model="m"
    )
    assert out.columns == [S.MODEL, S.SKU_ID, S.WAREHOUSE_ID, S.CUTOFF, S.VELOCITY_CLASS, S.WEIGHT, *METRICS]
    a, b = out.rows(named=True)
    assert (a[S.SKU_ID], a[S.VELOCITY_CLASS], a[S.WEIGHT]) == ("A", "smooth", 30.0)
    assert a[S.MASE] == pytest.approx((2 / 3) / 0.5)
    assert a[S.RMSSE] == pytest.approx(np.sqrt((2 / 3) / 2.0))
    assert a[S.CRPS] == pytest.approx((2 / 3) / 0.5)  # point mass: |f - y| / scale
    # every quantile equals f: pinball mean over levels of mean_h rho_u(y - f), e = y - f = [0, 1, -1]
    rho = np.mean([(u * 1 + (1 - u) * 1) / 3 for u in (0.05, 0.1, 0.5, 0.9, 0.95)])
    assert a[S.SPL] == pytest.approx(rho / 0.5)
    assert a[S.COVERAGE_80] == pytest.approx(1 / 3) and a[S.COVERAGE_90] == pytest.approx(1 / 3)
    # point mass at f: step 1 (y = f) has PIT uniform on [0, 1], steps 2 and 3 lie outside
    assert a[S.PIT_COVERAGE_80] == pytest.approx(0.8 / 3) and a[S.PIT_COVERAGE_90] == pytest.approx(0.9 / 3)
    assert a[S.BIAS] == pytest.approx(0.0)
    assert b[S.MASE] == pytest.approx(2.0) and b[S.RMSSE] == pytest.approx(1.0)
    assert b[S.BIAS] is None  # no demand over the horizon
    assert b[S.COVERAGE_90] == 0.0


def test_evaluate_forecasts_nulls_for_missing_quantiles_and_quantile_crps() -> None:
    fc, actuals, scales, _ = _case()
    out = evaluate_forecasts(
        fc.drop(S.quantile_column(0.05)), actuals, scales, quantiles=[0.1, 0.5, 0.9], model="m"
    )
    a = out.row(0, named=True)
    assert a[S.COVERAGE_90] is None and a[S.COVERAGE_80] == pytest.approx(1 / 3)
    assert a[S.PIT_COVERAGE_80] is None and a[S.PIT_COVERAGE_90] is None  # needs sample paths
    assert a[S.CRPS] == pytest.approx((2 / 3) / 0.5)  # all quantiles equal f: weights sum to 1
    none = evaluate_forecasts(fc, actuals, scales, quantiles=[0.05, 0.2], model="m")
    assert none.get_column(S.SPL).null_count() == 2 and none.get_column(S.CRPS).null_count() == 2


def test_evaluate_forecasts_rejects_gaps() -> None:
    fc, actuals, scales, paths = _case()
    with pytest.raises(DataQualityError, match="no actual"):
        evaluate_forecasts(fc, actuals.head(5), scales, quantiles=[0.5], model="m")
    with pytest.raises(DataQualityError, match="scales lack"):
        evaluate_forecasts(fc, actuals, scales.head(1), quantiles=[0.5], model="m")
    with pytest.raises(SchemaError, match="samples"):
        evaluate_forecasts(fc, actuals, scales, quantiles=[0.5], samples=paths[:, :, :2], model="m")
    empty = evaluate_forecasts(fc.head(0), actuals, scales, quantiles=[0.5], model="m")
    assert empty.height == 0 and empty.columns == [
        S.MODEL,
        S.SKU_ID,
        S.WAREHOUSE_ID,
        S.CUTOFF,
        S.VELOCITY_CLASS,
        S.WEIGHT,
        *METRICS,
    ]


def test_aggregate_metrics_group_rows_and_wrmsse() -> None:
    per = pl.DataFrame(
        {
            S.MODEL: ["m"] * 3,
            S.SKU_ID: ["A", "B", "C"],
            S.WAREHOUSE_ID: ["W1", "W1", "W2"],
            S.VELOCITY_CLASS: ["smooth", "lumpy", "smooth"],
            S.WEIGHT: [1.0, 3.0, 0.0],
            S.MASE: [1.0, 2.0, 6.0],
            S.RMSSE: [2.0, 4.0, 5.0],
            S.BIAS: [0.5, None, 0.1],
        }
    )
    products = pl.DataFrame({S.SKU_ID: ["A", "B", "C"], S.CATEGORY: ["toys", "toys", "food"]})
    out = aggregate_metrics(per, products)
    assert out.columns == [S.MODEL, S.GROUP, S.GROUP_VALUE, S.METRIC, S.VALUE]

    def value(group: str, group_value: str, metric: str) -> float | None:
        hit = out.filter(
            (pl.col(S.GROUP) == group) & (pl.col(S.GROUP_VALUE) == group_value) & (pl.col(S.METRIC) == metric)
        )
        assert hit.height == 1
        return hit.item(0, S.VALUE)

    assert value("all", "all", S.MASE) == pytest.approx(3.0)
    assert value("all", "all", S.BIAS) == pytest.approx(0.3)  # null ignored
    assert value("all", "all", S.WRMSSE) == pytest.approx((1 * 2 + 3 * 4) / 4)
    assert value("all", "all", N_SERIES) == 3
    assert value(S.CATEGORY, "toys", S.MASE) == pytest.approx(1.5)
    assert value(S.CATEGORY, "food", S.WRMSSE) is None  # weights sum to zero
    assert value(S.WAREHOUSE_ID, "W2", S.RMSSE) == pytest.approx(5.0)
    assert value(S.VELOCITY_CLASS, "smooth", S.MASE) == pytest.approx(3.5)
    groups = out.select(S.GROUP, S.GROUP_VALUE).unique(maintain_order=True).rows()
    assert groups == [
        ("all", "all"),
        (S.CATEGORY, "food"),
        (S.CATEGORY, "toys"),
        (S.WAREHOUSE_ID, "W1"),
        (S.WAREHOUSE_ID, "W2"),
        (S.VELOCITY_CLASS, "lumpy"),
        (S.VELOCITY_CLASS, "smooth"),
    ]
    assert S.CATEGORY not in aggregate_metrics(per).get_column(S.GROUP).to_list()


def test_oracle_forecasts_poisson_quantiles_and_scoring() -> None:
    dates = [D0 + dt.timedelta(days=i) for i in range(5)]
    truth = pl.DataFrame(
        {
            S.SKU_ID: ["A"] * 5,
            S.WAREHOUSE_ID: ["W1"] * 5,
            S.DATE: dates,
            S.DEMAND_MEAN: [9.0, 9.0, 2.0, 2.0, 0.0],
            S.DEMAND: [9.0, 9.0, 2.0, 2.0, 0.0],
        }
    )
    cutoff = dates[1]
    fc = oracle_forecasts(truth, cutoff=cutoff, horizon=3, quantiles=[0.1, 0.5, 0.9])
    assert fc.get_column(S.STEP).to_list() == [1, 2, 3]
    assert fc.get_column(S.MEAN).to_list() == [2.0, 2.0, 0.0]
    # Poisson(2): P(0) = .135 >= .1, P(<=2) = .677 >= .5, P(<=4) = .947 >= .9
    assert fc.row(0, named=True)[S.quantile_column(0.1)] == 0.0
    assert fc.row(0, named=True)[S.quantile_column(0.5)] == 2.0
    assert fc.row(0, named=True)[S.quantile_column(0.9)] == 4.0
    actuals = truth.select(S.SKU_ID, S.WAREHOUSE_ID, S.DATE, pl.col(S.DEMAND).alias(S.UNITS_SOLD))
    scales = series_scales(actuals.with_columns(pl.lit(1.0).alias(S.PRICE)), season_length=1, cutoff=cutoff)
    out = evaluate_forecasts(fc, actuals, scales, quantiles=[0.1, 0.5, 0.9], model="oracle")
    assert out.row(0, named=True)[S.MASE] == 0.0 and out.row(0, named=True)[S.COVERAGE_80] == 1.0
    with pytest.raises(DataQualityError, match="fewer than 4"):
        oracle_forecasts(truth, cutoff=cutoff, horizon=4, quantiles=[0.5])
