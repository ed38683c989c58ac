"""Tests of the DeepAR-style LSTM: likelihood heads, network, Lightning module and checkpoints."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as lightning
import torch
from scipy import integrate, stats
from scipy.special import gammaln, logsumexp
from torch.utils.data import DataLoader, Dataset

from inventory_scale.config import ModelConfig, TrainerConfig
from inventory_scale.errors import ConfigError, SchemaError, StorageError
from inventory_scale.forecast import sample_chunked
from inventory_scale.models.fit import fit_forecaster
from inventory_scale.models.likelihood import NegativeBinomialHead, TweedieHead, make_head
from inventory_scale.models.lstm import DeepARNet, LSTMConfig, resolve_lags
from inventory_scale.models.module import ForecastModule, load_forecaster, warmup_cosine

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers:UserWarning",
    "ignore:.*number of training batches.*:UserWarning",
)

Batch = dict[str, torch.Tensor]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny models run fastest (and least disturbed by a busy machine) on one intra-op thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _f64(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def make_batch(cfg: LSTMConfig, b: int, seed: int, level: float = 4.0) -> Batch:
    """A random batch following the windows contract, with some padding and stockouts."""
    g = torch.Generator().manual_seed(seed)
    length, horizon, nfeat = cfg.context_length, cfg.horizon, cfg.num_time_features
    observed = (torch.rand(b, length + horizon, generator=g) > 0.2).float()  # [B, L+H]
    observed[0, :5] = 0.0  # left padding of the first series
    target = torch.poisson(torch.full((b, length + horizon), level), generator=g) * observed  # [B, L+H]
    cats = [torch.randint(0, c, (b, 1), generator=g) for c in cfg.cardinalities]
    return {
        "past_target": target[:, :length],
        "past_observed": observed[:, :length],
        "past_time_feat": torch.randn(b, length, nfeat, generator=g),
        "future_time_feat": torch.randn(b, horizon, nfeat, generator=g),
        "future_target": target[:, length:],
        "future_observed": observed[:, length:],
        "static_cat": torch.cat(cats, dim=1).long(),
    }


def weekly_batch(cfg: LSTMConfig, values: torch.Tensor) -> Batch:
    """Fully observed batch with day-of-week one-hot features; ``values`` is ``[B, L+H]``."""
    b, total = values.shape
    length = cfg.context_length
    dow = torch.nn.functional.one_hot(torch.arange(total) % 7, 7).float()  # [L+H, 7]
    feat = dow.expand(b, -1, -1)  # [B, L+H, 7]
    ones = torch.ones(b, total)
    return {
        "past_target": values[:, :length],
        "past_observed": ones[:, :length],
        "past_time_feat": feat[:, :length],
        "future_time_feat": feat[:, length:],
        "future_target": values[:, length:],
        "future_observed": ones[:, length:],
        "static_cat": torch.zeros(b, len(cfg.cardinalities), dtype=torch.long),
    }


def train(net: DeepARNet, batch: Batch, steps: int, lr: float = 1e-2) -> tuple[float, float]:
    """Adam on one fixed batch; returns (first loss, last loss)."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = net.loss(batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], float(np.mean(losses[-5:]))


# ---------------------------------------------------------------- likelihood heads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_negbin_nll_matches_scipy(dtype: torch.dtype) -> None:
    mu, alpha, y = np.meshgrid([0.05, 1.0, 7.5, 40.0, 900.0], [0.01, 0.3, 1.0, 5.0], [0, 1, 3, 10, 57, 400])
    params = {"mu": torch.tensor(mu, dtype=dtype), "alpha": torch.tensor(alpha, dtype=dtype)}
    got = NegativeBinomialHead(4).nll(params, torch.tensor(y, dtype=dtype)).double().numpy()
    m, a = params["mu"].double().numpy(), params["alpha"].double().numpy()  # the values the head saw
    expected = -stats.nbinom.logpmf(y, 1.0 / a, 1.0 / (1.0 + a * m))
    assert got.dtype == np.float64 and np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_negbin_sampling_moments() -> None:
    head = NegativeBinomialHead(4)
    mu = torch.tensor([0.5, 4.0, 30.0]).repeat_interleave(200_000)
    alpha = torch.tensor([0.2, 1.0, 0.05]).repeat_interleave(200_000)
    draws = head.sample({"mu": mu, "alpha": alpha}, torch.Generator().manual_seed(0)).view(3, -1)
    assert torch.equal(draws, draws.round()) and draws.min() >= 0
    m, a = mu.view(3, -1)[:, 0], alpha.view(3, -1)[:, 0]
    torch.testing.assert_close(draws.mean(1), m, rtol=0.02, atol=0.0)
    torch.testing.assert_close(draws.var(1), m + a * m**2, rtol=0.05, atol=0.0)


def test_negbin_scaling_is_deepar() -> None:
    head = NegativeBinomialHead(3)
    hidden = torch.randn(2, 5, 3)
    unit = head(hidden, torch.ones(2, 1))
    scaled = head(hidden, torch.tensor([[1.0], [16.0]]))
    torch.testing.assert_close(scaled["mu"][1], unit["mu"][1] * 16)
    torch.testing.assert_close(scaled["alpha"][1], unit["alpha"][1] / 4)
    torch.testing.assert_close(scaled["mu"][0], unit["mu"][0])


@pytest.mark.parametrize(("power", "mu", "phi"), [(1.5, 3.0, 1.2), (1.3, 0.4, 2.0), (1.7, 20.0, 0.5)])
def test_tweedie_sampling_moments_and_zero_mass(power: float, mu: float, phi: float) -> None:
    head = TweedieHead(4, power=power)
    n = 300_000
    params = {
        "mu": torch.full((n,), mu, dtype=torch.float64),
        "phi": torch.full((n,), phi, dtype=torch.float64),
    }
    draws = head.sample(params, torch.Generator().manual_seed(1))
    assert draws.min() >= 0
    assert abs(draws.mean().item() - mu) < 0.01 * mu
    assert abs(draws.var().item() - phi * mu**power) < 0.03 * phi * mu**power
    p0 = math.exp(-(mu ** (2 - power)) / (phi * (2 - power)))
    assert abs((draws == 0).double().mean().item() - p0) < 0.005


def _tweedie_reference(y: float, mu: float, phi: float, p: float) -> float:
    """Negative log-density by the full series over j = 1 .. 20,000 (numpy)."""
    lam, a, g = mu ** (2 - p) / (phi * (2 - p)), (2 - p) / (p - 1), phi * (p - 1) * mu ** (p - 1)
    if y == 0:
        return lam
    j = np.arange(1, 20_000)
    terms = j * math.log(lam) + j * a * math.log(y / g) - gammaln(j + 1) - gammaln(j * a)
    return -(-lam - y / g - math.log(y) + logsumexp(terms))


@pytest.mark.parametrize("power", [1.2, 1.5, 1.8])
def test_tweedie_nll_matches_full_series_and_normalises(power: float) -> None:
    head = TweedieHead(4, power=power)
    grid = [
        (mu, phi, y)
        for mu in (0.05, 0.7, 6.0, 250.0)
        for phi in (0.02, 0.5, 4.0)
        for y in (0, 0.3, 2, 17, 900)
    ]
    mu, phi, y = (torch.tensor(col, dtype=torch.float64) for col in zip(*grid, strict=True))
    got = head.nll({"mu": mu, "phi": phi}, y).numpy()
    expected = np.array([_tweedie_reference(yy, m, f, power) for m, f, yy in grid])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)

    def density(v: float) -> float:
        return math.exp(-head.nll({"mu": _f64(3.0), "phi": _f64(0.8)}, _f64(v)).item())

    mass, _ = integrate.quad(density, 1e-12, 120.0, limit=400)
    assert abs(density(0.0) + mass - 1.0) < 1e-6


def test_tweedie_nll_decreases_toward_true_params() -> None:
    head = TweedieHead(4)
    mu0, phi0, n = 5.0, 1.2, 30_000
    truth = {
        "mu": torch.full((n,), mu0, dtype=torch.float64),
        "phi": torch.full((n,), phi0, dtype=torch.float64),
    }
    y = head.sample(truth, torch.Generator().manual_seed(2))
    for side in (1.0, -0.5):
        losses = []
        for d in (1.0, 0.5, 0.25, 0.0):
            params = {"mu": truth["mu"] * (1 + side * d), "phi": truth["phi"] * (1 + side * d)}
            losses.append(head.nll(params, y).mean().item())
        assert all(np.isfinite(losses))
        assert losses == sorted(losses, reverse=True) and losses[-2] > losses[-1] + 1e-3


def test_make_head_registry() -> None:
    assert isinstance(make_head("negbin", 8), NegativeBinomialHead)
    tweedie = make_head("tweedie", 8)
    assert isinstance(tweedie, TweedieHead) and tweedie.power == 1.5
    params = tweedie(torch.randn(3, 8), torch.full((3,), 2.0))
    assert set(params) == {"mu", "phi"} and params["mu"].shape == (3,) and bool((params["phi"] > 0).all())
    with pytest.raises(ConfigError, match="likelihood"):
        make_head("gaussian", 8)
    with pytest.raises(ConfigError, match="power"):
        TweedieHead(8, power=2.0)


# ---------------------------------------------------------------- network

SMALL: dict[str, Any] = {
    "embedding_dim": 3,
    "hidden_size": 16,
    "num_layers": 2,
    "dropout": 0.0,
    "context_length": 14,
    "horizon": 5,
}


def test_config_and_batch_checks() -> None:
    with pytest.raises(ConfigError, match="context_length"):
        LSTMConfig(3, [4], context_length=1)
    with pytest.raises(ConfigError, match="likelihood"):
        LSTMConfig(3, [4], likelihood="poisson")
    cfg = LSTMConfig(3, [4, 2], **SMALL)
    assert cfg.input_size == 3 + 3 + 2 * 3
    net = DeepARNet(cfg)
    batch = make_batch(cfg, 4, seed=0)
    with pytest.raises(SchemaError, match="future_target"):
        net.loss({k: v for k, v in batch.items() if k != "future_target"})
    with pytest.raises(SchemaError, match="past_time_feat"):
        net.loss({**batch, "past_time_feat": batch["past_time_feat"][:, :, :2]})
    with pytest.raises(SchemaError, match="static_cat"):
        net.loss({**batch, "static_cat": batch["static_cat"].float()})
    params = net(batch)
    assert params["mu"].shape == (4, 14 + 5 - 1) and bool((params["alpha"] > 0).all())
    torch.testing.assert_close(
        DeepARNet.scale(torch.tensor([[2.0, 9.0, 4.0]]), torch.tensor([[1.0, 0.0, 1.0]])),
        torch.tensor([[4.0]]),
    )


@pytest.mark.parametrize("likelihood", ["negbin", "tweedie"])
def test_loss_ignores_unobserved_targets(likelihood: str) -> None:
    torch.manual_seed(0)
    cfg = LSTMConfig(3, [4, 2], likelihood=likelihood, **SMALL)
    net = DeepARNet(cfg)
    batch = make_batch(cfg, 6, seed=1)
    base = net.loss(batch)
    assert torch.isfinite(base)
    changed = dict(batch)
    for key, mask_key in (("past_target", "past_observed"), ("future_target", "future_observed")):
        changed[key] = torch.where(batch[mask_key] > 0, batch[key], torch.full_like(batch[key], 77.0))
    changed["future_target"] = torch.where(batch["future_observed"] > 0, batch["future_target"], math.nan)
    assert torch.equal(net.loss(changed), base)
    for key in ("past_target", "future_target"):
        observed = dict(batch)
        observed[key] = batch[key] + 5.0 * (batch[key.replace("target", "observed")] > 0)
        assert abs(net.loss(observed).item() - base.item()) > 1e-3


def test_lag_inputs_hand_computed_and_resolved_by_frequency() -> None:
    cfg = LSTMConfig(0, [2], **{**SMALL, "context_length": 4, "horizon": 2}, lags=[3, 1, 2])
    assert cfg.lags == [1, 2, 3] and cfg.input_size == 2 + 3 + 0 + 3
    net = DeepARNet(cfg)
    values = torch.tensor([[10.0, 11.0, 12.0, 13.0, 14.0, 15.0]])  # [B=1, L+H=6]
    observed = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0, 1.0]])  # day 2 censored: its lags read 0
    lags = net._lagged(values, observed, 1, 6)  # t = 1 .. 5, columns = lags 1, 2, 3
    assert lags[0].tolist() == [[10, 0, 0], [11, 10, 0], [0, 11, 10], [13, 0, 11], [14, 13, 0]]
    assert net._lagged(values, observed, 5, 6)[0].tolist() == [[14, 13, 0]]  # one sampling step
    assert resolve_lags(None, "1d", 56, 28) == [1, 2, 3, 4, 5, 6, 7, 14, 21, 28]
    assert resolve_lags(None, "1w", 20, 8) == [1, 2, 3, 4, 8, 13, 26]  # 52 does not fit in 28
    assert resolve_lags([7], "1d", 10, 2) == [1, 7]
    with pytest.raises(ConfigError, match="lags"):
        LSTMConfig(0, [2], context_length=4, horizon=2, lags=[6])


@pytest.mark.parametrize("likelihood", ["negbin", "tweedie"])
def test_overfits_one_batch(likelihood: str) -> None:
    torch.manual_seed(0)
    cfg = LSTMConfig(7, [2], likelihood=likelihood, **{**SMALL, "hidden_size": 32, "context_length": 21})
    net = DeepARNet(cfg)
    level = torch.tensor([10.0, 20.0, 30.0, 15.0, 25.0, 12.0, 18.0, 22.0]).unsqueeze(1)  # [B, 1]
    steps = torch.arange(cfg.context_length + cfg.horizon)
    values = level * ((steps + torch.arange(8).unsqueeze(1)) % 7 == 0).float()  # [B, L+H] intermittent
    first, last = train(net, weekly_batch(cfg, values), steps=200)
    assert last < 0.5 * first, (first, last)


def test_sample_shape_integers_determinism_and_constant_mean() -> None:
    torch.manual_seed(0)
    cfg = LSTMConfig(7, [2], **SMALL)
    net = DeepARNet(cfg)
    batch = make_batch(cfg, 3, seed=3)
    paths = net.eval().sample(batch, 50, torch.Generator().manual_seed(7))
    assert paths.shape == (3, 50, cfg.horizon) and paths.dtype == torch.float32
    assert bool((paths >= 0).all()) and torch.equal(paths, paths.round())
    assert torch.equal(paths, net.sample(batch, 50, torch.Generator().manual_seed(7)))
    assert not torch.equal(paths, net.sample(batch, 50, torch.Generator().manual_seed(8)))
    with pytest.raises(ConfigError):
        net.sample(batch, 0)

    constants = torch.tensor([3.0, 8.0, 15.0, 8.0]).unsqueeze(1)  # [B, 1]
    toy = weekly_batch(cfg, constants.expand(-1, cfg.context_length + cfg.horizon))
    train(net.train(), toy, steps=150)
    means = net.eval().sample(toy, 400, torch.Generator().manual_seed(0)).mean(dim=(1, 2))  # [B]
    torch.testing.assert_close(means, constants.squeeze(1), rtol=0.1, atol=0.0)


# ---------------------------------------------------------------- Lightning module and checkpoints


class ToyWindows(Dataset[Batch]):
    """Random windows following the batch contract (one window per item)."""

    def __init__(self, cfg: LSTMConfig, n: int, seed: int) -> None:
        self.batch = make_batch(cfg, n, seed)

    def __len__(self) -> int:
        return self.batch["past_target"].shape[0]

    def __getitem__(self, i: int) -> Batch:
        return {k: v[i] for k, v in self.batch.items()}


class ToyDataModule(lightning.LightningDataModule):
    def __init__(self, cfg: LSTMConfig) -> None:
        super().__init__()
        self.train_set, self.val_set = ToyWindows(cfg, 48, seed=10), ToyWindows(cfg, 16, seed=11)

    def train_dataloader(self) -> DataLoader[Batch]:
        return DataLoader(self.train_set, batch_size=8, shuffle=True)

    def val_dataloader(self) -> DataLoader[Batch]:
        return DataLoader(self.val_set, batch_size=8)


@pytest.fixture
def restore_determinism() -> Iterator[None]:
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


def test_fit_checkpoint_round_trip(tmp_path: Path, restore_determinism: None) -> None:
    model_cfg = ModelConfig(hidden_size=16, num_layers=2, embedding_dim=3, dropout=0.1, learning_rate=1e-2)
    trainer_cfg = TrainerConfig(max_epochs=2, steps_per_epoch=3, early_stopping_patience=1)
    net_cfg = LSTMConfig.from_model_config(
        model_cfg, num_time_features=3, cardinalities=[4, 2], context_length=14, horizon=5
    )
    scaler_state = {
        "vocab": {"category": ["<unknown>", "toys"], "warehouse": ["<unknown>", "w1"]},
        "features": ["dow"],
    }
    runs = [
        fit_forecaster(
            ToyDataModule(net_cfg), net_cfg, model_cfg, trainer_cfg, 5, str(tmp_path / f"r{i}"), scaler_state
        )
        for i in range(2)
    ]
    (module, path), (again, _) = runs
    assert Path(path).is_file() and Path(path).parent == tmp_path / "r0"
    assert not module.training and module.scaler_state == scaler_state and module.net_config == net_cfg
    for a, b in zip(module.parameters(), again.parameters(), strict=True):  # same seed, same weights
        assert torch.equal(a, b)

    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert _plain(raw["hyper_parameters"])
    assert raw["hyper_parameters"]["net_config"] == asdict(net_cfg)
    loaded = load_forecaster(path)
    assert isinstance(loaded, ForecastModule) and not loaded.training
    assert loaded.scaler_state == scaler_state
    state = loaded.state_dict()
    assert state.keys() == raw["state_dict"].keys()
    assert all(torch.equal(state[k], raw["state_dict"][k]) for k in state)
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())

    batch = make_batch(net_cfg, 4, seed=12)
    first = module.sample(batch, 20, torch.Generator().manual_seed(3))
    assert torch.equal(first, loaded.sample(batch, 20, torch.Generator().manual_seed(3)))
    assert first.shape == (4, 20, 5)

    with pytest.raises(StorageError):
        load_forecaster(tmp_path / "missing.ckpt")

    # chunked sampling (forecast.sample_rows): one series per chunk vs all at once; same shape, same
    # seed -> same paths, and the per-series mean agrees with the unchunked draw within noise
    many = make_batch(net_cfg, 7, seed=13)
    whole = sample_chunked(module, many, 300, 10**9, torch.Generator().manual_seed(4))
    parts = sample_chunked(module, many, 300, 300, torch.Generator().manual_seed(4))
    assert whole.shape == parts.shape == (7, 300, 5) and whole.dtype == np.float32
    assert np.array_equal(parts, sample_chunked(module, many, 300, 300, torch.Generator().manual_seed(4)))
    assert not np.array_equal(whole, parts)  # the chunks consume the stream in another order
    np.testing.assert_allclose(parts.mean(axis=(1, 2)), whole.mean(axis=(1, 2)), rtol=0.15, atol=0.3)


def test_module_rejects_bad_inputs_and_schedule_shape() -> None:
    cfg = asdict(LSTMConfig(3, [4], **SMALL))
    with pytest.raises(ConfigError, match="scaler_state"):
        ForecastModule(cfg, 1e-3, 0.0, 10, scaler_state={"x": np.float32(1.0)})
    with pytest.raises(ConfigError, match="LSTMConfig"):
        ForecastModule({**cfg, "heads": 2}, 1e-3, 0.0, 10)
    with pytest.raises(ConfigError, match=r"model\.hidden_size"):
        fit_forecaster(
            ToyDataModule(LSTMConfig(**cfg)), LSTMConfig(**cfg), ModelConfig(), TrainerConfig(), 0, "unused"
        )
    warmup, factor = warmup_cosine(1000)
    assert warmup == 50 and factor(0) == pytest.approx(1 / 50) and factor(49) == pytest.approx(1.0)
    assert factor(1000) == pytest.approx(0.1) and factor(5000) == pytest.approx(0.1)
    assert factor(525) == pytest.approx(0.55)
