"""Training and validation batches of one shard for Lightning: the window sampler and the datamodule.

:class:`WindowSampler` draws an epoch's training windows (uniformly or by series scale, DeepAR) and
yields them in batches; :class:`ShardDataModule` wires :class:`~.windows.TrainWindows` and
:func:`~.windows.validation_windows` to Lightning's data loaders.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import pytorch_lightning as lightning
from torch.utils.data import BatchSampler, DataLoader, Sampler, SequentialSampler

from inventory_scale.config import ModelConfig
from inventory_scale.data.features import static_columns
from inventory_scale.data.windows import Batch, PackedShard, TrainWindows, validation_windows
from inventory_scale.errors import DataQualityError

log = logging.getLogger(__name__)


class WindowSampler(Sampler[np.ndarray]):
    """Draws ``num_samples`` window ids per epoch (with replacement) and yields them in batches.

    Deterministic: epoch ``k`` uses ``numpy.random.default_rng([seed, k])``; Lightning calls
    :meth:`set_epoch` at the start of every epoch.
    """

    def __init__(
        self,
        num_windows: int,
        *,
        num_samples: int,
        batch_size: int,
        weights: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        if num_windows < 1:
            raise DataQualityError(
                "no training window: no series has 2 x horizon periods with an observed one"
            )
        self.num_windows, self.num_samples = num_windows, num_samples
        self.batch_size, self.seed = batch_size, seed
        self.cdf = None if weights is None else np.cumsum(weights, dtype=np.float64) / float(np.sum(weights))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draws :meth:`__iter__` yields."""
        self.epoch = epoch

    def draw(self) -> np.ndarray:
        """``[num_samples]`` int64 window ids of the current epoch."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.cdf is None:
            return rng.integers(0, self.num_windows, self.num_samples, dtype=np.int64)
        ids = np.searchsorted(self.cdf, rng.random(self.num_samples), side="right")
        return np.minimum(ids, self.num_windows - 1).astype(np.int64)

    def __iter__(self) -> Iterator[np.ndarray]:
        ids = self.draw()
        for k in range(0, self.num_samples, self.batch_size):
            yield ids[k : k + self.batch_size]

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)


class ShardDataModule(lightning.LightningDataModule):
    """Training and validation batches of one shard for a Lightning trainer.

    Train: ``steps_per_epoch * batch_size`` windows per epoch drawn by :class:`WindowSampler`
    (``model.window_sampling``), reseeded per epoch from ``seed``. Validation: the held-out last-H
    window of every series observed there (:func:`validation_windows`). ``num_workers`` is 0.
    """

    def __init__(
        self,
        packed: PackedShard,
        model: ModelConfig,
        *,
        context_length: int,
        steps_per_epoch: int,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.packed = packed
        self.batch_size = model.batch_size
        self.train_windows = TrainWindows(packed, context_length, launch_share=model.launch_share)
        self.val_windows = validation_windows(packed, context_length)
        self.sampler = WindowSampler(
            len(self.train_windows),
            num_samples=steps_per_epoch * model.batch_size,
            batch_size=model.batch_size,
            weights=self.train_windows.weights(model.window_sampling),
            seed=seed,
        )
        sizes = (packed.n_series, len(self.train_windows), len(self.val_windows))
        log.info("shard: %d series, %d training windows, %d validation windows", *sizes)

    @property
    def num_time_features(self) -> int:
        """F."""
        return len(self.packed.feature_names)

    @property
    def cardinalities(self) -> list[int]:
        """Vocabulary sizes of the static columns (incl. index 0 = unknown), in C order."""
        return [len(self.packed.vocab[c]) for c in static_columns(self.packed.vocab)]

    def train_dataloader(self) -> DataLoader[Batch]:
        """Sampled training windows, one batch dict per step."""
        return DataLoader(self.train_windows, batch_size=None, sampler=self.sampler, num_workers=0)

    def val_dataloader(self) -> DataLoader[Batch]:
        """Validation windows in series order."""
        batches = BatchSampler(SequentialSampler(self.val_windows), self.batch_size, drop_last=False)
        return DataLoader(self.val_windows, batch_size=None, sampler=batches, num_workers=0)
