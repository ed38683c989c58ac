"""Value checks shared by the config dataclasses: each failure is a ConfigError naming the key."""

from __future__ import annotations

import datetime as dt
from typing import Any

from inventory_scale.errors import ConfigError


def require(ok: bool, key: str, rule: str, value: Any) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}' {rule}, got {value!r}")


def check_date(key: str, value: str | None) -> None:
    if value is None:
        return
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"config key '{key}' must be an ISO date (YYYY-MM-DD), got {value!r}") from None
