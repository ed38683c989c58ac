"""Product catalog of the synthetic marketplace: categories, season profiles, titles, prices.

Every subcategory is tied to a :class:`SeasonProfile` and its title words say so: a winter coat is
titled "Nordvik Winter Navy Wool Parka", a swimsuit "Coralia Beach Coral Quick-Dry Swimsuit", so a
text model can learn seasonality from titles (cold-start SKUs). A title containing a profile's
words belongs to that profile: no brand, colour or modifier carries a season word.

:func:`sample_catalog` draws every SKU's public attributes (the ``products`` table) and the hidden
parameters of its demand (level, dispersion, elasticity, trend, promotion and stockout habits,
launch and discontinuation), all vectorized over SKUs from one random stream.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import DataConfig

NDArray = npt.NDArray[Any]


@dataclass(frozen=True)
class SeasonProfile:
    """Yearly demand shape ``1 + amplitude * exp(kappa * (cos(2 pi d / 365) - 1))``, normalised.

    ``d`` is the signed distance in days from the peak: the day of year (``anchor="doy"``) or the
    days to the nearest lunar new year (``anchor="lunar"``); ``kappa_before``/``kappa_after`` set
    the width on either side (large = sharp). ``weather`` profiles move with the local climate
    (half a year in the southern hemisphere); calendar-bound ones (Christmas) do not. ``words[0]``
    is the canonical title word (used for half the titles that carry a season word).
    """

    name: str
    peak: float
    kappa_before: float
    kappa_after: float
    amplitude: float
    anchor: str
    weather: bool
    words: tuple[str, ...]
    blurb: str


# fmt: off
PROFILES: tuple[SeasonProfile, ...] = (
    SeasonProfile("all_year", 0, 1, 1, 0.0, "doy", False, ("Everyday", "Essential", "Signature"),
                  "A dependable everyday pick."),
    SeasonProfile("winter", 8, 1.5, 1.5, 4.0, "doy", True, ("Winter", "Thermal", "Arctic", "Snowy"),
                  "Keeps you warm through cold winter days."),
    SeasonProfile("summer", 192, 1.8, 1.8, 4.0, "doy", True, ("Summer", "Beach", "Tropical", "Sunny"),
                  "Made for hot summer days at the beach or the pool."),
    SeasonProfile("spring", 118, 3.0, 3.0, 3.0, "doy", True, ("Spring", "Blooming", "Sunrise"),
                  "Ready for spring planting and the first warm weekends."),
    SeasonProfile("back_to_school", 226, 12.0, 40.0, 6.0, "doy", True, ("Back-to-School", "Campus", "Study"),
                  "Everything students need for the new school year."),
    SeasonProfile("christmas", 350, 6.0, 200.0, 15.0, "doy", False, ("Christmas", "Festive", "Yuletide"),
                  "Brings Christmas cheer to home and table."),
    SeasonProfile("gifting", 346, 4.0, 100.0, 3.0, "doy", False, ("Gift", "Gift-Ready", "Giftable"),
                  "A favourite present for birthdays and the holidays."),
    SeasonProfile("halloween", 300, 8.0, 300.0, 12.0, "doy", False, ("Halloween", "Spooky"),
                  "Spooky fun for Halloween night."),
    SeasonProfile("valentine", 44, 30.0, 400.0, 10.0, "doy", False, ("Valentine's", "Romantic"),
                  "Say it with love on Valentine's Day."),
    SeasonProfile("lunar_new_year", -6, 20.0, 400.0, 10.0, "lunar", False,
                  ("Lunar New Year", "Lucky", "Golden"),
                  "Celebrate the lunar new year with family."),
    SeasonProfile("new_year", 6, 200.0, 8.0, 2.5, "doy", False, ("New Year", "Resolution", "Home Gym"),
                  "Start the new year with a healthy routine."),
)
PROFILE_INDEX: dict[str, int] = {p.name: i for i, p in enumerate(PROFILES)}


@dataclass(frozen=True)
class Subcategory:
    """A family of products: nouns and modifiers for titles, price band, size, shelf life."""

    category: str
    name: str
    profile: str
    nouns: tuple[str, ...]
    modifiers: tuple[str, ...]
    price: tuple[float, float]
    rel_volume: float
    coloured: bool = True
    shelf_life: tuple[int, int] | None = None
    weight: float = 1.0


SUBCATEGORIES: tuple[Subcategory, ...] = (
    Subcategory("clothing", "outerwear", "winter",
                ("Coat", "Parka", "Puffer Jacket", "Scarf", "Beanie", "Gloves"),
                ("Wool", "Fleece", "Down", "Cashmere", "Quilted"), (30, 250), 1.5, weight=1.5),
    Subcategory("clothing", "swimwear", "summer",
                ("Swimsuit", "Bikini", "Board Shorts", "Swim Trunks", "Rash Guard"),
                ("Quick-Dry", "Nylon", "Recycled", "Ribbed"), (15, 80), 0.3, weight=1.5),
    Subcategory("clothing", "basics", "all_year",
                ("T-Shirt", "Hoodie", "Jeans", "Socks 6-Pack", "Polo Shirt"),
                ("Cotton", "Organic Cotton", "Linen", "Bamboo"), (8, 60), 0.4, weight=2.0),
    Subcategory("home", "garden", "spring",
                ("Garden Hose", "Planter", "Lawn Sprinkler", "Pruning Shears", "Seed Starter Kit"),
                ("Expandable", "Ceramic", "Steel", "Terracotta"), (10, 90), 2.0),
    Subcategory("home", "heating", "winter",
                ("Electric Blanket", "Space Heater", "Heated Throw", "Draft Stopper"),
                ("Plush", "Ceramic", "Quilted", "Oil-Filled"), (25, 150), 3.0),
    Subcategory("home", "cooling", "summer", ("Desk Fan", "Air Cooler", "Tower Fan", "Cooling Mat"),
                ("Quiet", "Oscillating", "Bladeless", "Portable"), (20, 180), 3.0),
    Subcategory("home", "kitchen", "all_year", ("Frying Pan", "Knife Set", "Cutting Board", "Storage Jars"),
                ("Nonstick", "Stainless", "Bamboo", "Cast Iron"), (12, 120), 1.0, weight=1.5),
    Subcategory("electronics", "audio", "all_year",
                ("Wireless Earbuds", "Bluetooth Speaker", "Headphones", "Soundbar"),
                ("Noise-Cancelling", "Waterproof", "Compact", "Pro"), (20, 300), 0.3, weight=1.5),
    Subcategory("electronics", "computing", "back_to_school",
                ("Laptop Stand", "USB-C Hub", "Wireless Mouse", "Keyboard"),
                ("Aluminium", "Ergonomic", "Slim", "Mechanical"), (15, 150), 0.4),
    Subcategory("electronics", "smart_home", "gifting",
                ("Smart Plug", "Smart Bulb", "Video Doorbell", "Wi-Fi Camera"),
                ("Voice-Control", "HD", "Wireless", "Mini"), (15, 200), 0.3),
    Subcategory("holiday", "christmas_decor", "christmas",
                ("Christmas Lights", "Ornament Set", "Advent Calendar", "Tree Stand"),
                ("LED", "Glass", "Velvet", "Wooden"), (8, 80), 1.0, weight=1.2),
    Subcategory("holiday", "halloween", "halloween",
                ("Halloween Costume", "Pumpkin Lantern", "Decoration Kit"),
                ("Glow-in-the-Dark", "Inflatable", "Deluxe Kids"), (8, 60), 1.0),
    Subcategory("holiday", "lunar_decor", "lunar_new_year",
                ("Red Envelope Pack", "Paper Lantern", "Door Couplets"),
                ("Gold-Foil", "Silk", "Embroidered"), (3, 40), 0.3, coloured=False),
    Subcategory("holiday", "valentine", "valentine", ("Heart Balloon Set", "Love Card Set", "Keepsake Box"),
                ("Satin", "Handmade", "Foil"), (5, 50), 0.3),
    Subcategory("beauty", "sun_care", "summer", ("Sunscreen SPF50", "After-Sun Gel", "Tanning Oil"),
                ("Reef-Safe", "Sport", "Sensitive"), (6, 35), 0.1, coloured=False, shelf_life=(365, 730)),
    Subcategory("beauty", "skin_care", "all_year", ("Face Serum", "Moisturizer", "Cleanser", "Eye Cream"),
                ("Hyaluronic", "Vitamin C", "Retinol", "Unscented"), (8, 90), 0.1, coloured=False,
                shelf_life=(365, 900), weight=1.5),
    Subcategory("beauty", "cold_care", "winter", ("Lip Balm", "Hand Cream", "Barrier Cream"),
                ("Shea Butter", "Intensive", "Cocoa Butter"), (3, 25), 0.05, coloured=False,
                shelf_life=(365, 720)),
    Subcategory("food", "pantry", "all_year",
                ("Granola Bars", "Mixed Nuts", "Dark Chocolate", "Coffee Beans"),
                ("Organic", "Salted Caramel", "Original", "Single-Origin"), (3, 30), 0.2, coloured=False,
                shelf_life=(60, 365), weight=2.0),
    Subcategory("food", "hot_drinks", "winter", ("Hot Cocoa Mix", "Chai Tea", "Mulled Spice Blend"),
                ("Rich", "Spiced", "Peppermint"), (4, 25), 0.2, coloured=False, shelf_life=(180, 540)),
    Subcategory("food", "cold_drinks", "summer", ("Iced Tea", "Lemonade Concentrate", "Electrolyte Drink"),
                ("Peach", "Sugar-Free", "Citrus"), (3, 20), 0.4, coloured=False, shelf_life=(90, 365)),
    Subcategory("food", "festive_food", "christmas", ("Cookie Tin", "Fruitcake", "Gingerbread Kit"),
                ("Butter", "Iced", "Traditional"), (6, 40), 0.3, coloured=False, shelf_life=(30, 180)),
    Subcategory("food", "lunar_treats", "lunar_new_year",
                ("Pineapple Tarts", "Nian Gao Rice Cake", "Mandarin Box"),
                ("Handmade", "Premium", "Family-Size"), (6, 45), 0.4, coloured=False, shelf_life=(7, 60)),
    Subcategory("food", "fresh", "all_year", ("Berries", "Salad Mix", "Greek Yogurt"),
                ("Fresh", "Organic", "Farm"), (2, 12), 0.2, coloured=False, shelf_life=(4, 14), weight=1.5),
    Subcategory("toys", "toys", "gifting",
                ("Building Blocks Set", "Plush Bear", "Remote Control Car", "Board Game"),
                ("Classic", "Deluxe", "STEM", "Collector"), (10, 120), 1.0, weight=1.5),
    Subcategory("toys", "outdoor_toys", "summer",
                ("Water Gun", "Beach Ball", "Sand Toy Set", "Inflatable Pool"),
                ("Jumbo", "Splash", "Inflatable"), (5, 60), 1.5),
    Subcategory("toys", "snow_toys", "winter", ("Sled", "Snowball Maker", "Snow Saucer"),
                ("Racing", "Foam", "Kids"), (10, 90), 3.0),
    Subcategory("sports", "fitness", "new_year",
                ("Yoga Mat", "Dumbbell Set", "Resistance Bands", "Jump Rope"),
                ("Non-Slip", "Adjustable", "Pro"), (10, 150), 1.5),
    Subcategory("sports", "winter_sports", "winter", ("Ski Goggles", "Snowboard Gloves", "Base Layer"),
                ("Anti-Fog", "Insulated", "Merino"), (20, 160), 0.3),
    Subcategory("sports", "outdoor", "summer", ("Camping Tent", "Hiking Daypack", "Cooler Box", "Umbrella"),
                ("Ultralight", "Waterproof", "Family"), (20, 300), 4.0),
    Subcategory("sports", "cycling", "spring", ("Bicycle Helmet", "Bike Lock", "Cycling Jersey"),
                ("Reflective", "Carbon", "Breathable"), (15, 120), 0.8),
    Subcategory("school", "school_supplies", "back_to_school",
                ("Back-to-School Backpack", "Notebook Set", "Pencil Case", "Lunch Box"),
                ("Durable", "Recycled", "Kids"), (3, 60), 0.6, weight=1.5),
)

BRANDS: tuple[str, ...] = (
    "Nordvik", "Coralia", "Kestrel", "Aurelio", "Brightwell", "Tidewater", "Larkspur", "Oakhaven", "Veloce",
    "Pinecrest", "Lumina", "Harbor & Co", "Zenith", "Maplewood", "Quillon", "Redfern", "Solenne", "Trailhead",
    "Ubiq", "Wildroot", "Yarrow", "Everly", "Fjordline", "Granite Peak", "Juniper", "Kito", "Moss & Stone",
)
COLOURS: tuple[str, ...] = (
    "Black", "White", "Navy", "Red", "Forest Green", "Charcoal", "Coral", "Mustard", "Sky Blue", "Beige",
    "Burgundy", "Olive", "Lavender", "Teal", "Grey",
)
WEEKLY: dict[str, tuple[float, ...]] = {  # Monday .. Sunday, normalised to mean 1 by the generator
    "default": (1.10, 1.05, 1.00, 0.95, 0.90, 0.90, 1.10),
    "food": (0.90, 0.90, 0.95, 1.00, 1.15, 1.20, 0.90),
    "electronics": (1.10, 1.10, 1.05, 1.00, 0.90, 0.85, 1.00),
    "school": (1.15, 1.10, 1.05, 1.00, 0.90, 0.80, 1.00),
    "toys": (0.95, 0.95, 0.95, 1.00, 1.00, 1.10, 1.05),
}
# fmt: on
CATEGORIES: tuple[str, ...] = tuple(dict.fromkeys(sc.category for sc in SUBCATEGORIES))
PERISHABLE_CATEGORIES: frozenset[str] = frozenset(sc.category for sc in SUBCATEGORIES if sc.shelf_life)
N_PRICE_CHANGES = 3  # candidate permanent price changes per SKU over the horizon


def weekly_factors() -> npt.NDArray[np.float32]:
    """Day-of-week demand factors per category, shape ``[categories, 7]`` (Monday first), mean 1."""
    w = np.array([WEEKLY.get(c, WEEKLY["default"]) for c in CATEGORIES], dtype=np.float64)
    return (w / w.mean(axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Catalog:
    """All SKUs: the ``products`` frame plus hidden demand parameters, arrays of shape ``[n_skus]``.

    ``launch_day``/``end_day`` are day indices relative to the start (launch may be negative;
    ``end_day`` is exclusive and equals ``days`` unless the SKU is discontinued).
    ``price_change_day``/``price_change`` are ``[n_skus, N_PRICE_CHANGES]`` (a change of 0 is none).
    """

    products: pl.DataFrame
    category: NDArray
    profile: NDArray
    perishable: NDArray
    unit_price: NDArray
    unit_cost: NDArray
    case_pack: NDArray
    moq: NDArray
    volume: NDArray
    level: NDArray
    dispersion: NDArray
    elasticity: NDArray
    trend: NDArray
    noise_sd: NDArray
    peak_jitter: NDArray
    kappa_scale: NDArray
    amp_scale: NDArray
    weekly_amp: NDArray
    promo_rate: NDArray
    promo_len: NDArray
    promo_discount: NDArray
    promo_uplift: NDArray
    stockout_rate: NDArray
    stockout_len: NDArray
    ramp_days: NDArray
    launch_day: NDArray
    end_day: NDArray
    price_change_day: NDArray
    price_change: NDArray


def _pick(rng: np.random.Generator, pools: list[tuple[str, ...]], group: NDArray) -> NDArray:
    """One word per SKU from the pool of its group (vectorized over a flattened pool)."""
    sizes = np.array([len(p) for p in pools])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat = np.array([w for p in pools for w in p])
    return flat[offsets[group] + (rng.random(group.size) * sizes[group]).astype(np.int64)]


def _titles(rng: np.random.Generator, sub: NDArray, prof: NDArray) -> pl.Series:
    """Titles ``brand [season word] [colour] modifier noun``, one per SKU."""
    n = sub.size
    brand = np.array(BRANDS)[rng.integers(0, len(BRANDS), n)]
    canonical = np.array([p.words[0] for p in PROFILES])[prof]
    other = _pick(rng, [p.words[1:] for p in PROFILES], prof)
    season = np.where(rng.random(n) < 0.5, canonical, other)
    p_season = np.where(prof == PROFILE_INDEX["all_year"], 0.3, 0.75)
    season = np.where(rng.random(n) < p_season, season, "")
    coloured = np.array([sc.coloured for sc in SUBCATEGORIES])[sub] & (rng.random(n) < 0.6)
    colour = np.where(coloured, np.array(COLOURS)[rng.integers(0, len(COLOURS), n)], "")
    modifier = _pick(rng, [sc.modifiers for sc in SUBCATEGORIES], sub)
    noun = _pick(rng, [sc.nouns for sc in SUBCATEGORIES], sub)
    season = np.where(np.char.find(noun, season) >= 0, "", season)  # no "Christmas Christmas Lights"
    parts = [pl.Series(a, dtype=pl.String) for a in (brand, season, colour, modifier, noun)]
    title = pl.concat_str(parts, separator=" ")
    return pl.select(title.str.replace_all(" +", " ").str.strip_chars()).to_series()


def sample_catalog(cfg: DataConfig, start: dt.date, rng: np.random.Generator) -> Catalog:
    """Draw ``cfg.n_skus`` products and their hidden demand parameters.

    Args:
        cfg: data config; ``margin``, ``salvage_fraction``, ``volume_m3``, ``case_pack`` and ``moq``
            centre the per-SKU values.
        start: first day of the sales horizon (launch dates are relative to it).
        rng: the catalog's random stream (the caller derives it from the seed).

    Returns:
        :class:`Catalog`; ``products`` has schema :data:`schema.PRODUCTS`.
    """
    n, days = cfg.n_skus, cfg.days
    weights = np.array([sc.weight for sc in SUBCATEGORIES])
    sub = rng.choice(len(SUBCATEGORIES), size=n, p=weights / weights.sum())
    cat = np.array([CATEGORIES.index(sc.category) for sc in SUBCATEGORIES])[sub]
    prof = np.array([PROFILE_INDEX[sc.profile] for sc in SUBCATEGORIES])[sub]
    title = _titles(rng, sub, prof)

    lo, hi = np.array([sc.price for sc in SUBCATEGORIES], dtype=np.float64)[sub].T
    price = np.maximum(np.ceil(np.exp(rng.uniform(np.log(lo), np.log(hi)))) - 0.01, 0.99)
    margin = np.clip(cfg.margin * rng.uniform(0.6, 1.4, n), 0.05, 0.9)
    margin = np.where(rng.random(n) < 0.01, -rng.uniform(0.0, 0.1, n), margin)  # rare loss leaders
    cost = np.maximum(np.round(price * (1.0 - margin), 2), 0.02)
    shelf = np.array([sc.shelf_life or (0, 0) for sc in SUBCATEGORIES])[sub]
    perishable = shelf[:, 1] > 0
    salvage_frac = np.clip(cfg.salvage_fraction * rng.uniform(0.5, 1.5, n), 0.0, 0.95)
    salvage = np.minimum(np.round(cost * salvage_frac * np.where(perishable, 0.5, 1.0), 2), cost - 0.01)
    shelf_life = np.where(perishable, rng.integers(shelf[:, 0], shelf[:, 1] + 1), 0)
    rel_vol = np.array([sc.rel_volume for sc in SUBCATEGORIES])[sub]
    volume = np.round(cfg.volume_m3 * rel_vol * rng.lognormal(0.0, 0.25, n), 6)
    size_class = np.digitize(rel_vol, [0.5, 1.5])  # small items ship in larger cases
    packs = np.array([[6, 12, 24], [2, 4, 6], [1, 1, 2]])[size_class, rng.integers(0, 3, n)]
    case_pack = cfg.case_pack * packs
    moq = np.maximum(cfg.moq, case_pack * rng.choice([0, 1, 2, 4], size=n, p=[0.4, 0.3, 0.2, 0.1]))

    intermittent = rng.random(n) < 0.3
    level = np.where(
        intermittent, rng.uniform(0.03, 0.3, n), np.clip(rng.lognormal(np.log(3.0), 1.0, n), 0.3, 200)
    )
    dispersion = np.where(intermittent, rng.uniform(0.3, 1.5, n), rng.uniform(2.0, 20.0, n))
    launched_late = (rng.random(n) < cfg.launch_share) & (days >= 60)
    launch_day = np.where(
        launched_late, rng.integers(14, max(days * 3 // 4, 15), n), -rng.integers(1, 1500, n)
    )
    discontinued = ~launched_late & (rng.random(n) < 0.06) & (days >= 60)
    end_day = np.where(
        discontinued, rng.integers(int(days * 0.4), max(int(days * 0.95), int(days * 0.4) + 1), n), days
    )
    change_day = rng.integers(1, days + 1, (n, N_PRICE_CHANGES))
    change = np.where(
        rng.random((n, N_PRICE_CHANGES)) < 0.35, rng.normal(0.0, 0.12, (n, N_PRICE_CHANGES)), 0.0
    )

    sku_ids = [f"SKU{i:06d}" for i in range(n)]
    epoch = (start - dt.date(1970, 1, 1)).days
    blurb = np.array([p.blurb for p in PROFILES])[prof]
    text = pl.format(
        "{}. {} Sold in cases of {}.", pl.lit(title), pl.lit(pl.Series(blurb)), pl.lit(case_pack)
    )
    described = pl.lit(pl.Series(rng.random(n) >= 0.05))  # 5% of listings have no description
    products = pl.DataFrame(
        {
            S.SKU_ID: sku_ids,
            S.CATEGORY: np.array(CATEGORIES)[cat],
            S.SUBCATEGORY: np.array([sc.name for sc in SUBCATEGORIES])[sub],
            S.TITLE: title,
            S.DESCRIPTION: pl.select(pl.when(described).then(text)).to_series(),
            S.UNIT_COST: cost,
            S.UNIT_PRICE: price,
            S.SALVAGE_VALUE: salvage,
            S.SHELF_LIFE_DAYS: pl.select(pl.when(pl.lit(perishable)).then(pl.lit(shelf_life))).to_series(),
            S.CASE_PACK: case_pack,
            S.MOQ: moq,
            S.VOLUME_M3: volume,
            S.LAUNCH_DATE: pl.Series((launch_day + epoch).astype(np.int32)).cast(pl.Date),
        }
    )
    f32 = np.float32
    return Catalog(
        products=S.conform(products, S.PRODUCTS),
        category=cat,
        profile=prof,
        perishable=perishable,
        unit_price=price.astype(f32),
        unit_cost=cost.astype(f32),
        case_pack=case_pack,
        moq=moq,
        volume=volume,
        level=level.astype(f32),
        dispersion=dispersion.astype(f32),
        elasticity=rng.uniform(-3.0, -1.0, n).astype(f32),
        trend=rng.normal(0.0, 0.2, n).astype(f32),
        noise_sd=rng.uniform(0.01, 0.05, n).astype(f32),
        peak_jitter=rng.normal(0.0, 7.0, n).astype(f32),
        kappa_scale=rng.uniform(0.7, 1.3, n).astype(f32),
        amp_scale=rng.uniform(0.7, 1.3, n).astype(f32),
        weekly_amp=rng.uniform(0.5, 1.5, n).astype(f32),
        promo_rate=rng.uniform(0.002, 0.02, n).astype(f32),
        promo_len=rng.uniform(3.0, 10.0, n).astype(f32),
        promo_discount=rng.uniform(0.1, 0.4, n).astype(f32),
        promo_uplift=rng.uniform(1.0, 1.5, n).astype(f32),
        stockout_rate=np.where(
            rng.random(n) < 0.1, rng.uniform(0.01, 0.03, n), rng.uniform(0.0, 0.006, n)
        ).astype(f32),
        stockout_len=rng.uniform(2.0, 12.0, n).astype(f32),
        ramp_days=rng.uniform(5.0, 30.0, n).astype(f32),
        launch_day=launch_day.astype(np.int32),
        end_day=end_day.astype(np.int32),
        price_change_day=change_day.astype(np.int32),
        price_change=change.astype(f32),
    )
