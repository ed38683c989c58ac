"""The arrays every planning and simulation step reads: per-series economics and logistics.

:class:`Items` holds one value per series (SKU x warehouse) as float64 numpy arrays, built once
from the ``products``, ``inventory`` and ``warehouses`` tables; :class:`Limits` the per-warehouse
capital budget and capacity. The optimizer, the simulator and every policy share them, so the
policy A/B compares policies under exactly the same costs and constraints::

    items, limits = items_from_frames(keys, products, inventory, warehouses, cfg.policy, cfg.data)

Economics follow DESIGN.md section 5: price ``p``, cost ``c``, salvage ``v``, shortage goodwill
``g`` (``inventory.stockout_penalty`` unless ``policy.goodwill`` overrides it) and the annual
holding rate (``inventory.holding_cost_rate`` unless ``policy.holding_cost_rate`` overrides it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import DataConfig, PolicyConfig
from inventory_scale.errors import DataQualityError, format_keys

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Items:
    """Per-series arrays, all of length ``N`` (series in the order of the keys they came from).

    ``shelf_life_days`` is NaN for non-perishables; ``warehouse`` indexes :class:`Limits`.
    ``leftover`` is the value of a unit left at the end of a protection interval (see
    :func:`leftover_value`).
    """

    warehouse: I64
    price: F64
    cost: F64
    salvage: F64
    goodwill: F64
    holding_rate: F64
    volume: F64
    case_pack: F64
    moq: F64
    lead_time_days: F64
    lead_time_std_days: F64
    review_days: I64
    shelf_life_days: F64
    leftover: F64

    @property
    def n(self) -> int:
        """Number of series."""
        return int(self.price.size)

    @property
    def perishable(self) -> npt.NDArray[np.bool_]:
        """``[N]`` True where a shelf life applies."""
        return np.isfinite(self.shelf_life_days)

    def take(self, idx: npt.NDArray[Any]) -> Items:
        """The items at ``idx`` (an index array or boolean mask), same fields."""
        return replace(self, **{f.name: getattr(self, f.name)[idx] for f in fields(self)})


@dataclass(frozen=True)
class Limits:
    """Per-warehouse constraints: capital ``budget`` per order cycle and ``capacity`` (m^3)."""

    ids: list[str]
    budget: F64
    capacity: F64


def leftover_value(
    cost: F64, salvage: F64, holding_rate: F64, review_days: npt.ArrayLike, overage: str
) -> F64:
    """Value of a unit left over at the end of the protection interval.

    ``salvage``: its salvage value (the one-shot newsvendor of DESIGN.md). ``carryover``: it keeps
    selling in the next cycle, so it is worth its cost less the holding cost of one more review
    period, never less than salvage. Perishables additionally lose units that outdate (valued at
    salvage in ``newsvendor.py``), whatever this setting.
    """
    if overage == "salvage":
        return np.minimum(salvage, cost)
    carried = cost * (1.0 - holding_rate * np.asarray(review_days, dtype=np.float64) / 365.0)
    return np.clip(carried, np.minimum(salvage, cost), cost)


def _fail_nulls(frame: pl.DataFrame, columns: list[str], table: str, missing: str) -> None:
    """Raise naming the table, each null column with its count, and up to five series keys.

    ``missing`` is the column that is null exactly when the series has no row in ``table``.
    """
    absent = frame.filter(pl.col(missing).is_null())
    if absent.height:
        raise DataQualityError(
            f"{table}: no row for {absent.height} series: {format_keys(absent.select(S.SERIES_KEY).rows())}"
        )
    for col in columns:
        bad = frame.filter(pl.col(col).is_null())
        if bad.height:
            raise DataQualityError(
                f"{table}: column {col} is null for {bad.height} series: "
                f"{format_keys(bad.select(S.SERIES_KEY).rows())}"
            )


def items_from_frames(
    keys: pl.DataFrame,
    products: pl.DataFrame,
    inventory: pl.DataFrame,
    warehouses: pl.DataFrame,
    policy: PolicyConfig,
    data: DataConfig,
    where: dict[str, str] | None = None,
) -> tuple[Items, Limits]:
    """Arrays for the series in ``keys`` (``sku_id, warehouse_id``), in that order.

    Series without an inventory row take the ``data`` fill rules (lead time, review period,
    holding rate; goodwill = ``goodwill_fraction`` x price). A null budget or capacity is no limit.
    ``where`` maps ``products`` / ``warehouses`` to the table URIs the errors name.

    Raises:
        DataQualityError: a series whose SKU is not in ``products`` or whose warehouse is not in
            ``warehouses``, or whose product lacks unit_cost, unit_price or salvage_value (names
            the table, the column, the count and up to five keys).
    """
    k = [S.SKU_ID, S.WAREHOUSE_ID]
    wh = warehouses.select(S.WAREHOUSE_ID, S.BUDGET, S.CAPACITY_M3).unique(S.WAREHOUSE_ID, keep="first")
    order = keys.select(k).join(wh.with_row_index("wh_index"), on=S.WAREHOUSE_ID, how="left")
    frame = (
        order.join(products.with_columns(pl.lit(True).alias("_in_products")), on=S.SKU_ID, how="left")
        .join(inventory.drop(S.ON_HAND, S.ON_ORDER, strict=False), on=k, how="left")
        .with_columns(
            pl.col(S.LEAD_TIME_DAYS).fill_null(data.lead_time_days),
            pl.col(S.LEAD_TIME_STD_DAYS).fill_null(data.lead_time_std_days),
            pl.col(S.REVIEW_PERIOD_DAYS).fill_null(data.review_period_days),
            pl.col(S.HOLDING_COST_RATE).fill_null(data.holding_cost_rate),
            pl.col(S.STOCKOUT_PENALTY).fill_null(pl.col(S.UNIT_PRICE) * data.goodwill_fraction),
            pl.col(S.VOLUME_M3).fill_null(data.volume_m3),
            pl.col(S.CASE_PACK).fill_null(1).clip(lower_bound=1),
            pl.col(S.MOQ).fill_null(0).clip(lower_bound=0),
        )
    )
    where = where or {}
    _fail_nulls(frame, [], where.get("warehouses", "warehouses"), "wh_index")
    _fail_nulls(
        frame, [S.UNIT_COST, S.UNIT_PRICE, S.SALVAGE_VALUE], where.get("products", "products"), "_in_products"
    )

    def col(name: str) -> F64:
        return frame.get_column(name).cast(pl.Float64).to_numpy().copy()

    cost, price = col(S.UNIT_COST), col(S.UNIT_PRICE)
    salvage = np.minimum(col(S.SALVAGE_VALUE), cost)
    holding = (
        col(S.HOLDING_COST_RATE)
        if policy.holding_cost_rate is None
        else np.full_like(cost, policy.holding_cost_rate)
    )
    goodwill = col(S.STOCKOUT_PENALTY) if policy.goodwill is None else np.full_like(cost, policy.goodwill)
    review = np.maximum(frame.get_column(S.REVIEW_PERIOD_DAYS).cast(pl.Int64).to_numpy(), 1)
    shelf = frame.get_column(S.SHELF_LIFE_DAYS).cast(pl.Float64).fill_null(np.nan).to_numpy().copy()
    shelf[shelf <= 0] = np.nan
    items = Items(
        warehouse=frame.get_column("wh_index").cast(pl.Int64).to_numpy(),
        price=price,
        cost=cost,
        salvage=salvage,
        goodwill=np.maximum(goodwill, 0.0),
        holding_rate=np.maximum(holding, 0.0),
        volume=np.maximum(col(S.VOLUME_M3), 0.0),
        case_pack=col(S.CASE_PACK),
        moq=col(S.MOQ),
        lead_time_days=np.maximum(col(S.LEAD_TIME_DAYS), 1e-3),
        lead_time_std_days=np.maximum(col(S.LEAD_TIME_STD_DAYS), 0.0),
        review_days=review,
        shelf_life_days=shelf,
        leftover=leftover_value(cost, salvage, np.maximum(holding, 0.0), review, policy.overage),
    )
    limits = Limits(
        ids=wh.get_column(S.WAREHOUSE_ID).to_list(),
        budget=wh.get_column(S.BUDGET).cast(pl.Float64).fill_null(np.inf).to_numpy(),
        capacity=wh.get_column(S.CAPACITY_M3).cast(pl.Float64).fill_null(np.inf).to_numpy(),
    )
    return items, limits


def sell_by_days(items: Items, carryover_days: float | None) -> F64:
    """``[N]`` days after arrival by which a unit must sell, else it is valued at salvage.

    The shelf life for perishables (NaN otherwise: no limit); with ``policy.carryover_days`` at
    most the review period plus that many days for every item. The planner passes this where
    :func:`~inventory_scale.inventory.demand.protection_demand` takes shelf lives; the simulator
    keeps the real shelf lives (only perishables outdate).
    """
    if carryover_days is None:
        return items.shelf_life_days
    return np.fmin(items.shelf_life_days, items.review_days + float(carryover_days))
