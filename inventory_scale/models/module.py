"""Lightning wrapper of the DeepAR-style LSTM: optimisation, logging, checkpoint loading.

A :class:`ForecastModule` checkpoint carries everything needed to rebuild the model without Hydra
or pickled classes: ``hyper_parameters`` holds the :class:`LSTMConfig` as a plain dict, the
optimiser settings and the opaque, JSON-able ``scaler_state`` (vocabularies, feature names) that
the windows module needs to turn raw frames into batches again. Load one with::

    module = load_forecaster("ckpt/best-epoch=003-step=000400.ckpt")  # weights_only=True, CPU, eval
    paths = module.sample(batch, num_paths=200, generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as lightning
import torch
from torch.optim.lr_scheduler import LambdaLR

from inventory_scale.errors import ConfigError, SchemaError, StorageError
from inventory_scale.models.lstm import DeepARNet, LSTMConfig

log = logging.getLogger(__name__)

WARMUP_FRACTION = 0.05  # of max_steps, at most MAX_WARMUP_STEPS
MAX_WARMUP_STEPS = 100
STATIC_DROPOUT = 0.05  # probability that a training window sees a static index as unknown (0)
FINAL_LR_FRACTION = 0.1  # cosine decays the learning rate to this fraction, then holds it


def _require_json(value: Any, key: str) -> None:
    """Raise ConfigError unless ``value`` is made of JSON types only (checkpoint-safe)."""
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"'{key}' must hold plain dicts/lists/numbers/strings only: {e}") from e


def warmup_cosine(max_steps: int) -> tuple[int, Any]:
    """Linear warmup then cosine decay to ``FINAL_LR_FRACTION`` at ``max_steps`` (held after).

    Returns:
        ``(warmup_steps, factor)`` where ``factor(step)`` multiplies the base learning rate.
    """
    warmup = max(1, min(MAX_WARMUP_STEPS, int(WARMUP_FRACTION * max_steps)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        return FINAL_LR_FRACTION + (1.0 - FINAL_LR_FRACTION) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return warmup, factor


class ForecastModule(lightning.LightningModule):
    """Trains a :class:`DeepARNet` on the masked NLL.

    Args:
        net_config: ``dataclasses.asdict`` of an :class:`LSTMConfig`.
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW decoupled weight decay, applied to matrices and embeddings only.
        max_steps: optimiser steps the warmup + cosine schedule spans.
        scaler_state: opaque JSON-able dict stored with the checkpoint (vocabularies, feature names).

    Raises:
        ConfigError: for an invalid net config, bad numbers or a non-JSON-able ``scaler_state``.
    """

    def __init__(
        self,
        net_config: dict[str, Any],
        learning_rate: float,
        weight_decay: float,
        max_steps: int,
        scaler_state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        _require_json(net_config, "net_config")
        _require_json(scaler_state, "scaler_state")
        if learning_rate <= 0 or weight_decay < 0 or max_steps <= 0:
            raise ConfigError(
                f"need learning_rate > 0, weight_decay >= 0, max_steps > 0; "
                f"got {learning_rate!r}, {weight_decay!r}, {max_steps!r}"
            )
        try:
            config = LSTMConfig(**net_config)
        except TypeError as e:
            raise ConfigError(f"net_config does not match LSTMConfig: {e}") from e
        self.save_hyperparameters()
        self.net = DeepARNet(config)

    @property
    def net_config(self) -> LSTMConfig:
        """The architecture the network was built from."""
        return self.net.config

    @property
    def scaler_state(self) -> dict[str, Any] | None:
        """The opaque state stored with the checkpoint (``None`` when none was given)."""
        state: dict[str, Any] | None = self.hparams["scaler_state"]
        return state

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Teacher-forced head parameters, each ``[B, L+H-1]`` (see :meth:`DeepARNet.forward`)."""
        params: dict[str, torch.Tensor] = self.net(batch)
        return params

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Masked NLL of one batch, logged as ``train_loss`` (epoch mean).

        Each static index is replaced by 0 (unknown) with probability ``STATIC_DROPOUT``, so the
        unknown embedding is trained and serves SKUs, categories or warehouses never seen.
        """
        static = batch["static_cat"]  # [B, C]
        drop = torch.rand(static.shape, device=static.device) < STATIC_DROPOUT  # [B, C]
        loss = self.net.loss({**batch, "static_cat": torch.where(drop, 0, static)})
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=batch["past_target"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Masked NLL of one batch, logged as ``val_loss`` (epoch mean, monitored by callbacks)."""
        loss = self.net.loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=batch["past_target"].shape[0])
        return loss

    def configure_optimizers(self) -> Any:
        """AdamW (decay on tensors with >= 2 dims only) + per-step linear warmup and cosine decay."""
        decay = [p for p in self.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.requires_grad and p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams["weight_decay"]},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams["learning_rate"],
        )
        _, factor = warmup_cosine(int(self.hparams["max_steps"]))
        scheduler = LambdaLR(optimizer, lr_lambda=factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def sample(
        self, batch: dict[str, torch.Tensor], num_paths: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[B, S, H]`` sample paths with dropout off (see :meth:`DeepARNet.sample`)."""
        was_training = self.net.training
        self.net.eval()
        try:
            return self.net.sample(batch, num_paths, generator=generator)
        finally:
            self.net.train(was_training)


def load_forecaster(path: str | Path, map_location: str | torch.device = "cpu") -> ForecastModule:
    """Rebuild a :class:`ForecastModule` from a checkpoint with ``weights_only=True``, in eval mode.

    Args:
        path: checkpoint file (local path or fsspec URI).
        map_location: device the tensors are loaded onto.

    Raises:
        StorageError: the file does not exist or cannot be read.
        SchemaError: the checkpoint holds pickled objects other than tensors and plain containers,
            or its hyper-parameters do not describe a ForecastModule.
    """
    try:
        module = ForecastModule.load_from_checkpoint(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as e:
        raise StorageError(f"checkpoint {path} does not exist") from e
    except pickle.UnpicklingError as e:
        raise SchemaError(f"checkpoint {path} cannot be loaded with weights_only=True: {e}") from e
    except (KeyError, TypeError) as e:
        raise SchemaError(f"checkpoint {path} is not a ForecastModule checkpoint: {e!r}") from e
    log.info("loaded forecaster from %s (%s)", path, asdict(module.net_config))
    return module.eval()
