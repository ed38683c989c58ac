"""CSR packing, hand-computed training / validation / inference windows, sampling and the datamodule."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import polars as pl
import pytest
import pytorch_lightning as lightning
import torch

from inventory_scale import schema as S
from inventory_scale.config import ModelConfig
from inventory_scale.data.datamodule import ShardDataModule, WindowSampler
from inventory_scale.data.features import UNKNOWN, time_features
from inventory_scale.data.last_year import (
    GROUP_LAST_YEAR_FEATURES,
    LAST_YEAR_FEATURES,
    group_last_year_reference,
    last_year_learnable,
    last_year_reference,
    without_last_year,
)
from inventory_scale.data.windows import (
    BATCH_KEYS,
    INFERENCE_KEYS,
    PackedShard,
    TrainWindows,
    gather_windows,
    inference_batch,
    pack_shard,
    validation_windows,
)
from inventory_scale.errors import ConfigError, DataQualityError

D = dt.date
L, H = 4, 2
CUTOFF = D(2024, 1, 9)
PRODUCTS = pl.DataFrame({S.SKU_ID: ["A", "B"], S.CATEGORY: ["food", "toys"]})
WAREHOUSES = pl.DataFrame({S.WAREHOUSE_ID: ["W1"], S.REGION: ["US"]})
CALENDAR = pl.DataFrame(
    {S.DATE: pl.date_range(D(2023, 12, 1), D(2024, 2, 29), eager=True)},
).with_columns(
    pl.lit("US").alias(S.REGION),
    pl.lit(None, pl.String).alias(S.EVENT_NAME),
    pl.lit(None, pl.String).alias(S.EVENT_TYPE),
    pl.lit(False).alias(S.IS_HOLIDAY),
    pl.lit(False).alias(S.SNAP),
)


def day(k: int) -> dt.date:
    """Day ``k`` of January 2024."""
    return D(2024, 1, k)


@pytest.fixture
def sales() -> pl.DataFrame:
    """A: 9 days (01-01 .. 01-09) selling 1 .. 9, stockouts on 01-05 and 01-06 (local 4, 5).
    B: 5 days (01-05 .. 01-09) selling 101 .. 105. Rows after the cutoff must be ignored."""
    rows = [("A", "W1", day(k), float(k), 2.0, False, k not in (5, 6)) for k in range(1, 10)]
    rows += [("B", "W1", day(4 + k), float(100 + k), 3.0, False, True) for k in range(1, 6)]
    rows += [("A", "W1", day(10), 999.0, 50.0, True, True)]
    return pl.DataFrame(rows, schema=S.SALES.schema, orient="row")


@pytest.fixture
def packed(sales: pl.DataFrame) -> PackedShard:
    return pack_shard(sales, PRODUCTS, WAREHOUSES, CALENDAR, freq="1d", cutoff=CUTOFF, horizon=H)


def test_csr_layout(packed: PackedShard) -> None:
    assert packed.series.rows() == [("A", "W1", "food"), ("B", "W1", "toys")]
    assert packed.indptr.tolist() == [0, 11, 18]  # 9 + 2 and 5 + 2 periods
    assert packed.cutoff_index.tolist() == [9, 5]
    assert packed.start.tolist() == [day(1), day(5)]
    assert packed.values.tolist() == [
        *range(1, 10),
        0,
        0,
        101,
        102,
        103,
        104,
        105,
        0,
        0,
    ]  # 999 after cutoff dropped
    assert packed.observed.tolist() == [1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0]
    assert packed.time_feat.shape == (18, len(time_features("1d")))
    assert packed.values.dtype == np.float32 and packed.time_feat.dtype == np.float32
    assert packed.indptr.dtype == np.int64 and packed.static_cat.dtype == np.int64
    assert packed.static_cat.tolist() == [[1, 1, 1], [2, 1, 2]]  # category, warehouse, sku
    assert packed.vocab == {
        S.CATEGORY: [UNKNOWN, "food", "toys"],
        S.WAREHOUSE_ID: [UNKNOWN, "W1"],
        S.SKU_ID: [UNKNOWN, "A", "B"],
    }
    promo = packed.feature_names.index(S.ON_PROMOTION)
    assert packed.time_feat[9:11, promo].tolist() == [0, 0]  # the promotion after the cutoff is not seen


def test_training_windows_by_hand(packed: PackedShard) -> None:
    tw = TrainWindows(packed, L)
    # A: ends 2..7 (cutoff_index 9 - holdout 2) minus end 6, whose horizon (local 4, 5) is all stockout
    # B: ends 2..3
    assert list(zip(tw.series.tolist(), tw.end.tolist(), strict=True)) == [
        (0, 2),
        (0, 3),
        (0, 4),
        (0, 5),
        (0, 7),
        (1, 2),
        (1, 3),
    ]
    b = tw[np.array([1, 5, 6])]  # (A, 3), (B, 2), (B, 3)
    assert b["past_target"].tolist() == [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 101]]
    assert b["past_observed"].tolist() == [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert b["future_target"].tolist() == [[2, 3], [101, 102], [102, 103]]
    assert b["future_observed"].tolist() == [[1, 1], [1, 1], [1, 1]]
    assert b["static_cat"].tolist() == [[1, 1, 1], [2, 1, 2], [2, 1, 2]]
    assert torch.all(b["past_time_feat"][1] == 0)  # fully left-padded context: features 0 too
    stock = tw[3]  # (A, 5): context local -1 .. 2, horizon local 3, 4 (4 = stockout on 01-05)
    assert stock["past_target"].tolist() == [[0, 1, 2, 3]]
    assert stock["future_target"].tolist() == [[4, 5]] and stock["future_observed"].tolist() == [[1, 0]]


def test_no_window_crosses_a_series_boundary(packed: PackedShard) -> None:
    tw = TrainWindows(packed, L)
    b = tw[np.arange(len(tw))]
    full = torch.cat([b["past_target"], b["future_target"]], dim=1)  # [W, L+H]
    for series, row in zip(tw.series.tolist(), full.tolist(), strict=True):
        real = [v for v in row if v > 0]
        assert all((v > 100) == (series == 1) for v in real)
        assert real == list(
            range(int(real[0]), int(real[0]) + len(real))
        )  # consecutive periods of one series


def test_validation_and_inference_windows(packed: PackedShard) -> None:
    val = validation_windows(packed, L)
    assert val.series.tolist() == [0, 1] and val.end.tolist() == [9, 5]
    b = val[np.arange(2)]
    assert b["past_target"].tolist() == [[4, 5, 6, 7], [0, 101, 102, 103]]
    assert b["past_observed"].tolist() == [[1, 0, 0, 1], [0, 1, 1, 1]]
    assert b["future_target"].tolist() == [[8, 9], [104, 105]]
    inf = inference_batch(packed, L)
    assert set(inf) == set(INFERENCE_KEYS)
    assert inf["past_target"].tolist() == [[6, 7, 8, 9], [102, 103, 104, 105]]
    assert inf["past_observed"].tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    assert inf["past_time_feat"].shape == (2, L, packed.time_feat.shape[1])
    assert inf["future_time_feat"].shape == (2, H, packed.time_feat.shape[1])
    dow, stock = packed.feature_names.index(S.DAY_OF_WEEK), packed.feature_names.index(S.IN_STOCK)
    # horizon 2024-01-10 (Wednesday) and 01-11 (Thursday), in stock
    np.testing.assert_allclose(
        inf["future_time_feat"][:, :, dow].numpy(), [[-1 / 6, 0], [-1 / 6, 0]], atol=1e-6
    )
    assert inf["future_time_feat"][:, :, stock].tolist() == [[1, 1], [1, 1]]
    long = inference_batch(packed, 7)  # longer than B's 5 periods: left-padded
    assert long["past_target"][1].tolist() == [0, 0, 101, 102, 103, 104, 105]
    assert long["past_observed"][1].tolist() == [0, 0, 1, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="window ends"):
        gather_windows(packed, np.array([1]), np.array([8]), L)  # would run into the next series


def test_shard_without_training_window_raises(sales: pl.DataFrame) -> None:
    short = pack_shard(sales, PRODUCTS, WAREHOUSES, CALENDAR, freq="1d", cutoff=day(3), horizon=H)
    assert len(TrainWindows(short, L)) == 0  # 3 periods < horizon + holdout
    with pytest.raises(DataQualityError, match="no training window"):
        ShardDataModule(short, ModelConfig(), context_length=L, steps_per_epoch=1)


def test_weekly_and_monthly_packing_keep_h_future_periods() -> None:
    fridays = [D(2024, 1, 5) + dt.timedelta(weeks=k) for k in range(4)]
    weekly = pl.DataFrame(
        [("A", "W1", d, 1.0, 1.0, False, True) for d in fridays], schema=S.SALES.schema, orient="row"
    )
    # cutoff on a Sunday between grid Fridays: targets up to 01-26, horizon 02-02 and 02-09
    p = pack_shard(weekly, PRODUCTS, WAREHOUSES, CALENDAR, freq="1w", cutoff=D(2024, 1, 28), horizon=2)
    assert p.cutoff_index.tolist() == [4] and p.indptr.tolist() == [0, 6]
    assert p.time_feat.shape == (6, len(time_features("1w")))
    months = [D(2024, m, 1) for m in (1, 2, 3, 4)]
    monthly = pl.DataFrame(
        [("A", "W1", d, 1.0, 1.0, False, True) for d in months], schema=S.SALES.schema, orient="row"
    )
    p = pack_shard(monthly, PRODUCTS, WAREHOUSES, CALENDAR, freq="1mo", cutoff=D(2024, 4, 1), horizon=3)
    assert p.cutoff_index.tolist() == [4] and p.indptr.tolist() == [0, 7]
    month = p.feature_names.index(S.MONTH_OF_YEAR)
    np.testing.assert_allclose(p.time_feat[:, month], np.arange(7) / 11 - 0.5, atol=1e-6)


def test_last_year_reference_daily_by_hand() -> None:
    # two series in CSR: 400 days selling t (day 15 a stockout), then 10 days
    values = np.concatenate([np.arange(400), np.arange(10)]).astype(np.float32)
    observed = np.ones(410, dtype=np.float32)
    observed[15] = 0.0
    ref = last_year_reference(values, observed, np.array([0, 400, 410]), "1d")
    assert ref.shape == (410, 2)
    # row 380: days 13..19 a year (364 days) earlier, day 15 not counted
    assert ref[380].tolist() == [pytest.approx((13 + 14 + 16 + 17 + 18 + 19) / 6), 1.0]
    assert ref[399].tolist() == [pytest.approx(35.0), 1.0]  # days 32..38
    assert ref[360].tolist() == [0.0, 0.0] and ref[361].tolist() == [0.0, 1.0]  # window reaches day 0
    assert not ref[400:].any()  # the second series has no last year, never the first one's days
    with pytest.raises(ConfigError, match=r"data\.freq"):
        last_year_reference(values, observed, np.array([0, 410]), "1h")


def test_group_last_year_reference_by_hand() -> None:
    # A, B (one group) and C (another) over the same 3 dates; B starts a day later
    a = [[4, 1], [6, 1], [0, 0]]  # A: 2024-01-01 .. 03, no reference on the 3rd
    b = [[8, 1], [2, 1]]  # B: 2024-01-02 .. 03
    c = [[100, 1], [0, 0], [50, 1]]  # C: 2024-01-01 .. 03
    own = np.array([*a, *b, *c], dtype=np.float32)
    start = np.array(["2024-01-01", "2024-01-02", "2024-01-01"], dtype="datetime64[D]")
    ref = group_last_year_reference(own, np.array([0, 3, 5, 8]), start, np.array([0, 0, 1]), "1d")
    assert ref.shape == (8, 2)
    np.testing.assert_allclose(ref[:3], [[4, 1], [7, 1], [2, 1]])  # Jan 2: (6 + 8) / 2; Jan 3: B alone
    np.testing.assert_allclose(ref[3:5], [[7, 1], [2, 1]])  # B reads the same group means
    np.testing.assert_allclose(ref[5:], [[100, 1], [0, 0], [50, 1]])  # C's group is C
    weekly = group_last_year_reference(
        own[:5], np.array([0, 3, 5]), np.array(["2024-01-01", "2024-01-08"], dtype="datetime64[D]"),
        np.array([0, 0]), "1w",
    )  # fmt: skip
    np.testing.assert_allclose(weekly[:, 0], [4, 7, 2, 7, 2])  # B's weeks are A's 2nd and 3rd


def test_group_last_year_covariates_in_windows(sales: pl.DataFrame) -> None:
    products = PRODUCTS.with_columns(pl.Series(S.SUBCATEGORY, ["x", "x"]), pl.lit("food").alias(S.CATEGORY))
    args = (sales, products, WAREHOUSES, CALENDAR)
    grp = pack_shard(*args, freq="1d", cutoff=CUTOFF, horizon=H, last_year=True, last_year_group=True)
    own = pack_shard(*args, freq="1d", cutoff=CUTOFF, horizon=H, last_year=True)
    assert grp.feature_names == (*own.feature_names, *GROUP_LAST_YEAR_FEATURES)
    assert grp.last_year is not None and own.last_year is not None and grp.last_year.shape == (18, 4)
    np.testing.assert_array_equal(grp.last_year[:, :2], own.last_year)
    # nine days of history have no last year: the group columns are zero, like the own ones
    assert not grp.last_year[:, 2:].any()
    dropped = without_last_year(grp)
    assert dropped.feature_names == without_last_year(own).feature_names and dropped.last_year is None


def test_last_year_covariates_in_windows_monthly() -> None:
    months = [D(2023 + (m // 12), m % 12 + 1, 1) for m in range(16)]  # 2023-01 .. 2024-04
    rows = [("A", "W1", d, 10.0 + k, 1.0, False, k != 2) for k, d in enumerate(months)]  # 2023-03 out
    rows += [("B", "W1", d, 5.0, 1.0, False, True) for d in months[12:]]
    sales = pl.DataFrame(rows, schema=S.SALES.schema, orient="row")
    args = (sales, PRODUCTS, WAREHOUSES, CALENDAR)
    p = pack_shard(*args, freq="1mo", cutoff=D(2024, 4, 1), horizon=3, last_year=True)
    off = pack_shard(*args, freq="1mo", cutoff=D(2024, 4, 1), horizon=3)
    assert p.feature_names == (*off.feature_names, *LAST_YEAR_FEATURES) and off.last_year is None
    assert p.last_year is not None and p.last_year.shape == (19 + 7, 2)
    batch = inference_batch(p, 4)  # A's context: 2024-01 .. 2024-04 (22 .. 25), horizon 2024-05 .. 07
    f = p.time_feat.shape[1]
    assert batch["past_time_feat"].shape == (2, 4, f + 2)
    scale = 1 + (22 + 23 + 24 + 25) / 4
    past, future = batch["past_time_feat"][0, :, f:].numpy(), batch["future_time_feat"][0, :, f:].numpy()
    np.testing.assert_allclose(past[:, 0], np.array([10, 11, 0, 13]) / scale, rtol=1e-6)  # 2023-03 a stockout
    assert past[:, 1].tolist() == [1, 1, 0, 1]
    np.testing.assert_allclose(future[:, 0], np.array([14, 15, 16]) / scale, rtol=1e-6)  # before the cutoff
    assert future[:, 1].tolist() == [1, 1, 1]
    assert not batch["past_time_feat"][1, :, f:].any() and not batch["future_time_feat"][1, :, f:].any()
    np.testing.assert_array_equal(batch["past_time_feat"][..., :f], inference_batch(off, 4)["past_time_feat"])
    # A and B share a group (same category, no subcategory, one warehouse): B has no last year of its
    # own but reads A's (its group's) in its own scale
    grp = inference_batch(
        pack_shard(*args, freq="1mo", cutoff=D(2024, 4, 1), horizon=3, last_year=True, last_year_group=True),
        4,
    )
    products_b = PRODUCTS.with_columns(pl.lit("food").alias(S.CATEGORY))
    same = inference_batch(
        pack_shard(
            sales,
            products_b,
            WAREHOUSES,
            CALENDAR,
            freq="1mo",
            cutoff=D(2024, 4, 1),
            horizon=3,
            last_year=True,
            last_year_group=True,
        ),
        4,
    )
    np.testing.assert_allclose(
        grp["future_time_feat"][0, :, f + 2], future[:, 0], rtol=1e-6
    )  # A alone in "food"
    assert not grp["future_time_feat"][1, :, f + 2 :].any()  # B alone in "toys": nothing
    np.testing.assert_allclose(same["future_time_feat"][1, :, f + 2], np.array([14, 15, 16]) / 6.0, rtol=1e-6)
    assert (
        same["future_time_feat"][1, :, f + 3].tolist() == [1, 1, 1]
        and not same["future_time_feat"][1, :, f].any()
    )
    # history rule: A has 16 months up to the cutoff, B 4 -> median 10 (needs years x 12 + H)
    assert last_year_learnable(p, 7 / 12) and not last_year_learnable(p, 8 / 12)
    dropped = without_last_year(p)
    assert dropped.feature_names == off.feature_names and dropped.last_year is None
    np.testing.assert_array_equal(
        inference_batch(dropped, 4)["past_time_feat"], inference_batch(off, 4)["past_time_feat"]
    )


def test_forecast_time_vocab_maps_unseen_to_zero(sales: pl.DataFrame, packed: PackedShard) -> None:
    products = pl.DataFrame({S.SKU_ID: ["A", "B"], S.CATEGORY: ["garden", "toys"]})
    new = sales.with_columns(
        pl.when(pl.col(S.SKU_ID) == "B")
        .then(pl.lit("W7"))
        .otherwise(pl.col(S.WAREHOUSE_ID))
        .alias(S.WAREHOUSE_ID)
    )
    later = pack_shard(
        new, products, WAREHOUSES, CALENDAR, freq="1d", cutoff=CUTOFF, horizon=H, vocab=packed.vocab
    )
    assert later.vocab == packed.vocab
    assert later.static_cat.tolist() == [[0, 1, 1], [2, 0, 2]]  # unseen "garden", unseen W7; SKUs known


def test_subcategory_is_a_fourth_static_column(sales: pl.DataFrame, packed: PackedShard) -> None:
    products = PRODUCTS.with_columns(pl.Series(S.SUBCATEGORY, ["snacks", None]))
    sub = pack_shard(
        sales, products, WAREHOUSES, CALENDAR, freq="1d", cutoff=CUTOFF, horizon=H, subcategory=True
    )
    assert list(sub.vocab) == [S.CATEGORY, S.WAREHOUSE_ID, S.SKU_ID, S.SUBCATEGORY]
    assert sub.vocab[S.SUBCATEGORY] == [UNKNOWN, "snacks"]
    assert sub.static_cat.tolist() == [[1, 1, 1, 1], [2, 1, 2, 0]]  # B's subcategory is null: unknown
    np.testing.assert_array_equal(sub.static_cat[:, :3], packed.static_cat)
    dm = ShardDataModule(sub, ModelConfig(batch_size=2), context_length=L, steps_per_epoch=1, seed=0)
    assert dm.cardinalities == [3, 2, 3, 2]
    # a vocabulary decides by itself: one without the column (an older checkpoint) packs three
    old = pack_shard(
        sales, products, WAREHOUSES, CALENDAR, freq="1d", cutoff=CUTOFF, horizon=H, vocab=packed.vocab
    )
    assert old.static_cat.shape == (2, 3)
    later = pack_shard(
        sales,
        products.with_columns(pl.Series(S.SUBCATEGORY, ["sweets", "snacks"])),
        WAREHOUSES, CALENDAR, freq="1d", cutoff=CUTOFF, horizon=H, vocab=sub.vocab,
    )  # fmt: skip
    assert later.static_cat[:, 3].tolist() == [0, 1]  # unseen "sweets" -> unknown
    plain = pack_shard(
        sales, PRODUCTS, WAREHOUSES, CALENDAR, freq="1d", cutoff=CUTOFF, horizon=H, subcategory=True
    )
    assert plain.vocab[S.SUBCATEGORY] == [UNKNOWN]  # products without the column: all unknown


def draw_counts(sampling: str) -> np.ndarray:
    """Window draws per series for a high-volume (mean 100) and a low-volume (mean 1) series."""
    rows = [("HI", "W1", day(k), 100.0, 1.0, False, True) for k in range(1, 31)]
    rows += [("LO", "W1", day(k), 1.0, 1.0, False, True) for k in range(1, 31)]
    sales = pl.DataFrame(rows, schema=S.SALES.schema, orient="row")
    p = pack_shard(sales, PRODUCTS, WAREHOUSES, CALENDAR, freq="1d", cutoff=day(30), horizon=H)
    tw = TrainWindows(p, L)
    sampler = WindowSampler(
        len(tw), num_samples=20_000, batch_size=1000, weights=tw.weights(sampling), seed=3
    )
    ids = np.concatenate(list(sampler))
    return np.bincount(tw.series[ids], minlength=2)


def test_scale_sampling_prefers_high_volume_series() -> None:
    hi, lo = draw_counts("scale")  # weights 1 + 100 vs 1 + 1
    assert hi / (hi + lo) == pytest.approx(101 / 103, abs=0.01)
    hi, lo = draw_counts("uniform")
    assert hi / (hi + lo) == pytest.approx(0.5, abs=0.02)


def test_sampler_is_deterministic_per_seed_and_epoch() -> None:
    s = WindowSampler(1000, num_samples=64, batch_size=16, seed=7)
    first = np.concatenate(list(s))
    assert len(s) == 4 and np.array_equal(first, np.concatenate(list(s)))
    s.set_epoch(1)
    assert not np.array_equal(first, s.draw())
    assert np.array_equal(WindowSampler(1000, num_samples=64, batch_size=16, seed=7).draw(), first)


class _Recorder(lightning.LightningModule):
    """A linear model that records the batches it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(L, 1)
        self.seen: list[torch.Tensor] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen.append(batch["past_target"].clone())
        return self.layer(batch["past_target"]).mean()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val", self.layer(batch["past_target"]).mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_datamodule_contract_and_epoch_reseeding(packed: PackedShard) -> None:
    dm = ShardDataModule(packed, ModelConfig(batch_size=3), context_length=L, steps_per_epoch=2, seed=1)
    assert dm.num_time_features == len(time_features("1d")) and dm.cardinalities == [3, 2, 3]
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    F = dm.num_time_features
    shapes = {
        "past_target": (3, L),
        "past_observed": (3, L),
        "past_time_feat": (3, L, F),
        "future_time_feat": (3, H, F),
        "future_target": (3, H),
        "future_observed": (3, H),
        "static_cat": (3, 3),
    }
    for batch in [*batches, *dm.val_dataloader()]:
        assert set(batch) == set(BATCH_KEYS) == set(shapes)
        for key, tensor in batch.items():
            assert tensor.dtype == (torch.int64 if key == "static_cat" else torch.float32), key
            assert tuple(tensor.shape[1:]) == shapes[key][1:], key
    val = list(dm.val_dataloader())
    assert [b["past_target"].shape[0] for b in val] == [2]  # both series observed in their last H
    model = _Recorder()
    trainer = lightning.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert len(model.seen) == 4  # 2 epochs x 2 steps
    assert not torch.equal(torch.cat(model.seen[:2]), torch.cat(model.seen[2:]))  # reseeded per epoch


def _large_sales(n_series: int, n_days: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    first = np.where(np.arange(n_series) % 2 == 0, 0, rng.integers(0, n_days // 2, n_series))
    lengths = n_days - first
    sid = np.repeat(np.arange(n_series), lengths)
    offset = (
        np.arange(lengths.sum())
        - np.repeat(np.cumsum(lengths) - lengths, lengths)
        + np.repeat(first, lengths)
    )
    n = len(sid)
    return pl.DataFrame(
        {
            S.SKU_ID: pl.Series((sid // 4).astype(str)).str.zfill(5),
            S.WAREHOUSE_ID: pl.Series((sid % 4).astype(str)).str.replace(r"^", "W"),
            S.DATE: np.datetime64("2023-01-01") + offset.astype("timedelta64[D]"),
            S.UNITS_SOLD: rng.poisson(3.0, n).astype(np.float32),
            S.PRICE: (10 + rng.random(n)).astype(np.float32),
            S.ON_PROMOTION: rng.random(n) < 0.1,
            S.IN_STOCK: rng.random(n) < 0.95,
        }
    )


def test_pack_shard_large_frame_shapes_and_speed() -> None:
    n_series, n_days = 2000, 400
    sales = _large_sales(n_series, n_days)
    products = pl.DataFrame({S.SKU_ID: sales[S.SKU_ID].unique().sort(), S.CATEGORY: "c"})
    warehouses = pl.DataFrame({S.WAREHOUSE_ID: [f"W{i}" for i in range(4)], S.REGION: "US"})
    calendar = CALENDAR.clear().vstack(
        pl.DataFrame({S.DATE: pl.date_range(D(2023, 1, 1), D(2024, 3, 31), eager=True)}).with_columns(
            pl.lit("US").alias(S.REGION),
            pl.when(pl.col(S.DATE).dt.day() == 25).then(pl.lit("payday")).otherwise(None).alias(S.EVENT_NAME),
            pl.lit(None, pl.String).alias(S.EVENT_TYPE),
            pl.lit(False).alias(S.IS_HOLIDAY),
            pl.lit(False).alias(S.SNAP),
        )
    )
    cutoff = D(2023, 1, 1) + dt.timedelta(days=n_days - 1)
    t0 = time.perf_counter()
    p = pack_shard(sales, products, warehouses, calendar, freq="1d", cutoff=cutoff, horizon=28)
    seconds = time.perf_counter() - t0
    assert seconds < 10, f"pack_shard took {seconds:.1f}s"
    assert p.n_series == n_series and p.indptr[-1] == sales.height + 28 * n_series == len(p.values)
    assert p.time_feat.shape == (len(p.values), len(time_features("1d")))
    assert np.array_equal(p.lengths, p.cutoff_index + 28)
    assert p.observed.sum() == sales[S.IN_STOCK].sum()
    inf = inference_batch(p, 112)
    assert inf["past_target"].shape == (n_series, 112) and inf["future_time_feat"].shape == (n_series, 28, 11)
