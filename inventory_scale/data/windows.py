"""A shard of series packed CSR-style, and the training / validation / inference windows cut from it.

:func:`pack_shard` turns the long input tables into a :class:`PackedShard`: the dense feature frame
of :mod:`inventory_scale.data.features` flattened into ``values [T]``, ``observed [T]`` and
``time_feat [T, F]`` with ``indptr [N+1]`` (series ``i`` occupies rows ``indptr[i]:indptr[i+1]``),
in the Nixtla style. Every series runs from its first sale to ``horizon`` periods past the cutoff;
targets after the cutoff are 0 with ``observed`` 0, their covariates are known.

A window is (series ``i``, local end ``e``): its horizon is periods ``[e-H, e)`` and its context
the ``L`` periods before; context periods before the series starts are left padding (target,
features and mask 0). Windows are gathered for a whole batch at once by index arithmetic on the CSR
arrays. Every batch is a dict of named tensors (the model's contract)::

    past_target      [B, L]    float32   demand of the context periods (0 where padded)
    past_observed    [B, L]    float32   1 = in-stock observation; 0 = padding, stockout, missing
    past_time_feat   [B, L, F] float32
    future_time_feat [B, H, F] float32
    future_target    [B, H]    float32   (training / validation only)
    future_observed  [B, H]    float32   (training / validation only)
    static_cat       [B, C]    int64     [category, warehouse, sku(, subcategory)] index; 0 = unknown
    static_real      [B, R]    float32   product-text covariates (only when the shard has them)

With ``model.last_year`` two more covariates close ``time_feat`` (``model.last_year_group``: four),
last year's demand around the same period (:mod:`~inventory_scale.data.last_year`) divided by the
window's scale (``1 + mean`` observed context demand, as the network scales its lags).

Training windows end by ``cutoff_index - H`` (the last H periods are validation);
:class:`~.datamodule.WindowSampler` draws them uniformly or with probability proportional to
``1 + mean demand`` of their series (DeepAR). With ``model.launch_share`` > 0 that share of every
batch is drawn from launch windows instead: the first H periods of a series with an empty context
and the SKU index set to unknown, i.e. exactly what a cold-start forecast of a new SKU sees
(``forecast_cold.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from inventory_scale import schema as S
from inventory_scale.data.features import (
    STATIC_FEATURES,
    build_features,
    build_vocab,
    encode_static,
    named_event_features,
    offset_date,
    require_columns,
    time_features,
)
from inventory_scale.data.last_year import (
    GROUP_LAST_YEAR_FEATURES,
    LAST_YEAR_FEATURES,
    cumsum0,
    group_last_year_reference,
    last_year_reference,
    series_groups,
)
from inventory_scale.errors import ConfigError, DataQualityError

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]
PAST_TARGET, PAST_OBSERVED, PAST_TIME_FEAT = "past_target", "past_observed", "past_time_feat"
FUTURE_TARGET, FUTURE_OBSERVED, FUTURE_TIME_FEAT = "future_target", "future_observed", "future_time_feat"
STATIC_CAT = "static_cat"
STATIC_REAL = "static_real"
INFERENCE_KEYS: tuple[str, ...] = (PAST_TARGET, PAST_OBSERVED, PAST_TIME_FEAT, FUTURE_TIME_FEAT, STATIC_CAT)
"""Keys of an :func:`inference_batch`."""
BATCH_KEYS: tuple[str, ...] = (*INFERENCE_KEYS, FUTURE_TARGET, FUTURE_OBSERVED)
"""Keys of a training or validation batch."""
SKU_COLUMN = STATIC_FEATURES.index(S.SKU_ID)
"""Column of ``static_cat`` holding the SKU index (set to 0 = unknown in launch windows)."""


@dataclass
class PackedShard:
    """A shard's series in CSR layout (N series, T periods in all, F time features, C = 2).

    Attributes:
        series: ``sku_id, warehouse_id, category`` of the N series, in (sku_id, warehouse_id) order.
        values: ``[T]`` float32 units sold; 0 for missing periods and after the cutoff.
        observed: ``[T]`` float32, 1 = a sales row in stock on or before the cutoff.
        time_feat: ``[T, F]`` float32 covariates, columns in ``feature_names`` order (without the
            :data:`LAST_YEAR_FEATURES`, which windows add from ``last_year``).
        indptr: ``[N+1]`` int64; series ``i`` is rows ``indptr[i]:indptr[i+1]``.
        start: ``[N]`` datetime64[D] first period of each series.
        cutoff_index: ``[N]`` int64 periods up to and including the cutoff (then ``horizon`` more).
        static_cat: ``[N, C]`` int64 indices into ``vocab[static_columns(vocab)[c]]`` (0 = unknown).
        vocab: ``{"category": [...], "warehouse_id": [...]}``, index 0 = ``"<unknown>"``.
        feature_names: the F axis of a batch's time features.
        freq, cutoff, horizon: ``"1d"``/``"1w"``/``"1mo"``; forecast origin (last target period); H.
    """

    series: pl.DataFrame
    values: np.ndarray
    observed: np.ndarray
    time_feat: np.ndarray
    indptr: np.ndarray
    start: np.ndarray
    cutoff_index: np.ndarray
    static_cat: np.ndarray
    vocab: dict[str, list[str]]
    feature_names: tuple[str, ...]
    freq: str
    cutoff: dt.date
    horizon: int
    static_real: np.ndarray | None = None  # [N, R] float32 text covariates (model.text_features)
    last_year: np.ndarray | None = None  # [T, 2] float32 (mean demand a year earlier, any observed)
    # ... [T, 4] with the group's reference and flag after them (last_year_group)

    @property
    def n_series(self) -> int:
        """N."""
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        """``[N]`` int64 periods per series (``cutoff_index + horizon``)."""
        return np.diff(self.indptr)


def context_scale(target: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``[B]`` ``1 + mean`` observed demand of each context ``[B, L]`` (``DeepARNet.scale`` in numpy)."""
    total = np.where(observed > 0, target, 0.0).sum(axis=1)
    return 1.0 + total / np.maximum(observed.sum(axis=1), 1.0)


def pack_shard(
    sales: pl.DataFrame,
    products: pl.DataFrame,
    warehouses: pl.DataFrame,
    calendar: pl.DataFrame,
    *,
    freq: str,
    cutoff: dt.date,
    horizon: int,
    vocab: dict[str, list[str]] | None = None,
    last_year: bool = False,
    planned: pl.DataFrame | None = None,
    events: Sequence[str] = (),
    subcategory: bool = False,
    last_year_group: bool = False,
) -> PackedShard:
    """Pack the series of ``sales`` up to ``cutoff``, plus ``horizon`` future periods, CSR-style.

    Sales rows after the cutoff are ignored entirely (targets and covariates), so a backtest sees
    what a forecast on that day would: in stock, and future prices carried forward with no
    promotion unless ``planned`` gives them.

    Args:
        sales, products, warehouses, calendar: input tables (see :func:`build_features`).
        freq: ``"1d"``, ``"1w"`` or ``"1mo"``.
        cutoff: forecast origin; the last period whose target is used.
        horizon: H >= 1 periods after the cutoff.
        vocab: static vocabularies from training (forecast time); None builds them from ``sales``.
        last_year: add the last-year covariates (:func:`last_year_reference`, ``model.last_year``).
        planned: planned price / promotion rows (``data/planned.py``); only rows after the cutoff
            are used.
        events: named events whose distances join the time features (``model.named_events``).
        last_year_group: with ``last_year``, add the group's reference (:func:`group_last_year_reference`).
        subcategory: a vocabulary built here (``vocab`` None) adds the product subcategory as a
            fourth static column (``model.subcategory``); a given ``vocab`` decides by itself.

    Raises:
        DataQualityError: no sales row on or before the cutoff.
        ConfigError: ``horizon`` < 1 or an unknown ``freq``.
    """
    if horizon < 1:
        raise ConfigError(f"config key 'data.horizon' must be > 0, got {horizon}")
    names = (*time_features(freq), *named_event_features(events))
    require_columns(sales, S.SALES, (S.DATE,))
    history = sales.filter(pl.col(S.DATE) <= cutoff)
    if history.height == 0:
        raise DataQualityError(f"sales: no row on or before the cutoff {cutoff} (column '{S.DATE}')")
    keys = list(S.SERIES_KEY)
    if planned is not None:
        planned = planned.filter(pl.col(S.DATE) > cutoff)
    frame = build_features(
        history,
        products,
        warehouses,
        calendar,
        freq=freq,
        end=offset_date(cutoff, freq, horizon + 1),
        planned=planned,
        events=events,
    )
    future = (pl.col(S.DATE) > cutoff).cast(pl.Int32)
    # the grid runs H+1 periods past the cutoff, so every series keeps exactly H future periods
    frame = frame.filter((future.cum_sum().over(keys) <= horizon) | (future == 0))
    series = frame.group_by(keys, maintain_order=True).agg(
        pl.col(S.CATEGORY).first(),
        pl.col(S.SUBCATEGORY).first(),
        pl.col(S.DATE).first().alias("_start"),
        pl.len().cast(pl.Int64).alias("_n"),
        (1 - future).sum().cast(pl.Int64).alias("_past"),
    )
    vocab = build_vocab(series, (S.SUBCATEGORY,) if subcategory else ()) if vocab is None else vocab
    lengths = series["_n"].to_numpy()
    values = frame[S.UNITS_SOLD].to_numpy().astype(np.float32)
    observed = frame[S.OBSERVED].to_numpy().astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    packed = PackedShard(
        series=series.select(*keys, S.CATEGORY),
        values=values,
        observed=observed,
        time_feat=np.ascontiguousarray(frame.select(names).to_numpy(), dtype=np.float32),
        indptr=indptr,
        start=series["_start"].to_numpy().astype("datetime64[D]"),
        cutoff_index=series["_past"].to_numpy().astype(np.int64),
        static_cat=encode_static(series, vocab),
        vocab=vocab,
        feature_names=names,
        freq=freq,
        cutoff=cutoff,
        horizon=horizon,
    )
    if last_year:
        own = last_year_reference(values, observed, indptr, freq)
        packed.feature_names = (*names, *LAST_YEAR_FEATURES)
        packed.last_year = own
        if last_year_group:
            grp = group_last_year_reference(own, indptr, packed.start, series_groups(series), freq)
            packed.feature_names = (*packed.feature_names, *GROUP_LAST_YEAR_FEATURES)
            packed.last_year = np.concatenate([own, grp], axis=1)
    log.info(
        "packed %d series x %d periods (F=%d), cutoff %s", packed.n_series, len(frame), len(names), cutoff
    )
    return packed


def gather_windows(
    packed: PackedShard, series: np.ndarray, end: np.ndarray, context_length: int, *, with_target: bool = True
) -> Batch:
    """Batch of windows (series[b], end[b]): horizon ``[end-H, end)``, context the L periods before.

    Args:
        packed: the shard.
        series: ``[B]`` int series indices.
        end: ``[B]`` int local exclusive ends, ``H <= end <= lengths[series]``.
        context_length: L.
        with_target: add ``future_target`` / ``future_observed`` (False at inference).
    """
    if context_length < 1:
        raise ConfigError(f"config key 'data.context_length' must be > 0, got {context_length}")
    L, H = context_length, packed.horizon
    series, end = np.asarray(series, dtype=np.int64), np.asarray(end, dtype=np.int64)
    if np.any(end < H) or np.any(end > packed.lengths[series]):  # a window never leaves its series
        raise ValueError(f"window ends must lie in [H, series length], H={H}; got {end.tolist()[:5]}")
    local = end[:, None] + np.arange(-(L + H), 0)  # [B, L+H]
    inside = local >= 0
    rows = packed.indptr[series][:, None] + np.maximum(local, 0)  # [B, L+H] rows of the CSR arrays
    target = np.where(inside, packed.values[rows], np.float32(0))  # [B, L+H]
    observed = np.where(inside, packed.observed[rows], np.float32(0))  # [B, L+H]
    feat = packed.time_feat[rows] * inside[..., None].astype(np.float32)  # [B, L+H, F]
    if packed.last_year is not None:  # the last 2 (4) of F: last-year demand / scale, flag (group's)
        ref = packed.last_year[rows] * inside[..., None].astype(np.float32)  # [B, L+H, 2 or 4]
        ref[..., 0::2] /= context_scale(target[:, :L], observed[:, :L]).astype(np.float32)[:, None, None]
        feat = np.concatenate([feat, ref], axis=-1)  # [B, L+H, F]

    parts = {
        PAST_TARGET: target[:, :L],  # [B, L]
        PAST_OBSERVED: observed[:, :L],  # [B, L]
        PAST_TIME_FEAT: feat[:, :L],  # [B, L, F]
        FUTURE_TIME_FEAT: feat[:, L:],  # [B, H, F]
        STATIC_CAT: packed.static_cat[series],  # [B, C]
    }
    if packed.static_real is not None:
        parts[STATIC_REAL] = packed.static_real[series]  # [B, R]
    if with_target:
        parts[FUTURE_TARGET] = target[:, L:]  # [B, H]
        parts[FUTURE_OBSERVED] = observed[:, L:]  # [B, H]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in parts.items()}


def inference_batch(packed: PackedShard, context_length: int) -> Batch:
    """All N series: the last L periods up to each cutoff and the H horizon periods' covariates.

    Returns:
        Batch without targets: ``past_target [N, L]``, ``past_observed [N, L]``,
        ``past_time_feat [N, L, F]``, ``future_time_feat [N, H, F]``, ``static_cat [N, C]``.
    """
    series = np.arange(packed.n_series)
    return gather_windows(
        packed, series, packed.cutoff_index + packed.horizon, context_length, with_target=False
    )


def series_scale(packed: PackedShard, stop: np.ndarray) -> np.ndarray:
    """``[N]`` float64 mean observed demand of each series over its local periods ``[0, stop)``."""
    start = packed.indptr[:-1]
    stop = start + np.clip(stop, 0, packed.lengths)
    cum_v, cum_o = cumsum0(packed.values * packed.observed), cumsum0(packed.observed)
    return (cum_v[stop] - cum_v[start]) / np.maximum(cum_o[stop] - cum_o[start], 1.0)


class WindowDataset(Dataset[Batch]):
    """Explicit windows (series, end); ``dataset[ids]`` (ids ``[B]``, or one int) gathers a whole batch.

    Use with ``DataLoader(batch_size=None, sampler=...)`` whose sampler yields id arrays
    (:class:`~.datamodule.WindowSampler`, or a ``BatchSampler``).
    """

    def __init__(
        self,
        packed: PackedShard,
        context_length: int,
        series: np.ndarray,
        end: np.ndarray,
        launch: np.ndarray | None = None,
    ) -> None:
        self.packed = packed
        self.context_length = context_length
        self.series = np.asarray(series, dtype=np.int64)  # [W]
        self.end = np.asarray(end, dtype=np.int64)  # [W]
        # [W] bool: launch windows (first horizon, empty context) read with the SKU index unknown
        self.launch = np.zeros(len(self.series), dtype=bool) if launch is None else np.asarray(launch, bool)

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, ids: int | Sequence[int] | np.ndarray) -> Batch:
        idx = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        batch = gather_windows(self.packed, self.series[idx], self.end[idx], self.context_length)
        launch = self.launch[idx]
        if launch.any() and batch[STATIC_CAT].shape[1] > SKU_COLUMN:
            batch[STATIC_CAT][torch.from_numpy(launch), SKU_COLUMN] = 0  # a new SKU has no learned id
        return batch


class TrainWindows(WindowDataset):
    """Every training window: end ``e`` in ``[H, cutoff_index - holdout]`` with an observed horizon period.

    Series shorter than L + H give left-padded windows; ``holdout`` defaults to H. With
    ``launch_share`` > 0, one launch window per such series (end H, SKU index unknown) is appended
    and :meth:`weights` gives the launch windows together that share of the draws.

    Attributes:
        scale: ``[N]`` mean observed demand per series over its training periods.
    """

    def __init__(
        self,
        packed: PackedShard,
        context_length: int,
        *,
        holdout: int | None = None,
        launch_share: float = 0.0,
    ) -> None:
        H = packed.horizon
        last_end = packed.cutoff_index - (H if holdout is None else holdout)  # [N]
        count = np.maximum(last_end - H + 1, 0)  # [N] candidate ends per series
        series = np.repeat(np.arange(packed.n_series), count)  # [W0]
        end = H + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)  # [W0]
        rows = packed.indptr[series] + end
        cum_o = cumsum0(packed.observed)
        keep = cum_o[rows] - cum_o[rows - H] > 0.5  # at least one observed horizon period
        series, end = series[keep], end[keep]
        self.launch_share = launch_share
        first = np.unique(series[end == H]) if launch_share > 0 else np.zeros(0, dtype=np.int64)
        launch = np.concatenate([np.zeros(len(series), dtype=bool), np.ones(len(first), dtype=bool)])
        series = np.concatenate([series, first])
        end = np.concatenate([end, np.full(len(first), H, dtype=np.int64)])
        super().__init__(packed, context_length, series, end, launch)
        self.scale = series_scale(packed, last_end)

    def weights(self, sampling: str) -> np.ndarray | None:
        """Per-window draw weights: None for ``"uniform"``, ``1 + scale`` for ``"scale"``.

        Launch windows (if any) share ``launch_share`` of the total weight, uniformly.
        """
        if sampling not in ("uniform", "scale"):
            raise ConfigError(
                f"config key 'model.window_sampling' must be scale or uniform, got {sampling!r}"
            )
        n_launch = int(self.launch.sum())
        if n_launch == 0 or n_launch == len(self.launch):
            return None if sampling == "uniform" else 1.0 + self.scale[self.series]
        base = np.ones(len(self.series)) if sampling == "uniform" else 1.0 + self.scale[self.series]
        base = np.where(self.launch, 0.0, base)
        share = self.launch_share
        return np.where(self.launch, share * base.sum() / ((1.0 - share) * n_launch), base)


def validation_windows(packed: PackedShard, context_length: int) -> WindowDataset:
    """The held-out last-H window before the cutoff of every series observed in it."""
    H = packed.horizon
    end = packed.cutoff_index
    cum_o = cumsum0(packed.observed)
    rows = packed.indptr[:-1] + end
    ok = (end >= H) & (cum_o[rows] - cum_o[np.maximum(rows - H, 0)] > 0.5)
    return WindowDataset(packed, context_length, np.flatnonzero(ok), end[ok])
