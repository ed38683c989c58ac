"""Epoch progress of one Lightning fit as plain log lines (throttled), for every shard's training.

Lightning's own bar is off (``enable_progress_bar=False``): shard fits run inside Ray workers
(no terminal) or under the stage's rich bar (``distributed/progress.py``), where a second live
display would fight the first. :class:`EpochProgress` logs instead, at most one line every
``interval_s`` seconds plus the last epoch::

    train shard 3: epoch 4/20, train_loss 1.2841, val_loss 1.3102, 12.4s, eta 49s

On a terminal the CLI's rich log handler prints these lines above the stage's bar.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as lightning

log = logging.getLogger(__name__)


class EpochProgress(lightning.Callback):
    """Log epoch, losses, elapsed time and ETA of a fit.

    Args:
        label: what is being trained (``"shard 3"``).
        max_epochs: the epoch budget (early stopping may end the fit sooner).
        interval_s: minimum seconds between two lines (the last epoch is always logged).
    """

    def __init__(self, label: str, max_epochs: int, interval_s: float = 10.0) -> None:
        self.label = label
        self.max_epochs = max_epochs
        self.interval_s = interval_s
        self.lines = 0
        self._t0 = self._last = time.perf_counter()

    def on_train_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        self._t0 = self._last = time.perf_counter()
        if trainer is not None:
            log.info(
                "train %s: up to %d epochs of %s steps on %s",
                self.label,
                self.max_epochs,
                trainer.limit_train_batches,
                trainer.strategy.root_device,
            )

    def on_validation_epoch_end(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule
    ) -> None:
        if trainer.sanity_checking:
            return
        now = time.perf_counter()
        epoch = trainer.current_epoch + 1
        last = epoch >= self.max_epochs or bool(trainer.should_stop)
        if not last and now - self._last < self.interval_s:
            return
        self._last = now
        self.lines += 1
        elapsed = now - self._t0
        eta = elapsed / epoch * (self.max_epochs - epoch) if not last else 0.0
        losses = ", ".join(
            f"{k} {_value(trainer.callback_metrics[k]):.4f}"
            for k in ("train_loss", "val_loss")
            if k in trainer.callback_metrics
        )
        log.info(
            "train %s: epoch %d/%d, %s, %.1fs%s",
            self.label,
            epoch,
            self.max_epochs,
            losses or "no loss yet",
            elapsed,
            "" if last else f", eta {eta:.0f}s",
        )


def _value(x: Any) -> float:
    return float(x.item() if hasattr(x, "item") else x)
