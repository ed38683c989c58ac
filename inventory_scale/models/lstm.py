"""DeepAR-style global LSTM: the network, its config and autoregressive sampling.

The network builds itself from an :class:`LSTMConfig` (nothing injected), so a checkpoint that
stores ``dataclasses.asdict(config)`` is enough to rebuild it. It reads the batch dict produced by
``data/windows.py``::

    past_target      [B, L]    raw demand of the L context periods (0 where padded)
    past_observed    [B, L]    1 = in-stock observation, 0 = padding / stockout / missing
    past_time_feat   [B, L, F] covariates of the context periods
    future_time_feat [B, H, F] covariates of the horizon periods
    future_target    [B, H]    (training / validation only)
    future_observed  [B, H]    (training / validation only)
    static_cat       [B, C]    int64 static categorical indices, 0 = unknown

Inputs at step t (predicting ``y_t``): ``y_{t-l} / scale`` for every lag ``l`` of ``lags`` (0
where ``y_{t-l}`` is unobserved, censored sales are not demand, or lies before the window), the
observed flag of ``t-1``, the time features of ``t``, one embedding per static categorical and
``log1p(scale)``, where ``scale = 1 + mean(past_target)`` over the observed context steps. Lags
at the season (7, 14, 28 for daily data) let the network copy the weekly shape instead of
re-learning it from the state. Training is teacher-forced over the ``L + H - 1`` steps
``t = 1 .. L+H-1``; forecasting encodes the context once and draws ``num_paths`` joint sample
paths for all series in one batched tensor, feeding each sampled value back::

    net = DeepARNet(LSTMConfig(num_time_features=12, cardinalities=[30, 5]))
    loss = net.loss(batch)                        # scalar, masked mean NLL
    paths = net.eval().sample(batch, 200, gen)    # [B, 200, H]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from inventory_scale.config import ModelConfig
from inventory_scale.errors import ConfigError, SchemaError
from inventory_scale.models.likelihood import HEADS, LikelihoodHead, Params, make_head

TRAIN_KEYS = ("future_target", "future_observed")

DEFAULT_LAGS: dict[str, list[int]] = {
    "1d": [1, 2, 3, 4, 5, 6, 7, 14, 21, 28],
    "1w": [1, 2, 3, 4, 8, 13, 26, 52],
    "1mo": [1, 2, 3, 6, 12],
}
"""``model.lags: null`` takes these by data frequency (those below ``L + H``)."""


def resolve_lags(lags: list[int] | None, freq: str, context_length: int, horizon: int) -> list[int]:
    """``lags`` or the frequency default, keeping those that fit in a window of ``L + H`` periods."""
    chosen = list(lags) if lags else DEFAULT_LAGS.get(freq, [1])
    return sorted({lag for lag in chosen if lag < context_length + horizon} | {1})


@dataclass
class LSTMConfig:
    """Everything needed to build a :class:`DeepARNet` (stored in checkpoints as a plain dict).

    Attributes:
        num_time_features: F, covariates per period.
        cardinalities: vocabulary size (index 0 = unknown included) of each static categorical.
        embedding_dim: width of every static embedding.
        hidden_size: LSTM width.
        num_layers: stacked LSTM layers.
        dropout: dropout between LSTM layers (ignored with one layer).
        likelihood: "negbin" or "tweedie".
        context_length: L, conditioning periods (>= 2).
        horizon: H, forecast periods.
        lags: demand lags fed at every step (each >= 1, below L + H), lag 1 first.
        static_real_dim: R, width of ``static_real`` (product-text covariates); 0 = none.
        text_dim: width of the learned linear projection of ``static_real`` (used when R > 0).
    """

    num_time_features: int
    cardinalities: list[int]
    embedding_dim: int = 8
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    likelihood: str = "negbin"
    context_length: int = 112
    horizon: int = 28
    lags: list[int] = field(default_factory=lambda: [1])
    static_real_dim: int = 0
    text_dim: int = 16

    def __post_init__(self) -> None:
        self.cardinalities = [int(c) for c in self.cardinalities]
        self.lags = sorted({int(lag) for lag in self.lags} | {1})
        checks = [
            (self.num_time_features >= 0, "num_time_features", "must be >= 0", self.num_time_features),
            (all(c > 0 for c in self.cardinalities), "cardinalities", "must all be > 0", self.cardinalities),
            (self.embedding_dim > 0, "embedding_dim", "must be > 0", self.embedding_dim),
            (self.hidden_size > 0, "hidden_size", "must be > 0", self.hidden_size),
            (self.num_layers > 0, "num_layers", "must be > 0", self.num_layers),
            (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)", self.dropout),
            (self.likelihood in HEADS, "likelihood", f"must be one of {sorted(HEADS)}", self.likelihood),
            (self.context_length >= 2, "context_length", "must be >= 2", self.context_length),
            (self.horizon > 0, "horizon", "must be > 0", self.horizon),
            (self.static_real_dim >= 0, "static_real_dim", "must be >= 0", self.static_real_dim),
            (self.text_dim > 0, "text_dim", "must be > 0", self.text_dim),
            (
                self.lags[-1] < self.context_length + self.horizon,
                "lags",
                "must all be below context_length + horizon",
                self.lags,
            ),
        ]
        for ok, key, rule, value in checks:
            if not ok:
                raise ConfigError(f"LSTM config key '{key}' {rule}, got {value!r}")

    @property
    def input_size(self) -> int:
        """Width of the per-step LSTM input: lags, lag flag, features, embeddings, text, log1p(scale)."""
        text = self.text_dim if self.static_real_dim > 0 else 0
        embedded = self.embedding_dim * len(self.cardinalities)
        return 2 + len(self.lags) + self.num_time_features + embedded + text

    @classmethod
    def from_model_config(
        cls,
        model: ModelConfig,
        *,
        num_time_features: int,
        cardinalities: list[int],
        context_length: int,
        horizon: int,
        freq: str = "1d",
        static_real_dim: int = 0,
    ) -> LSTMConfig:
        """Architecture from the ``model`` config group plus the data-dependent sizes."""
        return cls(
            num_time_features=num_time_features,
            cardinalities=list(cardinalities),
            embedding_dim=model.embedding_dim,
            hidden_size=model.hidden_size,
            num_layers=model.num_layers,
            dropout=model.dropout,
            likelihood=model.likelihood,
            context_length=context_length,
            horizon=horizon,
            lags=resolve_lags(model.lags, freq, context_length, horizon),
            static_real_dim=static_real_dim,
            text_dim=model.text_dim,
        )


class DeepARNet(nn.Module):
    """Autoregressive LSTM with a likelihood head (Salinas et al., DeepAR).

    Args:
        config: the architecture; kept as ``self.config``.
    """

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleList(nn.Embedding(c, config.embedding_dim) for c in config.cardinalities)
        self.text_proj = (
            nn.Linear(config.static_real_dim, config.text_dim) if config.static_real_dim > 0 else None
        )
        self.lstm = nn.LSTM(
            input_size=config.input_size,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.head: LikelihoodHead = make_head(config.likelihood, config.hidden_size)

    def check_batch(self, batch: dict[str, torch.Tensor], train: bool) -> None:
        """Check keys, shapes and dtypes of ``batch`` against the config (no device sync).

        Raises:
            SchemaError: naming the first missing key or the mismatching shape / dtype.
        """
        cfg = self.config
        keys = ["past_target", "past_observed", "past_time_feat", "future_time_feat", "static_cat"]
        missing = [k for k in [*keys, *(TRAIN_KEYS if train else ())] if k not in batch]
        if missing:
            raise SchemaError(f"batch lacks key(s) {missing}; it has {sorted(batch)}")
        b = batch["past_target"].shape[0]
        length, horizon, nfeat = cfg.context_length, cfg.horizon, cfg.num_time_features
        expected = {
            "past_target": (b, length),
            "past_observed": (b, length),
            "past_time_feat": (b, length, nfeat),
            "future_time_feat": (b, horizon, nfeat),
            "static_cat": (b, len(cfg.cardinalities)),
        }
        if train:
            expected.update(future_target=(b, horizon), future_observed=(b, horizon))
        for key, shape in expected.items():
            if tuple(batch[key].shape) != shape:
                raise SchemaError(f"batch['{key}'] has shape {tuple(batch[key].shape)}, expected {shape}")
        if batch["static_cat"].dtype not in (torch.int64, torch.int32):
            raise SchemaError(f"batch['static_cat'] must be int64, got {batch['static_cat'].dtype}")
        if cfg.static_real_dim > 0:
            real = batch.get("static_real")
            if real is None or tuple(real.shape) != (b, cfg.static_real_dim):
                got = None if real is None else tuple(real.shape)
                raise SchemaError(
                    f"batch['static_real'] must have shape {(b, cfg.static_real_dim)} (model.text_features), "
                    f"got {got}"
                )

    @staticmethod
    def scale(past_target: torch.Tensor, past_observed: torch.Tensor) -> torch.Tensor:
        """``1 + mean`` of the observed context demand, ``[B, 1]`` (1 for an all-unobserved context)."""
        observed = past_observed > 0  # [B, L]
        total = torch.where(observed, past_target, 0.0).sum(dim=1, keepdim=True)  # [B, 1]
        count = past_observed.sum(dim=1, keepdim=True).clamp(min=1.0)  # [B, 1]
        return 1.0 + total / count  # [B, 1]

    def _static(self, batch: dict[str, torch.Tensor], scale: torch.Tensor) -> torch.Tensor:
        """Static inputs ``[B, C*E (+ text_dim) + 1]``: embeddings, text projection, ``log1p(scale)``."""
        static_cat = batch["static_cat"]
        parts = [emb(static_cat[:, i]) for i, emb in enumerate(self.embeddings)]  # C x [B, E]
        if self.text_proj is not None:
            parts.append(self.text_proj(batch["static_real"].to(scale.dtype)))  # [B, text_dim]
        return torch.cat([*parts, torch.log1p(scale)], dim=-1)  # [B, S_in]

    def _lagged(self, values: torch.Tensor, observed: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
        """Unscaled lag matrix ``[B, t1 - t0, n_lags]``: ``y_{t-l}`` for ``t`` in ``[t0, t1)``.

        ``values`` / ``observed`` ``[B, T]`` hold the series from window position 0; positions
        before 0 and unobserved values give 0.
        """
        clean = torch.where(observed > 0, values, 0.0)  # [B, T]
        cols = []
        for lag in self.config.lags:
            lo, hi = max(t0 - lag, 0), max(t1 - lag, 0)
            part = clean[:, lo:hi]  # [B, hi - lo]
            pad = (t1 - t0) - part.shape[1]
            cols.append(torch.nn.functional.pad(part, (pad, 0)) if pad else part)
        return torch.stack(cols, dim=-1)  # [B, t1 - t0, n_lags]

    @staticmethod
    def _inputs(
        lags: torch.Tensor,
        lag_observed: torch.Tensor,
        feat: torch.Tensor,
        static: torch.Tensor,
        scale: torch.Tensor,
    ) -> torch.Tensor:
        """Per-step LSTM inputs ``[B, T, D]`` from lags ``[B, T, n_lags]``, the lag-1 flag
        ``[B, T]``, features ``[B, T, F]``, static inputs ``[B, S]`` and scale ``[B, 1]``."""
        steps = lags.shape[1]
        scaled = lags / scale.unsqueeze(-1)  # [B, T, n_lags]
        static_t = static.unsqueeze(1).expand(-1, steps, -1)  # [B, T, S]
        return torch.cat([scaled, lag_observed.unsqueeze(-1), feat, static_t], dim=-1)  # [B, T, D]

    def forward(self, batch: dict[str, torch.Tensor]) -> Params:
        """Teacher-forced distribution parameters for the targets ``y_1 .. y_{L+H-1}``.

        Args:
            batch: a training batch (with ``future_target`` and ``future_observed``).

        Returns:
            Head parameters in raw units, each ``[B, L+H-1]``.
        """
        self.check_batch(batch, train=True)
        target = torch.cat([batch["past_target"], batch["future_target"]], dim=1)  # [B, L+H]
        observed = torch.cat([batch["past_observed"], batch["future_observed"]], dim=1)  # [B, L+H]
        feat = torch.cat([batch["past_time_feat"], batch["future_time_feat"]], dim=1)  # [B, L+H, F]
        scale = self.scale(batch["past_target"], batch["past_observed"])  # [B, 1]
        static = self._static(batch, scale)  # [B, S]
        total = target.shape[1]
        lags = self._lagged(target, observed, 1, total)  # [B, L+H-1, n_lags]
        x = self._inputs(lags, observed[:, :-1], feat[:, 1:], static, scale)  # [B, L+H-1, D]
        hidden, _ = self.lstm(x)  # [B, L+H-1, hidden]
        return self.head(hidden, scale)  # each [B, L+H-1]

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Masked mean NLL over targets ``t = 1 .. L+H-1`` whose observed flag is 1 (scalar).

        Stockouts, missing days and padding (observed = 0) contribute nothing, whatever their target
        value (even NaN); a batch without any observed target gives 0.
        """
        params = self(batch)  # each [B, L+H-1]
        target = torch.cat([batch["past_target"], batch["future_target"]], dim=1)[:, 1:]  # [B, L+H-1]
        mask = torch.cat([batch["past_observed"], batch["future_observed"]], dim=1)[:, 1:]  # [B, L+H-1]
        observed = mask > 0  # [B, L+H-1]
        nll = self.head.nll(params, torch.where(observed, target, 0.0))  # [B, L+H-1]
        return torch.where(observed, nll, 0.0).sum() / mask.sum().clamp(min=1.0)

    @torch.no_grad()
    def sample(
        self, batch: dict[str, torch.Tensor], num_paths: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Joint sample paths of the H horizon periods, all series and paths in one tensor.

        Call ``.eval()`` first (dropout off). ``future_target`` is ignored when present. Draws are
        rounded to the nearest integer (a no-op for the negative binomial; the Tweedie is continuous)
        before being fed back.

        Args:
            batch: a batch (``future_*`` targets not needed) on the module's device.
            num_paths: S, paths per series.
            generator: random source on the module's device; same generator state, same paths.

        Returns:
            ``[B, S, H]`` non-negative integer demand (float tensor).
        """
        if num_paths <= 0:
            raise ConfigError(f"num_paths must be > 0, got {num_paths!r}")
        self.check_batch(batch, train=False)
        past, observed = batch["past_target"], batch["past_observed"]  # [B, L], [B, L]
        b, horizon = past.shape[0], self.config.horizon
        scale = self.scale(past, observed)  # [B, 1]
        static = self._static(batch, scale)  # [B, S_in]
        length = past.shape[1]
        lags = self._lagged(past, observed, 1, length)  # [B, L-1, n_lags]
        x = self._inputs(lags, observed[:, :-1], batch["past_time_feat"][:, 1:], static, scale)
        _, (h, c) = self.lstm(x)  # [layers, B, hidden] each, state after y_{L-2} -> y_{L-1}
        h = h.repeat_interleave(num_paths, dim=1)  # [layers, B*S, hidden]
        c = c.repeat_interleave(num_paths, dim=1)  # [layers, B*S, hidden]
        static = static.repeat_interleave(num_paths, dim=0)  # [B*S, S_in]
        scale = scale.repeat_interleave(num_paths, dim=0)  # [B*S, 1]
        feat = batch["future_time_feat"].repeat_interleave(num_paths, dim=0)  # [B*S, H, F]
        # history + horizon buffers per path; sampled values are demand (observed)
        values = torch.cat([past, past.new_zeros(b, horizon)], dim=1).repeat_interleave(num_paths, dim=0)
        seen = torch.cat([observed, observed.new_ones(b, horizon)], dim=1).repeat_interleave(num_paths, dim=0)
        for k in range(horizon):
            t = length + k  # predicting y_t from y_{t-l}
            lags = self._lagged(values, seen, t, t + 1)  # [B*S, 1, n_lags]
            x = self._inputs(lags, seen[:, t - 1 : t], feat[:, k : k + 1], static, scale)  # [B*S, 1, D]
            out, (h, c) = self.lstm(x, (h, c))  # [B*S, 1, hidden]
            params = self.head(out, scale)  # each [B*S, 1]
            draw = torch.round(self.head.sample(params, generator=generator)).clamp(min=0.0)  # [B*S, 1]
            values[:, t : t + 1] = draw
        return values[:, length:].reshape(b, num_paths, horizon)  # [B, S, H]
