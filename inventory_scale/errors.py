"""Error hierarchy of inventory_scale.

Every error the package raises on purpose derives from :class:`InventoryScaleError`, so the CLI
can print one clear line and exit non-zero instead of a traceback. Messages name the file, the
column, the count and up to five offending keys (see :func:`format_keys`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

MAX_KEYS_SHOWN = 5


class InventoryScaleError(Exception):
    """Base class of every error raised on purpose by inventory_scale."""


class SchemaError(InventoryScaleError):
    """A table does not match its schema: missing column, wrong dtype, unreadable file."""


class DataQualityError(InventoryScaleError):
    """A table matches its schema but breaks a data rule (negative sales, duplicates, ...)."""


class ConfigError(InventoryScaleError):
    """A configuration key has a wrong type, a bad value or does not exist."""


class ShardError(InventoryScaleError):
    """A shard of series failed; carries the shard id."""

    def __init__(self, shard_id: int, reason: str) -> None:
        super().__init__(f"shard {shard_id} failed: {reason}")
        self.shard_id = shard_id
        self.reason = reason


class StorageError(InventoryScaleError):
    """A URI cannot be read or written (missing object, bad credentials, failed rename)."""


class StageNotBuiltError(InventoryScaleError):
    """A pipeline stage named in the CLI does not exist yet."""


def format_keys(keys: Iterable[Sequence[Any] | Any], limit: int = MAX_KEYS_SHOWN) -> str:
    """Render up to ``limit`` offending keys for an error message.

    Args:
        keys: keys as scalars or tuples (for composite keys such as (sku_id, warehouse_id, date)).
        limit: how many to show.

    Returns:
        ``"(a, b), (c, d)"``-style text, followed by ``", ..."`` when more keys exist.
    """
    shown: list[str] = []
    more = False
    for i, key in enumerate(keys):
        if i == limit:
            more = True
            break
        if isinstance(key, tuple | list):
            shown.append("(" + ", ".join(str(k) for k in key) + ")")
        else:
            shown.append(str(key))
    return ", ".join(shown) + (", ..." if more else "")
