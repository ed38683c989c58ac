"""Regions, the marketplace event calendar and the demand effects of events (synthetic data).

A :class:`Region` carries what differs between markets: the timing of weather-driven seasons
(southern-hemisphere regions are shifted by half a year), how pronounced they are (tropical
regions hardly have seasons), the demand level, the lead-time factor of its warehouses, how much
its shoppers care about the lunar new year, and the days of the month with a SNAP-like benefit.

An :class:`EventRule` gives an event's dates per year, the regions that observe it (with a
strength) and its demand effect: a pre-event window (shoppers wait for a sale: a dip; or a gifting
ramp-up), a spike on the event days scaled by how much each category responds, and a closure
factor for days when logistics stop (Christmas, the Spring Festival holiday).

:func:`build_calendar` writes the ``calendar`` table (one row per date and region);
:func:`event_effects` turns the same rules into a ``[regions, categories, days]`` multiplier.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from inventory_scale import schema as S
from inventory_scale.errors import ConfigError


@dataclass(frozen=True)
class Region:
    """A market served by one or more warehouses (see module docstring for the fields' roles)."""

    name: str
    season_shift_days: int
    weather_amplitude: float
    level: float
    lead_time_factor: float
    lunar_strength: float
    snap_days: tuple[int, ...] = ()


# Warehouses are assigned to regions round-robin in this order, so two warehouses already span
# both hemispheres and three reach the 11.11 / 618 market.
REGIONS: tuple[Region, ...] = (
    Region("north_america", 0, 1.0, 1.3, 1.2, 0.15, snap_days=tuple(range(1, 11))),
    Region("oceania", 182, 0.8, 0.6, 1.6, 0.3),
    Region("east_asia", 6, 1.0, 1.5, 0.7, 1.0),
    Region("europe", 12, 0.9, 1.0, 1.0, 0.1),
    Region("south_america", 176, 0.7, 0.8, 1.4, 0.05, snap_days=(1, 4, 7, 10, 13, 16, 19)),
    Region("southeast_asia", 0, 0.3, 0.9, 0.8, 0.8),
)
REGION_NAMES: tuple[str, ...] = tuple(r.name for r in REGIONS)

# First day of the lunar new year (Spring Festival), 2000-2049.
_LUNAR_NEW_YEAR = (
    "2000-02-05 2001-01-24 2002-02-12 2003-02-01 2004-01-22 2005-02-09 2006-01-29 2007-02-18 "
    "2008-02-07 2009-01-26 2010-02-14 2011-02-03 2012-01-23 2013-02-10 2014-01-31 2015-02-19 "
    "2016-02-08 2017-01-28 2018-02-16 2019-02-05 2020-01-25 2021-02-12 2022-02-01 2023-01-22 "
    "2024-02-10 2025-01-29 2026-02-17 2027-02-06 2028-01-26 2029-02-13 2030-02-03 2031-01-23 "
    "2032-02-11 2033-01-31 2034-02-19 2035-02-08 2036-01-28 2037-02-15 2038-02-04 2039-01-24 "
    "2040-02-12 2041-02-01 2042-01-22 2043-02-10 2044-01-30 2045-02-17 2046-02-06 2047-01-26 "
    "2048-02-14 2049-02-02"
)
LUNAR_NEW_YEAR: dict[int, dt.date] = {
    d.year: d for d in (dt.date.fromisoformat(s) for s in _LUNAR_NEW_YEAR.split())
}
FIRST_YEAR, LAST_YEAR = min(LUNAR_NEW_YEAR), max(LUNAR_NEW_YEAR)

# fmt: off
# How strongly each category responds to an event's spike or ramp (missing category: 0).
RESPONSES: dict[str, dict[str, float]] = {
    "shopping": {
        "electronics": 1.0, "clothing": 0.9, "beauty": 0.85, "toys": 0.75, "home": 0.7,
        "sports": 0.6, "school": 0.45, "food": 0.35, "holiday": 0.3,
    },
    "gift": {
        "toys": 1.0, "electronics": 0.7, "beauty": 0.7, "holiday": 0.6, "food": 0.5,
        "clothing": 0.4, "sports": 0.3, "home": 0.3, "school": 0.1,
    },
    "festive": {"food": 1.0, "holiday": 0.8, "clothing": 0.6, "beauty": 0.3, "home": 0.3, "toys": 0.3},
    "sport": {"food": 0.8, "electronics": 0.6, "sports": 0.3},
}
# fmt: on
SNAP_RESPONSE: dict[str, float] = {"food": 0.15, "beauty": 0.05, "home": 0.03}


def nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The ``n``-th ``weekday`` (Monday = 0) of a month, e.g. the 4th Thursday of November."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def easter(year: int) -> dt.date:
    """Western Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    q = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * q + 114, 31)
    return dt.date(year, month, day + 1)


def lunar_new_year(year: int) -> dt.date:
    """First day of the lunar new year; :class:`ConfigError` outside the table's years."""
    try:
        return LUNAR_NEW_YEAR[year]
    except KeyError:
        raise ConfigError(
            f"no lunar-new-year date for {year}: the table covers {FIRST_YEAR}-{LAST_YEAR}"
        ) from None


def _fixed(month: int, day: int) -> Callable[[int], dt.date]:
    return lambda y: dt.date(y, month, day)


@dataclass(frozen=True)
class EventRule:
    """One recurring event; effects are multiplicative and scaled by the region's strength."""

    name: str
    event_type: str
    first_day: Callable[[int], dt.date]
    regions: Mapping[str, float]
    duration: int = 1
    holiday_in: frozenset[str] = field(default_factory=frozenset)
    response: str | None = None
    spike: float = 0.0
    pre_days: int = 0
    pre_effect: float = 0.0
    day_factor: float = 1.0


_ALL = dict.fromkeys(REGION_NAMES, 1.0)
_WEST = {"north_america": 1.0, "europe": 1.0, "oceania": 1.0, "south_america": 1.0}
_SHOP = "shopping"

# fmt: off
# In priority order: the calendar labels a (date, region) with the first rule that covers it.
RULES: tuple[EventRule, ...] = (
    EventRule("Singles' Day 11.11", _SHOP, _fixed(11, 11),
              {"east_asia": 1.0, "southeast_asia": 0.8, "europe": 0.15, "north_america": 0.1},
              response=_SHOP, spike=3.0, pre_days=10, pre_effect=-0.3),
    EventRule("618 Mid-Year Festival", _SHOP, _fixed(6, 18), {"east_asia": 1.0, "southeast_asia": 0.5},
              response=_SHOP, spike=2.0, pre_days=7, pre_effect=-0.25),
    EventRule("Black Friday", _SHOP, lambda y: nth_weekday(y, 11, 3, 4) + dt.timedelta(days=1),
              {"north_america": 1.0, "europe": 0.7, "oceania": 0.6, "south_america": 0.8},
              response=_SHOP, spike=2.5, pre_days=7, pre_effect=-0.25),
    EventRule("Cyber Monday", _SHOP, lambda y: nth_weekday(y, 11, 3, 4) + dt.timedelta(days=4),
              {"north_america": 1.0, "europe": 0.5, "oceania": 0.4, "south_america": 0.5},
              response=_SHOP, spike=1.5),
    EventRule("Mid-July Mega Sale", _SHOP, lambda y: nth_weekday(y, 7, 1, 2),
              {"north_america": 1.0, "europe": 0.8, "oceania": 0.5, "south_america": 0.3},
              duration=2, response=_SHOP, spike=1.8, pre_days=7, pre_effect=-0.2),
    EventRule("Double 12", _SHOP, _fixed(12, 12), {"southeast_asia": 1.0, "east_asia": 0.5},
              response=_SHOP, spike=1.5, pre_days=5, pre_effect=-0.15),
    EventRule("9.9 Super Shopping Day", _SHOP, _fixed(9, 9), {"southeast_asia": 1.0},
              response=_SHOP, spike=1.2, pre_days=3, pre_effect=-0.1),
    EventRule("Christmas", "religious", _fixed(12, 25),
              {**_WEST, "southeast_asia": 0.3, "east_asia": 0.2}, holiday_in=frozenset(_WEST),
              response="gift", pre_days=24, pre_effect=0.8, day_factor=0.5),
    EventRule("Boxing Day", _SHOP, _fixed(12, 26), {"europe": 0.8, "oceania": 1.0},
              holiday_in=frozenset({"europe", "oceania"}), response=_SHOP, spike=1.2),
    EventRule("Chinese New Year", "cultural", lunar_new_year,
              {"east_asia": 1.0, "southeast_asia": 0.8, "oceania": 0.2, "north_america": 0.1},
              holiday_in=frozenset({"east_asia", "southeast_asia"}), response="festive",
              pre_days=21, pre_effect=0.8, day_factor=0.5),
    EventRule("Spring Festival Golden Week", "holiday", lambda y: lunar_new_year(y) + dt.timedelta(days=1),
              {"east_asia": 1.0}, duration=6, holiday_in=frozenset({"east_asia"}), day_factor=0.6),
    EventRule("New Year's Day", "holiday", _fixed(1, 1), _ALL, holiday_in=frozenset(REGION_NAMES),
              day_factor=0.8),
    EventRule("Valentine's Day", "cultural", _fixed(2, 14),
              {**_WEST, "east_asia": 0.5, "southeast_asia": 0.5}, response="gift", pre_days=10,
              pre_effect=0.3),
    EventRule("Easter", "religious", easter, {**_WEST, "north_america": 0.6},
              holiday_in=frozenset({"europe", "oceania", "south_america"}), response="gift",
              pre_days=7, pre_effect=0.2, day_factor=0.8),
    EventRule("Halloween", "cultural", _fixed(10, 31), {"north_america": 1.0, "europe": 0.4, "oceania": 0.3}),
    EventRule("Thanksgiving", "national", lambda y: nth_weekday(y, 11, 3, 4), {"north_america": 1.0},
              holiday_in=frozenset({"north_america"}), day_factor=0.7),
    EventRule("Independence Day", "national", _fixed(7, 4), {"north_america": 1.0},
              holiday_in=frozenset({"north_america"}), day_factor=0.85),
    EventRule("Big Game Sunday", "sporting", lambda y: nth_weekday(y, 2, 6, 2), {"north_america": 1.0},
              response="sport", pre_days=7, pre_effect=0.4, day_factor=0.9),
    EventRule("Labour Day", "national", _fixed(5, 1),
              {"europe": 1.0, "east_asia": 1.0, "south_america": 1.0, "southeast_asia": 1.0},
              holiday_in=frozenset({"europe", "east_asia", "south_america", "southeast_asia"}),
              day_factor=0.85),
    EventRule("National Day Golden Week", "national", _fixed(10, 1), {"east_asia": 1.0}, duration=7,
              holiday_in=frozenset({"east_asia"}), day_factor=0.75),
    EventRule("Australia Day", "national", _fixed(1, 26), {"oceania": 1.0},
              holiday_in=frozenset({"oceania"}), day_factor=0.85),
    EventRule("Carnival", "cultural", lambda y: easter(y) - dt.timedelta(days=48), {"south_america": 1.0},
              duration=2, holiday_in=frozenset({"south_america"}), day_factor=0.7),
    EventRule("Independence Day", "national", _fixed(9, 7), {"south_america": 1.0},
              holiday_in=frozenset({"south_america"}), day_factor=0.85),
    EventRule("National Day", "national", _fixed(8, 9), {"southeast_asia": 1.0},
              holiday_in=frozenset({"southeast_asia"}), day_factor=0.85),
)
# fmt: on


def check_years(start: dt.date, days: int) -> None:
    """Raise :class:`ConfigError` when the horizon leaves the years the event tables cover."""
    end = start + dt.timedelta(days=days - 1)
    if start.year < FIRST_YEAR or end.year > LAST_YEAR - 1:
        raise ConfigError(
            f"config keys 'data.start_date'/'data.days' span {start}..{end}; the synthetic event calendar "
            f"covers {FIRST_YEAR}-01-01..{LAST_YEAR - 1}-12-31"
        )


def occurrences(start: dt.date, days: int) -> list[tuple[EventRule, int]]:
    """Every (rule, index of its first day relative to ``start``) whose windows touch the horizon."""
    end = start + dt.timedelta(days=days)
    years = range(max(start.year - 1, FIRST_YEAR), min(end.year + 1, LAST_YEAR) + 1)
    out = []
    for rule in RULES:
        for year in years:
            d0 = (rule.first_day(year) - start).days
            if d0 + rule.duration > 0 and d0 - rule.pre_days < days:
                out.append((rule, d0))
    return out


def lunar_offsets(start: dt.date, days: int) -> npt.NDArray[np.float32]:
    """Signed days from each day to the nearest lunar new year, shape ``[days]``."""
    lny = np.array([(d - start).days for d in LUNAR_NEW_YEAR.values()], dtype=np.int64)
    t = np.arange(days)
    diff = t[:, None] - lny[None, :]  # [days, years]
    return diff[t, np.abs(diff).argmin(axis=1)].astype(np.float32)


def snap_mask(start: dt.date, days: int) -> npt.NDArray[np.bool_]:
    """SNAP-like benefit days, shape ``[regions, days]`` (regions in :data:`REGIONS` order)."""
    dom = np.array([(start + dt.timedelta(days=i)).day for i in range(days)])
    return np.stack([np.isin(dom, r.snap_days) for r in REGIONS])


def build_calendar(start: dt.date, days: int) -> pl.DataFrame:
    """The ``calendar`` table: one row per (date, region), sorted by date then region.

    Returns:
        Frame with schema :data:`schema.CALENDAR`; ``event_name``/``event_type`` are null on days
        without an event; ``is_holiday`` marks public holidays; ``snap`` the benefit days.
    """
    n_r = len(REGIONS)
    names: list[list[str | None]] = [[None] * days for _ in range(n_r)]
    types: list[list[str | None]] = [[None] * days for _ in range(n_r)]
    holiday = np.zeros((n_r, days), dtype=bool)
    for rule, d0 in occurrences(start, days):
        for r, region in enumerate(REGIONS):
            if region.name not in rule.regions:
                continue
            for t in range(max(d0, 0), min(d0 + rule.duration, days)):
                if names[r][t] is None:
                    names[r][t], types[r][t] = rule.name, rule.event_type
                holiday[r, t] |= region.name in rule.holiday_in
    epoch = (start - dt.date(1970, 1, 1)).days
    frame = pl.DataFrame(
        {
            S.DATE: pl.Series(np.tile(np.arange(days, dtype=np.int32) + epoch, n_r)).cast(pl.Date),
            S.REGION: np.repeat(np.array(REGION_NAMES), days),
            S.EVENT_NAME: pl.Series([n for row in names for n in row], dtype=pl.String),
            S.EVENT_TYPE: pl.Series([t for row in types for t in row], dtype=pl.String),
            S.IS_HOLIDAY: holiday.ravel(),
            S.SNAP: snap_mask(start, days).ravel(),
        }
    )
    return S.conform(frame.sort(S.DATE, S.REGION), S.CALENDAR)


@dataclass(frozen=True)
class EventEffects:
    """Demand effects of the calendar.

    Attributes:
        multiplier: ``[regions, categories, days]`` float32 product of all event and SNAP effects.
        shopping: ``[regions, days]`` float32, strength of the day's shopping event in the region
            (0 = none, 1 = full): the share of sellers that run a promotion for it scales with it.
    """

    multiplier: npt.NDArray[np.float32]
    shopping: npt.NDArray[np.float32]


def _response(rule: EventRule, categories: Sequence[str]) -> npt.NDArray[np.float64]:
    table: Mapping[str, Any] = RESPONSES.get(rule.response, {}) if rule.response else {}
    return np.array([float(table.get(c, 0.0)) for c in categories])


def event_effects(start: dt.date, days: int, categories: Sequence[str]) -> EventEffects:
    """Demand multipliers of every event and SNAP day for each region and category.

    Args:
        start: first day of the horizon.
        days: horizon length ``T``.
        categories: category names, in the order the caller indexes them (``C``).

    Returns:
        :class:`EventEffects` with a ``[R, C, T]`` multiplier (1 = no effect).
    """
    n_r, n_c = len(REGIONS), len(categories)
    mult = np.ones((n_r, n_c, days), dtype=np.float64)
    shopping = np.zeros((n_r, days), dtype=np.float32)
    for rule, d0 in occurrences(start, days):
        resp = _response(rule, categories)[:, None]  # [C, 1]
        for r, region in enumerate(REGIONS):
            strength = rule.regions.get(region.name, 0.0)
            if strength == 0.0:
                continue
            lo, hi = max(d0, 0), min(d0 + rule.duration, days)
            if lo < hi:
                mult[r, :, lo:hi] *= (1.0 + strength * rule.spike * resp) * rule.day_factor**strength
                if rule.event_type == _SHOP:
                    shopping[r, lo:hi] = np.maximum(shopping[r, lo:hi], strength)
            if rule.pre_days:
                t = np.arange(d0 - rule.pre_days, d0)
                keep = (t >= 0) & (t < days)
                ramp = (t - (d0 - rule.pre_days) + 1) / rule.pre_days if rule.pre_effect > 0 else 1.0
                effect = 1.0 + strength * rule.pre_effect * resp * ramp  # [C, pre_days]
                mult[r][:, t[keep]] *= np.broadcast_to(effect, (n_c, t.size))[:, keep]
    snap_resp = np.array([SNAP_RESPONSE.get(c, 0.0) for c in categories])
    mult *= 1.0 + snap_resp[None, :, None] * snap_mask(start, days)[:, None, :]
    return EventEffects(multiplier=mult.astype(np.float32), shopping=shopping)
