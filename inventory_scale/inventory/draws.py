"""Random draws keyed by series: common random numbers for the policy A/B.

A draw that belongs to a series depends only on the seed parts (global seed, cutoff or origin,
a purpose tag), that series' key ``(sku_id, warehouse_id)`` and its slot within the series, never
on which other series are in the episode or their order. Leaving one series out (an ended one)
or shuffling them then changes no other series' lead times, oracle paths or path extensions, so
run-to-run differences are differences of the policies, not of the draws::

    draws = KeyedDraws.of((cfg.seed, cutoff.toordinal(), LEAD_TIMES), series_keys(keys))
    u = draws.uniform((n_orders,))                     # [N, n_orders] in (0, 1)

- :func:`series_keys` hashes each key with a fixed splitmix64 over its UTF-8 bytes, so the hash is
  the same in every process, platform and Python or Polars version (Polars' ``hash`` is not).
- :meth:`KeyedDraws.uniform` is counter-based: slot ``c`` (C order over ``shape``) of series ``i``
  is ``splitmix64(stream_i + (c + 1) * GOLDEN)`` with ``stream_i`` mixed from the seed parts and
  the key; vectorized uint64 arithmetic, no generator state. Inverse CDFs turn uniforms into other
  distributions (lead times: :func:`~.demand.sample_lead_times`).
- :meth:`KeyedDraws.generators` gives one numpy generator per series seeded from the same stream,
  for distributions whose inverse CDF is too slow at scale (Poisson-gamma oracle paths).

Callers lay slots out step-major (``(steps, paths)``), so a longer horizon, which the longest lead
time of the episode sets, keeps the draws of the first steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from inventory_scale import schema as S

U64 = npt.NDArray[np.uint64]

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  # splitmix64 increment (2^64 / golden ratio, odd)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_CHUNK = 1 << 21  # uint64 elements per block of uniforms (16 MiB of temporaries)

# purpose tags of the policy A/B's draws (the last seed part)
POLICY_LEAD = 5  # PathPolicy: lead time per series and path
LEAD_TIMES = 7  # simulator: lead time per series and order
BASELINE_PATHS = 11  # baseline forecasters: residual resampling
ORACLE_PATHS = 13  # oracle: Poisson-gamma paths
EXTEND_PATHS = 17  # seasonal extension of paths past the trained horizon


def mix(z: U64) -> U64:
    """splitmix64 finalizer of each element (a bijection of uint64), in place; returns ``z``."""
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def _u64(values: Sequence[int]) -> U64:
    """Python ints (any sign, any size) as uint64, modulo 2^64."""
    return np.array([int(v) & MASK64 for v in values], dtype=np.uint64)


def hash_strings(values: Sequence[str]) -> U64:
    """``[N]`` stable 64-bit hash of each string's UTF-8 bytes.

    The bytes are read as little-endian 8-byte words (the last one zero-padded) and folded with
    :func:`mix`, starting from the byte length, so strings differing only in trailing NUL bytes
    still differ. Vectorized over strings, one pass per word of the longest one.
    """
    raw = [v.encode("utf-8") for v in values]
    n = len(raw)
    length = np.fromiter(map(len, raw), dtype=np.int64, count=n)  # [N]
    words = -(-int(length.max(initial=0)) // 8)
    packed = np.array(raw, dtype=f"S{8 * max(words, 1)}").view("<u8").reshape(n, max(words, 1))
    h = mix(length.astype(np.uint64) ^ np.uint64(GOLDEN))
    for j in range(words):
        live = 8 * j < length  # the word exists in this string: shorter ones stop early
        h = np.where(live, mix(h ^ packed[:, j]), h)
    return h


def series_keys(keys: pl.DataFrame) -> U64:
    """``[N]`` stable 64-bit key of each ``(sku_id, warehouse_id)`` row of ``keys``.

    The same pair gives the same key in any frame, order, process or library version.
    """
    sku = hash_strings(keys[S.SKU_ID].cast(pl.String).to_list())
    wh = hash_strings(keys[S.WAREHOUSE_ID].cast(pl.String).to_list())
    return mix(sku ^ mix(wh + np.uint64(GOLDEN)))


@dataclass(frozen=True)
class KeyedDraws:
    """Random draws of ``N`` series, each a function of (seed parts, series key, slot) only.

    Attributes:
        parts: seed parts, e.g. ``(cfg.seed, cutoff.toordinal(), tag)``; any Python ints.
        keys: ``[N]`` series keys (:func:`series_keys`), rows in the episode's order.
    """

    parts: tuple[int, ...]
    keys: U64

    @classmethod
    def of(cls, parts: Sequence[int], keys: npt.ArrayLike) -> KeyedDraws:
        """Draws for ``keys`` (``[N]``, cast to uint64) under the seed ``parts``."""
        return cls(tuple(int(p) for p in parts), np.asarray(keys).astype(np.uint64).reshape(-1))

    @property
    def n(self) -> int:
        """Number of series."""
        return int(self.keys.size)

    def take(self, idx: npt.NDArray[Any]) -> KeyedDraws:
        """The draws of the series ``idx`` (an index array or boolean mask), same parts."""
        return KeyedDraws(self.parts, self.keys[idx])

    def streams(self) -> U64:
        """``[N]`` per-series stream states: the seed parts folded with :func:`mix`, then the key."""
        parts = mix(_u64(self.parts) + np.uint64(GOLDEN))  # [P]
        root = np.array([GOLDEN], dtype=np.uint64)
        for j in range(parts.size):
            root = mix(root ^ parts[j : j + 1])
        return mix(self.keys ^ root)

    def uniform(self, shape: tuple[int, ...], dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
        """``[N, *shape]`` uniforms strictly inside (0, 1), one per series and slot.

        float64 uniforms carry 52 random bits (``(k + 1/2) 2^-52``), float32 ones 23 (``(k + 1/2)
        2^-23``), so neither rounds to 0 or 1. Computed in blocks of series to bound memory.
        """
        k = int(np.prod(shape, dtype=np.int64))
        bits, scale = (41, 2.0**-23) if np.dtype(dtype) == np.float32 else (12, 2.0**-52)
        out = np.empty((self.n, k), dtype=dtype)
        counter = np.arange(1, k + 1, dtype=np.uint64) * np.uint64(GOLDEN)  # [K], wraps mod 2^64
        streams = self.streams()
        step = max(1, _CHUNK // max(k, 1))
        for lo in range(0, self.n, step):
            z = mix(streams[lo : lo + step, None] + counter[None, :])  # [n', K]
            block = (z >> np.uint64(bits)).astype(dtype)
            block += 0.5
            block *= scale
            out[lo : lo + step] = block
        return out.reshape(self.n, *shape)

    def generators(self) -> Iterator[np.random.Generator]:
        """One numpy generator per series, seeded from its stream (``N`` generator creations)."""
        for s in self.streams():
            yield np.random.default_rng(int(s))
