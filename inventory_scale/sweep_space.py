"""Search spaces of ``conf/sweep/*.yaml``: parsed, checked against :class:`Config`, applied.

A space maps config keys to distributions, flat or nested (both read the same)::

    space:
      model.hidden_size: {type: choice, values: [32, 64, 128]}
      model.num_layers: {type: int, low: 1, high: 3}          # inclusive bounds
      model:
        dropout: {type: uniform, low: 0.0, high: 0.3}
        learning_rate: {type: loguniform, low: 0.0003, high: 0.01}

Types: ``choice`` (``values``: scalars), ``uniform`` / ``loguniform`` (float fields), ``int`` /
``logint`` (int fields, or string fields such as ``ray.shard_size``; bounds inclusive).
Every key must name a field of the typed config; :func:`parse_space` checks the key, the field's
type and that every bound and choice makes a valid config, so a bad space fails before any trial
starts, naming the key. No Ray and no Hydra here.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any

from inventory_scale.config import Config
from inventory_scale.errors import ConfigError

KINDS = ("choice", "uniform", "loguniform", "int", "logint")
FORBIDDEN_GROUPS = ("sweep", "run", "paths", "storage", "validate")
FORBIDDEN_KEYS = ("data.root", "data.source_dir", "data.name", "ray.mode", "ray.address")
Scalar = bool | int | float | str | None


@dataclass(frozen=True)
class Param:
    """One searched config key and its distribution (``low``/``high`` or ``values``)."""

    key: str
    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple[Scalar, ...] = ()

    def contains(self, value: Any) -> bool:
        """True when ``value`` can be drawn from this distribution."""
        if self.kind == "choice":
            return value in self.values
        if self.low is None or self.high is None:
            return False
        try:
            return self.low <= float(value) <= self.high
        except (TypeError, ValueError):
            return False


def flatten_space(space: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """``{"model": {"dropout": {...}}}`` and ``{"model.dropout": {...}}`` alike -> flat keys."""
    flat: dict[str, dict[str, Any]] = {}
    for name, spec in space.items():
        key = f"{prefix}{name}"
        if not isinstance(spec, dict):
            raise ConfigError(
                f"sweep.space key '{key}' must map to a distribution like {{type: uniform, low: 0, "
                f"high: 1}}, got {spec!r}"
            )
        if "type" in spec:
            flat[key] = dict(spec)
        else:
            flat.update(flatten_space(spec, f"{key}."))
    return flat


def _field_type(key: str) -> Any:
    """The annotated type of config key ``a.b`` (or top-level ``seed``); ConfigError naming it."""
    cls: Any = Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls)]
        if part not in known:
            where = ".".join(parts[:i]) or "the config"
            raise ConfigError(
                f"sweep.space key '{key}' is not a config key: '{part}' is not in {where} "
                f"(known: {', '.join(known)})"
            )
        typ = hints[part]
        if i < len(parts) - 1:
            if not dataclasses.is_dataclass(typ):
                raise ConfigError(f"sweep.space key '{key}': '{'.'.join(parts[: i + 1])}' is not a group")
            cls = typ
        elif dataclasses.is_dataclass(typ):
            raise ConfigError(f"sweep.space key '{key}' names a config group, not a key inside it")
    return typ


def _scalar_types(typ: Any) -> tuple[type, ...]:
    args = typing.get_args(typ) if typing.get_origin(typ) in (typing.Union, type(int | None)) else (typ,)
    return tuple(a for a in args if a is not type(None))


def coerce(key: str, value: Any) -> Any:
    """``value`` as config key ``key`` holds it (int -> float, int -> str); ConfigError naming it."""
    types = _scalar_types(_field_type(key))
    if value is None:
        if typing.get_origin(_field_type(key)) is None:
            raise ConfigError(f"config key '{key}' cannot be null")
        return None
    if isinstance(value, bool):
        if bool in types:
            return value
    elif isinstance(value, int) and int in types:
        return value
    elif isinstance(value, int | float) and float in types:
        return float(value)
    elif isinstance(value, float) and int in types and value.is_integer():
        return int(value)
    elif isinstance(value, int | str) and str in types:
        return str(value)
    names = ", ".join(getattr(t, "__name__", str(t)) for t in types)
    raise ConfigError(f"config key '{key}' holds {names}, got {value!r} ({type(value).__name__})")


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of ``cfg`` with ``{"group.key": value}`` set; each group re-validates itself.

    Raises:
        ConfigError: unknown key, wrong type or bad value (the message names the key).
    """
    groups: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, value in overrides.items():
        coerced = coerce(key, value)
        group, _, name = key.rpartition(".")
        if group:
            groups.setdefault(group, {})[name] = coerced
        else:
            top[name] = coerced
    for group, values in groups.items():
        top[group] = dataclasses.replace(getattr(cfg, group), **values)
    return dataclasses.replace(cfg, **top)


def _number(key: str, spec: dict[str, Any], name: str) -> float:
    value = spec.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"sweep.space key '{key}': '{name}' must be a finite number, got {value!r}")
    return float(value)


def _param(key: str, spec: dict[str, Any]) -> Param:
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"sweep.space key '{key}': type must be one of {list(KINDS)}, got {kind!r}")
    extra = set(spec) - ({"type", "values"} if kind == "choice" else {"type", "low", "high"})
    if extra:
        raise ConfigError(f"sweep.space key '{key}': unexpected field(s) {sorted(extra)} for type {kind}")
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, list | tuple) or not values:
            raise ConfigError(f"sweep.space key '{key}': 'values' must be a non-empty list, got {values!r}")
        bad = [v for v in values if v is not None and not isinstance(v, bool | int | float | str)]
        if bad:
            raise ConfigError(f"sweep.space key '{key}': choice values must be scalars, got {bad[0]!r}")
        return Param(key, kind, values=tuple(values))
    low, high = _number(key, spec, "low"), _number(key, spec, "high")
    if not low < high:
        raise ConfigError(f"sweep.space key '{key}': low must be < high, got low={low} high={high}")
    if kind in ("loguniform", "logint") and low <= 0:
        raise ConfigError(f"sweep.space key '{key}': {kind} needs low > 0, got {low}")
    if kind in ("int", "logint") and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"sweep.space key '{key}': {kind} bounds must be integers, got {low}, {high}")
    return Param(key, kind, low, high)


def _samples(param: Param) -> list[Any]:
    """The values whose validity stands for the whole distribution: bounds or every choice."""
    if param.kind == "choice":
        return list(param.values)
    low, high = float(param.low or 0.0), float(param.high or 0.0)  # both set for numeric kinds
    return [int(low), int(high)] if param.kind in ("int", "logint") else [low, high]


def parse_space(space: dict[str, Any], base: Config) -> list[Param]:
    """Parse and check a search space against the typed config ``base``.

    Args:
        space: ``sweep.space`` (flat dotted keys or nested groups).
        base: the config trials start from; every bound and choice must make a valid config.

    Returns:
        One :class:`Param` per key, in the order given.

    Raises:
        ConfigError: empty space, unknown or forbidden key, bad distribution, a type the field
            cannot hold, or a bound/choice the config rejects; the message names the key.
    """
    flat = flatten_space(space)
    if not flat:
        raise ConfigError("config key 'sweep.space' is empty: name at least one config key to search")
    params: list[Param] = []
    for key, spec in flat.items():
        if key.split(".")[0] in FORBIDDEN_GROUPS or key in FORBIDDEN_KEYS:
            raise ConfigError(f"sweep.space key '{key}' cannot be searched (it says where the run lives)")
        typ = _field_type(key)
        param = _param(key, spec)
        types = _scalar_types(typ)
        if param.kind in ("uniform", "loguniform") and float not in types:
            raise ConfigError(
                f"sweep.space key '{key}': {param.kind} draws floats but the key holds "
                f"{', '.join(t.__name__ for t in types)}; use type int or choice"
            )
        if param.kind in ("int", "logint") and not {int, str} & set(types):
            raise ConfigError(f"sweep.space key '{key}': {param.kind} draws integers; use uniform or choice")
        for value in _samples(param):
            try:
                apply_overrides(base, {key: value})
            except ConfigError as e:
                raise ConfigError(f"sweep.space key '{key}' allows {value!r}, which is invalid: {e}") from e
        params.append(param)
    return params


def default_point(params: list[Param], base: Config) -> dict[str, Any] | None:
    """The base config's values of the searched keys, or None when one lies outside its space."""
    point: dict[str, Any] = {}
    for p in params:
        value: Any = base
        for part in p.key.split("."):
            value = getattr(value, part)
        if isinstance(value, str) and value.isdigit() and (p.kind != "choice" or value not in p.values):
            value = int(value)  # ray.shard_size "2000" searched as a number
        if not p.contains(value):
            return None
        point[p.key] = value
    return point
