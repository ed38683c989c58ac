"""The data contract: every table's columns, dtypes, keys and partitioning (DESIGN.md section 2).

Column names live here and nowhere else: other modules import the constants below. Each table is a
:class:`TableSpec` with a Polars schema, its primary key, the columns that may hold nulls and the
hive partition column of its on-disk layout.

Input tables (under the dataset root ``data.root``)::

    sales/        warehouse_id=W/part-*.parquet  one row per (sku_id, warehouse_id, date)
    products/     part-*.parquet                 one row per sku_id
    warehouses/   part-*.parquet                 one row per warehouse_id
    inventory/    part-*.parquet                 one row per (sku_id, warehouse_id)
    inbound/      part-*.parquet                 in-transit orders (sku_id, warehouse_id, arrival_date)
    calendar/     part-*.parquet                 one row per (date, region)
    truth/        warehouse_id=W/part-*.parquet  synthetic data only: the demand behind the sales
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

# --- keys -----------------------------------------------------------------------------------
SKU_ID = "sku_id"
WAREHOUSE_ID = "warehouse_id"
DATE = "date"
REGION = "region"

# --- sales ----------------------------------------------------------------------------------
UNITS_SOLD = "units_sold"
PRICE = "price"
ON_PROMOTION = "on_promotion"
IN_STOCK = "in_stock"

# --- products -------------------------------------------------------------------------------
CATEGORY = "category"
SUBCATEGORY = "subcategory"
TITLE = "title"
DESCRIPTION = "description"
UNIT_COST = "unit_cost"
UNIT_PRICE = "unit_price"
SALVAGE_VALUE = "salvage_value"
SHELF_LIFE_DAYS = "shelf_life_days"
CASE_PACK = "case_pack"
MOQ = "moq"
VOLUME_M3 = "volume_m3"
LAUNCH_DATE = "launch_date"

# --- warehouses -----------------------------------------------------------------------------
CAPACITY_M3 = "capacity_m3"
BUDGET = "budget"

# --- inventory / inbound --------------------------------------------------------------------
ON_HAND = "on_hand"
ON_ORDER = "on_order"
LEAD_TIME_DAYS = "lead_time_days"
LEAD_TIME_STD_DAYS = "lead_time_std_days"
REVIEW_PERIOD_DAYS = "review_period_days"
HOLDING_COST_RATE = "holding_cost_rate"
STOCKOUT_PENALTY = "stockout_penalty"
ARRIVAL_DATE = "arrival_date"
QUANTITY = "quantity"

# --- calendar -------------------------------------------------------------------------------
EVENT_NAME = "event_name"
EVENT_TYPE = "event_type"
IS_HOLIDAY = "is_holiday"
SNAP = "snap"

# --- truth (synthetic only) -----------------------------------------------------------------
DEMAND_MEAN = "demand_mean"
DEMAND = "demand"

# --- Nixtla-compatible view and forecast outputs -------------------------------------------
UNIQUE_ID = "unique_id"
DS = "ds"
Y = "y"
CUTOFF = "cutoff"
STEP = "step"
MEAN = "mean"
SAMPLE_ID = "sample_id"

# --- plans ----------------------------------------------------------------------------------
ORDER_QTY = "order_qty"
ORDER_UP_TO = "order_up_to"
INVENTORY_POSITION = "inventory_position"
EXPECTED_PROFIT = "expected_profit"
EXPECTED_FILL_RATE = "expected_fill_rate"
BINDING_CONSTRAINT = "binding_constraint"
REASON = "reason"

# --- quarantine -----------------------------------------------------------------------------
REJECT_REASON = "reject_reason"

SERIES_KEY: tuple[str, str] = (SKU_ID, WAREHOUSE_ID)

# Event types the calendar may carry; the synthetic marketplace uses all of them.
EVENT_TYPES: tuple[str, ...] = ("shopping", "holiday", "cultural", "religious", "sporting", "national")

# Frequencies a sales table may have (Polars duration strings).
FREQUENCIES: tuple[str, ...] = ("1d", "1w", "1mo")


def quantile_column(q: float) -> str:
    """Name of the column holding quantile ``q`` of daily demand, e.g. ``q0.05``."""
    return f"q{q:g}"


def protection_quantile_column(q: float) -> str:
    """Name of the column holding quantile ``q`` of protection-interval demand, e.g. ``pi_q0.9``."""
    return f"pi_q{q:g}"


@dataclass(frozen=True)
class TableSpec:
    """Schema, key and layout of one table of the contract.

    Attributes:
        name: folder name of the table under the dataset root.
        schema: column -> Polars dtype, in canonical order.
        key: columns that identify a row (unique, non-null).
        nullable: columns that may contain nulls (every other column must not).
        partition_by: hive partition column of the on-disk layout, if any.
    """

    name: str
    schema: pl.Schema
    key: tuple[str, ...]
    nullable: frozenset[str] = field(default_factory=frozenset)
    partition_by: str | None = None

    @property
    def columns(self) -> list[str]:
        """Column names in canonical order."""
        return list(self.schema.names())


SALES = TableSpec(
    name="sales",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            DATE: pl.Date,
            UNITS_SOLD: pl.Float32,
            PRICE: pl.Float32,
            ON_PROMOTION: pl.Boolean,
            IN_STOCK: pl.Boolean,
        }
    ),
    key=(SKU_ID, WAREHOUSE_ID, DATE),
    partition_by=WAREHOUSE_ID,
)

PRODUCTS = TableSpec(
    name="products",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            CATEGORY: pl.String,
            SUBCATEGORY: pl.String,
            TITLE: pl.String,
            DESCRIPTION: pl.String,
            UNIT_COST: pl.Float32,
            UNIT_PRICE: pl.Float32,
            SALVAGE_VALUE: pl.Float32,
            SHELF_LIFE_DAYS: pl.Int32,
            CASE_PACK: pl.Int32,
            MOQ: pl.Int32,
            VOLUME_M3: pl.Float32,
            LAUNCH_DATE: pl.Date,
        }
    ),
    key=(SKU_ID,),
    nullable=frozenset({SHELF_LIFE_DAYS, DESCRIPTION}),
)

WAREHOUSES = TableSpec(
    name="warehouses",
    schema=pl.Schema(
        {WAREHOUSE_ID: pl.String, REGION: pl.String, CAPACITY_M3: pl.Float64, BUDGET: pl.Float64}
    ),
    key=(WAREHOUSE_ID,),
)

INVENTORY = TableSpec(
    name="inventory",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            ON_HAND: pl.Float32,
            ON_ORDER: pl.Float32,
            LEAD_TIME_DAYS: pl.Float32,
            LEAD_TIME_STD_DAYS: pl.Float32,
            REVIEW_PERIOD_DAYS: pl.Int32,
            HOLDING_COST_RATE: pl.Float32,
            STOCKOUT_PENALTY: pl.Float32,
        }
    ),
    key=(SKU_ID, WAREHOUSE_ID),
)

INBOUND = TableSpec(
    name="inbound",
    schema=pl.Schema(
        {SKU_ID: pl.String, WAREHOUSE_ID: pl.String, ARRIVAL_DATE: pl.Date, QUANTITY: pl.Float32}
    ),
    key=(SKU_ID, WAREHOUSE_ID, ARRIVAL_DATE),
)

CALENDAR = TableSpec(
    name="calendar",
    schema=pl.Schema(
        {
            DATE: pl.Date,
            REGION: pl.String,
            EVENT_NAME: pl.String,
            EVENT_TYPE: pl.String,
            IS_HOLIDAY: pl.Boolean,
            SNAP: pl.Boolean,
        }
    ),
    key=(DATE, REGION),
    nullable=frozenset({EVENT_NAME, EVENT_TYPE}),
)

TRUTH = TableSpec(
    name="truth",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            DATE: pl.Date,
            DEMAND_MEAN: pl.Float32,
            DEMAND: pl.Float32,
        }
    ),
    key=(SKU_ID, WAREHOUSE_ID, DATE),
    partition_by=WAREHOUSE_ID,
)

PLANNED_PRICES = TableSpec(
    name="planned_prices",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            DATE: pl.Date,
            PRICE: pl.Float32,
            ON_PROMOTION: pl.Boolean,
        }
    ),
    key=(SKU_ID, WAREHOUSE_ID, DATE),
    nullable=frozenset({PRICE, ON_PROMOTION}),
)
"""Optional: prices and promotions already set for future dates (``data.planned_prices``). A null
price keeps the last known one; a null ``on_promotion`` means no promotion."""

PLANNED_SOURCES: tuple[str, ...] = ("none", "table", "sales")
"""Where horizon prices and promotions come from (``data.planned_prices``): nowhere (last price
carried forward, no promotion), the ``planned_prices`` table when the root has one, or the sales
rows after the cutoff (backtests on data whose prices were set in advance)."""

INPUT_TABLES: tuple[TableSpec, ...] = (SALES, PRODUCTS, WAREHOUSES, INVENTORY, INBOUND, CALENDAR)
"""Tables every dataset root holds (``inbound`` may be empty)."""

ALL_TABLES: dict[str, TableSpec] = {t.name: t for t in (*INPUT_TABLES, TRUTH)}
"""Tables a generated dataset root holds."""

OPTIONAL_TABLES: dict[str, TableSpec] = {PLANNED_PRICES.name: PLANNED_PRICES}
"""Input tables a root may hold (read when present)."""


def table_spec(name: str) -> TableSpec:
    """Look a table up by its folder name; raises ``KeyError`` naming the known tables."""
    try:
        return {**ALL_TABLES, **OPTIONAL_TABLES}[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {sorted({*ALL_TABLES, *OPTIONAL_TABLES})}") from None


def conform(frame: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """Select ``spec``'s columns in canonical order, cast to its dtypes.

    Used by writers (generator, loaders) that build frames of the right content; it is not a
    validator: :mod:`inventory_scale.data.validate` checks untrusted input.
    """
    return frame.select([pl.col(c).cast(t) for c, t in spec.schema.items()])


def empty_frame(spec: TableSpec) -> pl.DataFrame:
    """A zero-row frame with ``spec``'s schema."""
    return pl.DataFrame(schema=spec.schema)


def nixtla_view(sales: pl.LazyFrame) -> pl.LazyFrame:
    """``unique_id, ds, y`` view of a sales frame (unique_id = ``sku_id/warehouse_id``)."""
    return sales.select(
        pl.concat_str([pl.col(SKU_ID), pl.col(WAREHOUSE_ID)], separator="/").alias(UNIQUE_ID),
        pl.col(DATE).alias(DS),
        pl.col(UNITS_SOLD).alias(Y),
    )


# --- forecast frame extras ------------------------------------------------------------------
PI_STEPS = "pi_steps"  # length of the protection interval (lead time + review period) in periods
PI_MEAN = "pi_mean"  # mean demand over the protection interval

# --- evaluation -----------------------------------------------------------------------------
MODEL = "model"
METRIC = "metric"
VALUE = "value"
GROUP = "group"
GROUP_VALUE = "group_value"
VELOCITY_CLASS = "velocity_class"
ACTUAL = "actual"
SCALE_MAE = "scale_mae"  # MASE denominator: in-sample mean |y_t - y_{t-m}|
SCALE_MSE = "scale_mse"  # RMSSE denominator: in-sample mean (y_t - y_{t-1})^2 after the first sale
WEIGHT = "weight"  # WRMSSE weight: dollar sales over the last 28 periods before the cutoff
MASE = "mase"
RMSSE = "rmsse"
WRMSSE = "wrmsse"
SPL = "spl"  # scaled pinball loss, averaged over the forecast quantiles
CRPS = "crps"  # scaled CRPS from sample paths
COVERAGE_80 = "coverage_80"
COVERAGE_90 = "coverage_90"
PIT_COVERAGE_80 = "pit_coverage_80"  # randomized-PIT coverage for counts (scores.pit_coverage)
PIT_COVERAGE_90 = "pit_coverage_90"
BIAS = "bias"
SUMMARY_METRICS: tuple[str, ...] = (
    MASE,
    RMSSE,
    WRMSSE,
    SPL,
    CRPS,
    COVERAGE_80,
    COVERAGE_90,
    PIT_COVERAGE_80,
    PIT_COVERAGE_90,
    BIAS,
)
"""Accuracy metrics in table order (WRMSSE exists only as an aggregate, the rest per series too)."""

# --- features -------------------------------------------------------------------------------
# Columns of the dense per-series feature frame (data/features.py). The flags is_holiday, snap,
# on_promotion and in_stock keep their input names there, as float 0/1 covariates.
OBSERVED = "observed"  # 1.0 = a sales row exists and the item was in stock; 0.0 = no demand observation
DAY_OF_WEEK = "day_of_week"  # Monday .. Sunday scaled to [-0.5, 0.5] (daily data only)
WEEK_OF_YEAR = "week_of_year"  # ISO week 1 .. 53 scaled to [-0.5, 0.5]
MONTH_OF_YEAR = "month_of_year"  # January .. December scaled to [-0.5, 0.5]
DAYS_TO_EVENT = "days_to_event"  # periods until the next calendar event of the region, capped, in [0, 1]
DAYS_AFTER_EVENT = "days_after_event"  # periods since the previous event of the region, capped, in [0, 1]
RELATIVE_PRICE = "relative_price"  # price / the series' median price over its history (1.0 when unknown)
LOG_AGE = "log_age"  # log1p(periods since the series' first sale), ~1.0 after one year

# --- sharding -------------------------------------------------------------------------------
SHARD = "shard"  # shard id of a series (distributed/sharding.py)
N_PERIODS = "n_periods"  # history length of a series in periods
STATUS = "status"


def forecast_spec(quantiles: list[float], protection_quantiles: list[float]) -> TableSpec:
    """Spec of the ``forecasts/`` output for the configured quantile levels (see forecast_frame)."""
    cols: dict[str, pl.DataType | type[pl.DataType]] = {
        SKU_ID: pl.String,
        WAREHOUSE_ID: pl.String,
        CUTOFF: pl.Date,
        DS: pl.Date,
        STEP: pl.Int32,
        MEAN: pl.Float32,
    }
    cols.update({quantile_column(q): pl.Float32 for q in quantiles})
    cols.update({PI_STEPS: pl.Int32, PI_MEAN: pl.Float32})
    cols.update({protection_quantile_column(q): pl.Float32 for q in protection_quantiles})
    return TableSpec(
        name="forecasts",
        schema=pl.Schema(cols),
        key=(SKU_ID, WAREHOUSE_ID, CUTOFF, DS),
        partition_by=WAREHOUSE_ID,
    )


SHARDS = TableSpec(
    name="shards",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            CATEGORY: pl.String,
            N_PERIODS: pl.Int64,
            SHARD: pl.Int32,
        }
    ),
    key=(SKU_ID, WAREHOUSE_ID),
    nullable=frozenset({CATEGORY}),
)
"""Series -> shard assignment of a run (``<run.dir>/shards/``)."""

BACKTEST_METRICS = TableSpec(
    name="metrics",
    schema=pl.Schema(
        {
            MODEL: pl.String,
            CUTOFF: pl.Date,
            METRIC: pl.String,
            VALUE: pl.Float64,
            GROUP: pl.String,
            GROUP_VALUE: pl.String,
        }
    ),
    key=(MODEL, CUTOFF, METRIC, GROUP, GROUP_VALUE),
    nullable=frozenset({VALUE}),
)
"""Aggregated backtest accuracy (``<run.dir>/backtest/metrics/``), one row per model x cutoff x
metric x group."""

PATHS = TableSpec(
    name="paths",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            CUTOFF: pl.Date,
            SAMPLE_ID: pl.Int32,
            STEP: pl.Int32,
            VALUE: pl.Float32,
        }
    ),
    key=(SKU_ID, WAREHOUSE_ID, CUTOFF, SAMPLE_ID, STEP),
    partition_by=WAREHOUSE_ID,
)
"""Kept sample paths (``forecast.keep_paths=true``) for the optimizer."""

# --- plans and policy backtest (issue #6) ------------------------------------------------------
# Values of ``binding_constraint``: which constraint set a plan row's order quantity.
BINDING_VALUES: tuple[str, ...] = ("none", "budget", "capacity", "moq", "case_pack", "shelf_life")
POLICY = "policy"
KPI = "kpi"
ALL_WAREHOUSES = "all"  # warehouse_id of the total rows of the policy backtest
# per-series simulation outputs (units over the episode unless named otherwise)
SALES_UNITS = "sales"
LOST_SALES = "lost_sales"
OUTDATED = "outdated"
ORDERS = "orders"
AVG_ON_HAND = "avg_on_hand"
REVENUE = "revenue"
PURCHASE_COST = "purchase_cost"
HOLDING_COST = "holding_cost"
LOST_SALES_COST = "lost_sales_cost"
OUTDATING_COST = "outdating_cost"
END_STOCK_WRITEDOWN = "end_stock_writedown"
PROFIT = "profit"
FILL_RATE = "fill_rate"
CYCLE_SERVICE_LEVEL = "cycle_service_level"
STOCKOUT_DAYS = "stockout_days"
AVG_STOCK_VALUE = "avg_stock_value"
TURNS = "turns"
OVERFLOW_M3_DAYS = "overflow_m3_days"

PLANS = TableSpec(
    name="plans",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            CUTOFF: pl.Date,
            ORDER_QTY: pl.Float64,
            ORDER_UP_TO: pl.Float64,
            INVENTORY_POSITION: pl.Float64,
            EXPECTED_PROFIT: pl.Float64,
            EXPECTED_FILL_RATE: pl.Float64,
            BINDING_CONSTRAINT: pl.String,
            REASON: pl.String,
        }
    ),
    key=(SKU_ID, WAREHOUSE_ID, CUTOFF),
    partition_by=WAREHOUSE_ID,
)
"""Reorder plans (``<run.dir>/plans/``): one row per series; ``binding_constraint`` in
:data:`BINDING_VALUES`, ``reason`` a short sentence for planners."""

POLICY_KPIS = TableSpec(
    name="policy",
    schema=pl.Schema(
        {POLICY: pl.String, CUTOFF: pl.Date, WAREHOUSE_ID: pl.String, KPI: pl.String, VALUE: pl.Float64}
    ),
    key=(POLICY, CUTOFF, WAREHOUSE_ID, KPI),
    nullable=frozenset({VALUE}),
)
"""Policy A/B KPIs (``<run.dir>/backtest/policy.parquet``), per policy x cutoff x warehouse (and
``warehouse_id = "all"`` for the totals)."""

POLICY_SERIES = TableSpec(
    name="policy_series",
    schema=pl.Schema(
        {
            POLICY: pl.String,
            CUTOFF: pl.Date,
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            DEMAND: pl.Float64,
            SALES_UNITS: pl.Float64,
            LOST_SALES: pl.Float64,
            OUTDATED: pl.Float64,
            ORDERS: pl.Float64,
            AVG_ON_HAND: pl.Float64,
            REVENUE: pl.Float64,
            PURCHASE_COST: pl.Float64,
            HOLDING_COST: pl.Float64,
            LOST_SALES_COST: pl.Float64,
            OUTDATING_COST: pl.Float64,
            END_STOCK_WRITEDOWN: pl.Float64,
            PROFIT: pl.Float64,
        }
    ),
    key=(POLICY, CUTOFF, SKU_ID, WAREHOUSE_ID),
)
"""Per-series outcome of each policy at each cutoff (``<run.dir>/backtest/policy_series/``)."""

# --- monitoring (issue #10) -------------------------------------------------------------------
ASOF = "asof"  # last date of the newly arrived sales the monitor compared with the forecast
SEVERITY = "severity"  # high | medium | low
DETAIL = "detail"  # a sentence with the numbers behind an exception
SUGGESTED_ACTION = "suggested_action"  # what a planner should do about it
NEW_DAYS = "new_days"  # days of sales after the forecast cutoff the monitor saw
SEVERITIES: tuple[str, ...] = ("high", "medium", "low")
# Values of ``reason`` in the exceptions table, in the order the monitor checks them.
EXCEPTION_REASONS: tuple[str, ...] = (
    "band_breach",  # actuals outside the 90% band k days in a row
    "level_shift",  # actuals persistently on one side of the median, by a material margin
    "stockout_risk",  # projected on hand short of the demand before the next receipt
    "excess_risk",  # cover beyond monitor.excess_cover_days
    "expiry_risk",  # cover beyond the shelf life: units will outdate
)

EXCEPTIONS = TableSpec(
    name="exceptions",
    schema=pl.Schema(
        {
            SKU_ID: pl.String,
            WAREHOUSE_ID: pl.String,
            CUTOFF: pl.Date,
            ASOF: pl.Date,
            NEW_DAYS: pl.Int32,
            SEVERITY: pl.String,
            REASON: pl.String,
            DETAIL: pl.String,
            SUGGESTED_ACTION: pl.String,
        }
    ),
    key=(SKU_ID, WAREHOUSE_ID, REASON),
)
"""Monitoring exceptions (``<run.dir>/monitor/exceptions/``): one row per series x reason, with
``severity`` in :data:`SEVERITIES` and ``reason`` in :data:`EXCEPTION_REASONS`."""
