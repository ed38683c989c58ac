"""Train one global forecaster with Lightning and return its best checkpoint.

``fit_forecaster`` is the whole training stage for one shard: seed, build a Trainer from the
``trainer`` config group (early stopping and best-checkpoint selection on ``val_loss``), fit, and
reload the best weights from disk with ``weights_only=True``::

    net_config = LSTMConfig.from_model_config(cfg.model, num_time_features=F, cardinalities=cards,
                                              context_length=112, horizon=28)
    module, ckpt = fit_forecaster(datamodule, net_config, cfg.model, cfg.trainer, seed, "ckpt/shard-0007")

The datamodule must provide ``train_dataloader`` and ``val_dataloader`` yielding the batch dicts
described in ``models/lstm.py``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytorch_lightning as lightning
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from inventory_scale.config import ModelConfig, TrainerConfig
from inventory_scale.errors import ConfigError, InventoryScaleError
from inventory_scale.models.lstm import LSTMConfig
from inventory_scale.models.module import ForecastModule, load_forecaster
from inventory_scale.models.progress import EpochProgress

log = logging.getLogger(__name__)

ARCHITECTURE_KEYS = ("likelihood", "hidden_size", "num_layers", "dropout", "embedding_dim")


def _check_consistent(net_config: LSTMConfig, model_cfg: ModelConfig) -> None:
    """Raise ConfigError when ``net_config`` contradicts the ``model`` config group."""
    clashes = [
        f"model.{key}={getattr(model_cfg, key)!r} vs net {getattr(net_config, key)!r}"
        for key in ARCHITECTURE_KEYS
        if getattr(model_cfg, key) != getattr(net_config, key)
    ]
    if clashes:
        raise ConfigError(f"LSTM config disagrees with the model config: {', '.join(clashes)}")


def build_trainer(
    trainer_cfg: TrainerConfig,
    ckpt_dir: str,
    log_dir: str | None = None,
    label: str = "model",
    callbacks: Sequence[lightning.Callback] = (),
) -> tuple[lightning.Trainer, ModelCheckpoint]:
    """A Trainer with early stopping and best-only checkpointing on ``val_loss``.

    Args:
        trainer_cfg: the ``trainer`` config group.
        ckpt_dir: directory the best checkpoint is written to.
        log_dir: write CSV metrics there when given; no logger otherwise.
        label: names the fit in the epoch progress lines (``"shard 3"``).
        callbacks: extra Lightning callbacks, run after checkpointing and early stopping.

    Returns:
        ``(trainer, checkpoint_callback)``.
    """
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best-{epoch:03d}-{step:06d}", monitor="val_loss", mode="min", save_top_k=1
    )
    early = EarlyStopping(monitor="val_loss", mode="min", patience=trainer_cfg.early_stopping_patience)
    trainer = lightning.Trainer(
        accelerator=trainer_cfg.accelerator,
        devices=trainer_cfg.devices,
        precision=trainer_cfg.precision,  # type: ignore[arg-type]
        max_epochs=trainer_cfg.max_epochs,
        limit_train_batches=trainer_cfg.steps_per_epoch,
        gradient_clip_val=trainer_cfg.gradient_clip_val,
        deterministic=trainer_cfg.deterministic,
        callbacks=[checkpoint, early, EpochProgress(label, trainer_cfg.max_epochs), *callbacks],
        default_root_dir=ckpt_dir,
        logger=CSVLogger(log_dir, name="forecaster") if log_dir is not None else False,
        log_every_n_steps=min(50, trainer_cfg.steps_per_epoch),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return trainer, checkpoint


def fit_forecaster(
    datamodule: lightning.LightningDataModule,
    net_config: LSTMConfig,
    model_cfg: ModelConfig,
    trainer_cfg: TrainerConfig,
    seed: int,
    ckpt_dir: str,
    scaler_state: dict[str, Any] | None = None,
    *,
    log_dir: str | None = None,
    stats: dict[str, Any] | None = None,
    label: str = "model",
    callbacks: Sequence[lightning.Callback] = (),
) -> tuple[ForecastModule, str]:
    """Seed, train and return the best model (reloaded from its checkpoint) and the checkpoint path.

    Args:
        datamodule: yields training and validation batch dicts.
        net_config: architecture (its architecture fields must agree with ``model_cfg``).
        model_cfg: the ``model`` config group (learning rate, weight decay).
        trainer_cfg: the ``trainer`` config group.
        seed: global seed (derive it from the run seed and the shard id).
        ckpt_dir: where the best checkpoint goes.
        scaler_state: opaque JSON-able dict stored in the checkpoint.
        log_dir: optional directory for CSV metrics.
        stats: when given, filled with ``steps``, ``fit_seconds``, ``windows_per_s`` (training
            windows per second of ``trainer.fit``), ``val_loss``, ``epochs`` and ``device``.
        label: names the fit in the epoch progress lines (``"shard 3"``).
        callbacks: extra Lightning callbacks (the sweep's per-epoch scoring hook).

    Returns:
        ``(module, checkpoint_path)``; the module is on CPU in eval mode.

    Raises:
        ConfigError: ``net_config`` contradicts ``model_cfg`` or ``scaler_state`` is not JSON-able.
        InventoryScaleError: no finite ``val_loss`` was reached (training diverged or never validated).
    """
    _check_consistent(net_config, model_cfg)
    lightning.seed_everything(seed, workers=True, verbose=False)
    module = ForecastModule(
        net_config=asdict(net_config),
        learning_rate=model_cfg.learning_rate,
        weight_decay=model_cfg.weight_decay,
        max_steps=trainer_cfg.max_epochs * trainer_cfg.steps_per_epoch,
        scaler_state=scaler_state,
    )
    Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
    trainer, checkpoint = build_trainer(trainer_cfg, ckpt_dir, log_dir, label, callbacks)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=datamodule)
    seconds = time.perf_counter() - t0
    best, score = checkpoint.best_model_path, checkpoint.best_model_score
    if not best or score is None or not math.isfinite(float(score)):
        raise InventoryScaleError(
            f"training in {ckpt_dir} reached no finite val_loss (best score {score}, "
            f"{trainer.current_epoch} epochs); check the data for extreme values"
        )
    log.info("best checkpoint %s (val_loss %.4f, %d epochs)", best, float(score), trainer.current_epoch)
    if stats is not None:
        batch = int(getattr(datamodule, "batch_size", 0) or 0)
        stats.update(
            steps=int(trainer.global_step),
            fit_seconds=round(seconds, 3),
            windows_per_s=round(trainer.global_step * batch / seconds, 1) if seconds > 0 else 0.0,
            val_loss=round(float(score), 5),
            epochs=int(trainer.current_epoch),
            device=str(trainer.strategy.root_device),
        )
    return load_forecaster(best), best
