"""Seasonal-naive and seasonal-MA baselines: point forecasts, bootstrapped paths, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from inventory_scale.errors import ConfigError, DataQualityError, SchemaError
from inventory_scale.models.baselines import (
    baseline_paths,
    seasonal_ma_fit,
    seasonal_ma_paths,
    seasonal_naive_fit,
    seasonal_naive_paths,
    to_csr,
)

PATTERN = np.array([1.0, 5.0, 2.0, 0.0, 3.0, 8.0, 4.0])  # one week, m = 7
PERIODIC = np.tile(PATTERN, 6)  # ends on the pattern's last day


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize("name", ["seasonal_naive", "seasonal_ma"])
def test_periodic_series_gives_exact_zero_width_paths(name: str) -> None:
    paths = baseline_paths(name, [PERIODIC], horizon=10, season_length=7, num_paths=8, rng=_rng())
    expected = PATTERN[np.arange(10) % 7]  # the pattern continues
    assert paths.shape == (1, 8, 10) and paths.dtype == np.float32
    np.testing.assert_array_equal(paths, np.broadcast_to(expected, (1, 8, 10)))


def test_seasonal_naive_point_is_last_season_and_walk_accumulates_per_season() -> None:
    trend = PERIODIC + np.repeat(np.arange(6.0), 7)  # every seasonal difference is exactly +1
    fit = seasonal_naive_fit([trend], 10, 7)
    np.testing.assert_array_equal(fit.point[0], trend[-7:][np.arange(10) % 7])
    assert fit.valid.sum() == 35 and np.all(fit.residuals[fit.valid] == 1.0)
    paths = seasonal_naive_paths([trend], 10, 7, 5, _rng())
    # steps 1..7 add one resampled residual, steps 8..10 two (seasonal random walk)
    np.testing.assert_array_equal(paths[0] - fit.point[0], np.broadcast_to([1.0] * 7 + [2.0] * 3, (5, 10)))


def test_seasonal_naive_bootstrap_draws_the_series_own_residuals() -> None:
    y = np.tile([10.0, 20.0], 20)
    y[1::4] += 2.0  # seasonal differences (m = 2) alternate between +2 and -2 in phase 1, 0 in phase 0
    fit = seasonal_naive_fit([y], 2, 2, residual_seasons=8)
    assert set(fit.residuals[fit.valid].tolist()) == {0.0, 2.0, -2.0}
    paths = seasonal_naive_paths([y], 2, 2, 4000, _rng(3))  # h <= m: point + one residual
    steps = paths[0] - fit.point[0]
    assert set(np.unique(steps).tolist()) <= {0.0, 2.0, -2.0}
    shares = [(steps == v).mean() for v in (-2.0, 0.0, 2.0)]  # 4 / 8 / 4 of 16 residuals
    np.testing.assert_allclose(shares, [0.25, 0.5, 0.25], atol=0.02)


def test_seasonal_ma_hand_example_point_and_residuals() -> None:
    y = np.array([2.0, 4.0, 2.0, 4.0, 4.0, 8.0, 4.0, 8.0])  # m = 2
    fit = seasonal_ma_fit([y], 4, 2, level_seasons=2)
    # level = mean(4, 8, 4, 8) = 6; phase means 3 and 6 over 4 seasons, centre 4.5: index 2/3, 4/3
    np.testing.assert_allclose(fit.point[0], [4.0, 8.0, 4.0, 8.0])
    # fitted_t = mean of the 4 values before t x index[t mod 2], t = 4..7: 2, 14/3, 3, 20/3
    np.testing.assert_allclose(fit.residuals[fit.valid], [2.0, 10 / 3, 1.0, 4 / 3])
    paths = seasonal_ma_paths([y], 4, 2, 300, _rng(), level_seasons=2)
    extra = paths[0] - fit.point[0].astype(np.float32)
    np.testing.assert_allclose(np.unique(extra.round(4)), [1.0, 1.3333, 2.0, 3.3333], rtol=1e-4)


def test_seasonal_ma_level_follows_recent_seasons() -> None:
    old, new = np.tile(PATTERN, 6), 2.0 * np.tile(PATTERN, 4)  # demand doubled four weeks ago
    fit = seasonal_ma_fit([np.concatenate([old, new])], 7, 7, level_seasons=4, index_seasons=8)
    np.testing.assert_allclose(fit.point[0], 2.0 * PATTERN)  # index is scale-free


def test_short_empty_and_zero_series() -> None:
    history = [np.array([3.0, 1.0, 2.0]), np.zeros(0), np.zeros(20), PERIODIC]
    for fn in (seasonal_naive_paths, seasonal_ma_paths):
        paths = fn(history, 9, 7, 6, _rng())
        assert paths.shape == (4, 6, 9)
        assert np.isfinite(paths).all() and (paths >= 0).all()
        np.testing.assert_array_equal(paths[0], 2.0)  # shorter than a season: mean of what exists
        np.testing.assert_array_equal(paths[1], 0.0)  # empty: zeros
        np.testing.assert_array_equal(paths[2], 0.0)


def test_paths_non_negative_shaped_and_deterministic() -> None:
    rng = _rng(5)
    history = [rng.poisson(lam, size=size).astype(float) for lam, size in ((0.3, 90), (4.0, 50), (20.0, 13))]
    values, indptr = to_csr(history)
    for name in ("seasonal_naive", "seasonal_ma"):
        a = baseline_paths(name, history, horizon=28, season_length=7, num_paths=50, rng=_rng(1))
        b = baseline_paths(name, (values, indptr), horizon=28, season_length=7, num_paths=50, rng=_rng(1))
        c = baseline_paths(name, history, horizon=28, season_length=7, num_paths=50, rng=_rng(2))
        assert a.shape == (3, 50, 28) and (a >= 0).all() and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)  # list and CSR agree; same seed, same paths
        assert not np.array_equal(a, c)
        assert a[:, :, 0].std(axis=1).min() > 0  # noisy series get spread


def test_bad_inputs_raise_package_errors() -> None:
    with pytest.raises(ConfigError, match="unknown baseline"):
        baseline_paths("arima", [PERIODIC], horizon=3, season_length=7, num_paths=2, rng=_rng())
    with pytest.raises(ConfigError):
        seasonal_naive_paths([PERIODIC], 0, 7, 2, _rng())
    with pytest.raises(DataQualityError, match="NaN"):
        seasonal_ma_paths([np.array([1.0, np.nan])], 3, 7, 2, _rng())
    with pytest.raises(SchemaError, match="indptr"):
        seasonal_naive_paths((np.ones(4), np.array([0, 5])), 3, 2, 2, _rng())
