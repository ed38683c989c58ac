"""Dense per-series feature frames: the covariates the global LSTM reads at every period.

:func:`build_features` turns the long ``sales`` table (plus ``products``, ``warehouses`` and
``calendar``) into one row per series and period, from the series' first sale to ``end`` with no
gaps, using Polars expressions only. Periods past the last sales row (the forecast horizon) get
``units_sold`` 0, ``observed`` 0, the planned price and promotion flag where a plan gives them
(``data/planned.py``), else the last known price and no promotion, and ``in_stock`` 1.

Time features (the F axis of a batch, in :func:`time_features` order), all float32:

==================  ================================================================================
``day_of_week``     Monday .. Sunday -> [-0.5, 0.5] (daily data only)
``week_of_year``    ISO week 1 .. 53 -> [-0.5, 0.5]
``month_of_year``   January .. December -> [-0.5, 0.5]
``days_to_event``   periods until the next event of the warehouse's region, capped at
                    :data:`EVENT_CAP` periods, divided by the cap: [0, 1] (1 = none near)
``days_after_event``  periods since the previous event of the region, capped and scaled alike
``is_holiday``      calendar holiday of the region (0/1; 0 where the calendar has no row)
``snap``            SNAP-like benefit day of the region (0/1; 0 where absent)
``relative_price``  price / the series' reference price (median price of its sales rows); 1.0 when
                    either is unknown
``on_promotion``    promotion flag of the period (0/1; 0 without a sales row)
``in_stock``        in-stock flag of the period (0/1; 1 without a sales row: nothing says otherwise)
``log_age``         log1p(periods since the first sale) / log1p(periods in a year)
==================  ================================================================================

Static indices: :func:`build_vocab` collects the category and warehouse vocabularies of a
training shard (index 0 = ``"<unknown>"``) and :func:`encode_static` maps series onto them, so
values unseen in training map to 0 at forecast time.

"Periods" are days for ``1d``, weeks for ``1w`` (rounded day distance / 7) and calendar months for
``1mo``. Calendar rows are matched to periods by exact date and region, so the calendar must hold
the dates of the sales frequency (every source and the generator write it so); event distances use
an as-of search and work with any calendar granularity.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.errors import ConfigError, DataQualityError, SchemaError, format_keys

log = logging.getLogger(__name__)

TIME_FEATURES: tuple[str, ...] = (
    S.DAY_OF_WEEK,
    S.WEEK_OF_YEAR,
    S.MONTH_OF_YEAR,
    S.DAYS_TO_EVENT,
    S.DAYS_AFTER_EVENT,
    S.IS_HOLIDAY,
    S.SNAP,
    S.RELATIVE_PRICE,
    S.ON_PROMOTION,
    S.IN_STOCK,
    S.LOG_AGE,
)
"""Every time feature in batch order (daily data); :func:`time_features` gives a frequency's list."""

EVENT_CAP: dict[str, int] = {"1d": 30, "1w": 8, "1mo": 6}
"""Event distances are capped at this many periods (then scaled by it to [0, 1])."""

PERIODS_PER_YEAR: dict[str, int] = {"1d": 365, "1w": 52, "1mo": 12}
"""Scale of ``log_age``: it reaches 1.0 one year after the first sale."""

EVENT_TO, EVENT_AFTER = "to_event:", "after_event:"
"""Prefixes of the per-event distance features: periods until the next / since the previous day of
that named event in the warehouse's region, capped and scaled like ``days_to_event``."""

UNKNOWN = "<unknown>"
STATIC_FEATURES: tuple[str, ...] = (S.CATEGORY, S.WAREHOUSE_ID, S.SKU_ID)
OPTIONAL_STATIC: tuple[str, ...] = (S.SUBCATEGORY,)
"""Static columns a vocabulary may add after :data:`STATIC_FEATURES` (``model.subcategory``); a
checkpoint's vocabulary says which it was trained with."""
"""Static columns (the C axis of ``static_cat``) and the keys of a vocabulary. The SKU index lets
one global model learn an item's shape across warehouses; SKUs unseen in training map to 0
(unknown), which training also visits through static dropout (``DeepARNet``)."""

_SID = "_sid"  # series index in key order
_ROW = "_row"  # marker: the grid row matched a sales row
_REF_PRICE = "_ref_price"
_PLAN = "_planned"  # suffix of the planned price / promotion columns while joining (sales rows win)
_NEXT, _PREV = "_next_event", "_prev_event"
_EVENT_PARTS = pl.col(S.EVENT_NAME).str.split("|").list.eval(pl.element().str.strip_chars())
"""The event names of a calendar day (``"A|B"`` holds two), as a list column named ``event_name``."""


def time_features(freq: str) -> tuple[str, ...]:
    """Ordered time-feature names for ``freq`` (``day_of_week`` only for daily data)."""
    check_freq(freq)
    return TIME_FEATURES if freq == "1d" else tuple(f for f in TIME_FEATURES if f != S.DAY_OF_WEEK)


def event_names(calendar: pl.DataFrame) -> tuple[str, ...]:
    """Sorted distinct event names of ``calendar``; a day holding two events (``"A|B"``, as the M5
    calendar writes them) counts as a day of each."""
    names = calendar.filter(pl.col(S.EVENT_NAME).is_not_null()).select(_EVENT_PARTS).explode(S.EVENT_NAME)
    return tuple(sorted(n for n in names.to_series().unique().to_list() if n))


def named_event_features(events: Sequence[str]) -> tuple[str, ...]:
    """Time-feature names of the per-event distances (``model.named_events``), two per event."""
    return tuple(f"{prefix}{e}" for e in events for prefix in (EVENT_TO, EVENT_AFTER))


def events_of(feature_names: Sequence[str]) -> tuple[str, ...]:
    """The events whose distances ``feature_names`` hold (inverse of :func:`named_event_features`)."""
    return tuple(n[len(EVENT_TO) :] for n in feature_names if n.startswith(EVENT_TO))


def check_freq(freq: str) -> None:
    """Raise :class:`ConfigError` naming ``data.freq`` unless ``freq`` is one of ``S.FREQUENCIES``."""
    if freq not in S.FREQUENCIES:
        raise ConfigError(f"config key 'data.freq' must be one of {list(S.FREQUENCIES)}, got {freq!r}")


def offset_date(date: dt.date, freq: str, periods: int) -> dt.date:
    """``date`` moved by ``periods`` steps of ``freq`` (month ends saturate: Jan 31 + 1mo = Feb 28/29)."""
    check_freq(freq)
    count, unit = int(freq.rstrip("dwmo")), freq.lstrip("0123456789")
    step = f"{count * periods}{unit}"
    moved: dt.date = pl.select(pl.lit(date, pl.Date).dt.offset_by(step)).item()
    return moved


def require_columns(frame: pl.DataFrame, spec: S.TableSpec, columns: tuple[str, ...]) -> None:
    """Raise :class:`SchemaError` naming the table and the ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"table '{spec.name}' lacks column(s) {missing}; it has {frame.columns}")


def periods_between(start: pl.Expr, stop: pl.Expr, freq: str) -> pl.Expr:
    """Whole periods of ``freq`` from date ``start`` to date ``stop`` (negative when stop < start)."""
    if freq == "1mo":
        return (stop.dt.year() * 12 + stop.dt.month()) - (start.dt.year() * 12 + start.dt.month())
    days = (stop - start).dt.total_days()
    return days if freq == "1d" else (days / 7.0).round().cast(pl.Int64)


def _check_sales(sales: pl.DataFrame) -> pl.DataFrame:
    """Sales rows cast to the contract dtypes; duplicate keys raise :class:`DataQualityError`."""
    require_columns(sales, S.SALES, tuple(S.SALES.columns))
    sales = S.conform(sales, S.SALES)
    dup = sales.filter(pl.struct(S.SALES.key).is_duplicated())
    if dup.height:
        keys = dup.select(S.SALES.key).unique(maintain_order=True).rows()
        raise DataQualityError(
            f"sales: {len(keys)} (sku_id, warehouse_id, date) key(s) occur more than once: "
            f"{format_keys(keys)}"
        )
    return sales


def _calendar_features(
    grid: pl.DataFrame, calendar: pl.DataFrame, freq: str, events: Sequence[str] = ()
) -> pl.DataFrame:
    """Event distances, holiday and SNAP flags per (region, date) of the grid.

    Returns:
        Frame ``region, date, days_to_event, days_after_event, is_holiday, snap`` (float32), then
        the :func:`named_event_features` of ``events``; one row per distinct (region, date) of
        ``grid`` with a known region.
    """
    cap = EVENT_CAP[freq]
    cal = calendar.select(*S.CALENDAR.key, S.EVENT_NAME, S.IS_HOLIDAY, S.SNAP).unique(
        S.CALENDAR.key, keep="first"
    )
    cells = grid.filter(pl.col(S.REGION).is_not_null()).select(S.REGION, S.DATE).unique().sort(S.DATE)
    days = cal.filter(pl.col(S.EVENT_NAME).is_not_null())
    # (suffix, output names, the event's days): the nearest event of any name, then each named one
    wanted = [("", (S.DAYS_TO_EVENT, S.DAYS_AFTER_EVENT), days.select(S.REGION, S.DATE))]
    if events:
        parts = days.select(S.REGION, S.DATE, _EVENT_PARTS).explode(S.EVENT_NAME)
        wanted += [
            (str(k), (EVENT_TO + name, EVENT_AFTER + name), parts.filter(pl.col(S.EVENT_NAME) == name))
            for k, name in enumerate(events)
        ]
    distances: list[pl.Expr] = []
    for suffix, (to_name, after_name), occ in wanted:
        nxt, prv = _NEXT + suffix, _PREV + suffix
        occ = occ.select(S.REGION, S.DATE).unique().sort(S.DATE)
        sides: tuple[tuple[str, Literal["forward", "backward"]], ...] = ((nxt, "forward"), (prv, "backward"))
        for alias, strategy in sides:
            cells = cells.join_asof(
                occ.with_columns(pl.col(S.DATE).alias(alias)),
                on=S.DATE,
                by=S.REGION,
                strategy=strategy,
                check_sortedness=False,
            )
        distances += [
            _scaled(periods_between(pl.col(S.DATE), pl.col(nxt), freq), cap).alias(to_name),
            _scaled(periods_between(pl.col(prv), pl.col(S.DATE), freq), cap).alias(after_name),
        ]
    return cells.join(cal, on=list(S.CALENDAR.key), how="left").select(
        S.REGION,
        S.DATE,
        *distances[:2],
        pl.col(S.IS_HOLIDAY).fill_null(False).cast(pl.Float32),
        pl.col(S.SNAP).fill_null(False).cast(pl.Float32),
        *distances[2:],
    )


def _scaled(periods: pl.Expr, cap: int) -> pl.Expr:
    """Event distance clipped to [0, cap] periods, divided by the cap; 1.0 (none near) when unknown."""
    return (periods.clip(0, cap) / cap).fill_null(1.0).cast(pl.Float32)


def _require_on_grid(frame: pl.DataFrame, sales: pl.DataFrame, freq: str) -> None:
    """Every sales row must land on its series' grid (first date + k periods)."""
    matched = int(frame[_ROW].sum())
    if matched == sales.height:
        return
    off = sales.join(frame.select(*S.SALES.key), on=list(S.SALES.key), how="anti").select(S.SALES.key)
    raise DataQualityError(
        f"sales: {off.height} row(s) are not on the {freq!r} grid of their series (first sales date + k "
        f"periods), column '{S.DATE}': {format_keys(off.rows())}"
    )


def build_features(
    sales: pl.DataFrame,
    products: pl.DataFrame,
    warehouses: pl.DataFrame,
    calendar: pl.DataFrame,
    *,
    freq: str,
    end: dt.date,
    planned: pl.DataFrame | None = None,
    events: Sequence[str] = (),
) -> pl.DataFrame:
    """Dense feature frame: every series from its first sales date to ``end`` at ``freq``.

    Args:
        sales: ``S.SALES`` rows (sku_id, warehouse_id, date, units_sold, price, on_promotion,
            in_stock); rows after ``end`` are ignored.
        products: ``S.PRODUCTS`` rows; only ``sku_id, category`` and (when present)
            ``subcategory`` are read (unknown sku: null).
        warehouses: ``S.WAREHOUSES`` rows; only ``warehouse_id, region`` are read.
        calendar: ``S.CALENDAR`` rows (date, region, event_name, is_holiday, snap).
        freq: ``"1d"``, ``"1w"`` or ``"1mo"``.
        end: last period of every series' grid (may lie past the last sale: the horizon).
        planned: planned ``price, on_promotion`` rows (``data/planned.py``) for periods past the
            last sale; where a period has no sales row they replace the carried-forward price
            and the "no promotion" default. Rows of series absent from ``sales`` are ignored.
        events: named events whose distances follow the time features
            (:func:`named_event_features`; 1.0 where the region's calendar has none near).

    Returns:
        Frame sorted by (sku_id, warehouse_id, date) with columns ``sku_id, warehouse_id, category,
        subcategory (String, null when unknown), date, units_sold (Float32, 0 without a row),
        observed (Float32: 1 = a sales row exists and in_stock), price (Float32, carried forward
        then backward)`` and the :func:`time_features` columns (Float32).

    Raises:
        SchemaError: an input lacks a column it needs (names the table and columns).
        DataQualityError: duplicate sales keys, or sales rows off their series' ``freq`` grid.
        ConfigError: ``freq`` is not a known frequency.
    """
    check_freq(freq)
    require_columns(products, S.PRODUCTS, (S.SKU_ID, S.CATEGORY))
    require_columns(warehouses, S.WAREHOUSES, (S.WAREHOUSE_ID, S.REGION))
    require_columns(calendar, S.CALENDAR, (S.DATE, S.REGION, S.EVENT_NAME, S.IS_HOLIDAY, S.SNAP))
    sales = _check_sales(sales).filter(pl.col(S.DATE) <= end)
    keys = list(S.SERIES_KEY)
    bounds = (
        sales.group_by(keys)
        .agg(
            pl.col(S.DATE).min().alias("_first"),
            pl.col(S.PRICE).filter(pl.col(S.PRICE) > 0).median().alias(_REF_PRICE),
        )
        .sort(keys)
        .with_row_index(_SID)
    )
    grid = (
        bounds.with_columns(
            pl.date_ranges(pl.col("_first"), pl.lit(end, pl.Date), interval=freq).alias(S.DATE)
        )
        .explode(S.DATE)
        .drop("_first")
        .join(
            warehouses.select(S.WAREHOUSE_ID, S.REGION).unique(S.WAREHOUSE_ID, keep="first"),
            on=S.WAREHOUSE_ID,
            how="left",
        )
    )
    cal = _calendar_features(grid, calendar, freq, events)
    frame = grid.join(sales.with_columns(pl.lit(True).alias(_ROW)), on=[*keys, S.DATE], how="left")
    if planned is not None:
        plan = planned.select(*keys, S.DATE, pl.col(S.PRICE).cast(pl.Float32), S.ON_PROMOTION)
        frame = (
            frame.join(plan, on=[*keys, S.DATE], how="left", suffix=_PLAN)
            .with_columns(pl.coalesce(c, c + _PLAN).alias(c) for c in (S.PRICE, S.ON_PROMOTION))
            .drop(S.PRICE + _PLAN, S.ON_PROMOTION + _PLAN)
        )
    frame = (
        frame.join(
            products.select(
                S.SKU_ID,
                S.CATEGORY,
                (
                    pl.col(S.SUBCATEGORY) if S.SUBCATEGORY in products.columns else pl.lit(None, pl.String)
                ).alias(S.SUBCATEGORY),
            ).unique(S.SKU_ID, keep="first"),
            on=S.SKU_ID,
            how="left",
        )
        .join(cal, on=[S.REGION, S.DATE], how="left")
        .sort(_SID, S.DATE)
    )
    _require_on_grid(frame, sales, freq)
    price = pl.col(S.PRICE).forward_fill().backward_fill().over(_SID)
    has_ref = pl.col(_REF_PRICE).is_not_null() & price.is_not_null()
    date = pl.col(S.DATE)
    features = {
        S.DAY_OF_WEEK: (date.dt.weekday() - 1) / 6.0 - 0.5,
        S.WEEK_OF_YEAR: (date.dt.week() - 1) / 52.0 - 0.5,
        S.MONTH_OF_YEAR: (date.dt.month() - 1) / 11.0 - 0.5,
        S.DAYS_TO_EVENT: pl.col(S.DAYS_TO_EVENT).fill_null(1.0),
        S.DAYS_AFTER_EVENT: pl.col(S.DAYS_AFTER_EVENT).fill_null(1.0),
        S.IS_HOLIDAY: pl.col(S.IS_HOLIDAY).fill_null(0.0),
        S.SNAP: pl.col(S.SNAP).fill_null(0.0),
        S.RELATIVE_PRICE: pl.when(has_ref).then(price / pl.col(_REF_PRICE)).otherwise(1.0),
        S.ON_PROMOTION: pl.col(S.ON_PROMOTION).fill_null(False),
        S.IN_STOCK: pl.col(S.IN_STOCK).fill_null(True),
        S.LOG_AGE: pl.int_range(pl.len()).over(_SID).log1p() / math.log1p(PERIODS_PER_YEAR[freq]),
    }
    observed = pl.col(_ROW).is_not_null() & pl.col(S.UNITS_SOLD).is_not_null() & pl.col(S.IN_STOCK)
    out = frame.select(
        *keys,
        S.CATEGORY,
        S.SUBCATEGORY,
        S.DATE,
        pl.col(S.UNITS_SOLD).fill_null(0.0).cast(pl.Float32),
        observed.fill_null(False).cast(pl.Float32).alias(S.OBSERVED),
        price.cast(pl.Float32).alias(S.PRICE),
        *(features[f].cast(pl.Float32).alias(f) for f in time_features(freq)),
        *(pl.col(f).fill_null(1.0).cast(pl.Float32) for f in named_event_features(events)),
    )
    log.debug("features: %d series x %d rows at %s up to %s", bounds.height, out.height, freq, end)
    return out


def static_columns(vocab: dict[str, list[str]]) -> tuple[str, ...]:
    """The static columns of ``vocab``, in ``static_cat`` order: :data:`STATIC_FEATURES`, then any
    of :data:`OPTIONAL_STATIC` it holds."""
    return (*STATIC_FEATURES, *(c for c in OPTIONAL_STATIC if c in vocab))


def build_vocab(series: pl.DataFrame, extra: Sequence[str] = ()) -> dict[str, list[str]]:
    """Sorted vocabularies of :data:`STATIC_FEATURES` (plus ``extra`` of :data:`OPTIONAL_STATIC`)
    from ``series``, ``"<unknown>"`` first."""
    unknown = [c for c in extra if c not in OPTIONAL_STATIC]
    if unknown:
        raise SchemaError(f"static columns {unknown} are not among {list(OPTIONAL_STATIC)}")
    columns = (*STATIC_FEATURES, *(c for c in OPTIONAL_STATIC if c in extra))
    return {c: [UNKNOWN, *sorted(series[c].drop_nulls().unique().to_list())] for c in columns}


def encode_static(series: pl.DataFrame, vocab: dict[str, list[str]]) -> np.ndarray:
    """``[N, C]`` int64 vocabulary indices of ``series``' static columns; unseen values map to 0."""
    for c in STATIC_FEATURES:
        if c not in vocab or not vocab[c] or vocab[c][0] != UNKNOWN:
            raise SchemaError(f"vocab['{c}'] must exist and start with {UNKNOWN!r}; got keys {sorted(vocab)}")
    cols = [
        series.select(
            pl.col(c).replace_strict(vocab[c][1:], range(1, len(vocab[c])), default=0, return_dtype=pl.Int64)
        )
        .to_series()
        .to_numpy()
        for c in static_columns(vocab)
    ]
    return np.stack(cols, axis=1).astype(np.int64)
