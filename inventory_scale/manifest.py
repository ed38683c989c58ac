"""``manifest.json``: what produced an output, so a run can be reproduced and audited.

Every stage output folder carries one manifest with the config hash (secrets removed), the git
revision of the code, the seed, the versions of the libraries that shape results, fingerprints of
the inputs it read (path, size, modification time of every file) and per-table or per-shard
status. The manifest is written last and atomically: a folder without one is an unfinished output.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from inventory_scale.data import io

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
SECRET_KEYS = frozenset({"access_key_id", "secret_access_key", "endpoint_url"})
LIBRARIES = (
    "inventory-scale",
    "numpy",
    "polars",
    "pyarrow",
    "torch",
    "pytorch-lightning",
    "ray",
    "hydra-core",
)


def redact(obj: Any) -> Any:
    """Copy of a config tree (dicts/lists/dataclasses) with credential fields removed."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: ("<redacted>" if k in SECRET_KEYS and v else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj


def config_hash(config: Any) -> str:
    """Stable SHA-256 (first 16 hex digits) of a config tree, credentials excluded."""
    text = json.dumps(redact(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_revision() -> str:
    """Git commit of the package source (``+dirty`` when modified), or ``unknown``."""
    src = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape results (read from metadata, no import)."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def fingerprint(uri: str, opts: io.StorageOptions | None = None) -> dict[str, Any]:
    """Fingerprint of every file under ``uri``: count, bytes and a hash of (path, size, mtime)."""
    files = io.list_files(uri, opts)
    h = hashlib.sha256()
    total = 0
    for f in files:
        mtime = f.mtime_ns if f.mtime_ns is not None else 0
        h.update(f"{f.path}|{f.size}|{mtime}\n".encode())
        total += f.size or 0
    return {"uri": uri, "files": len(files), "bytes": total, "sha256": h.hexdigest()[:16]}


def build_manifest(
    stage: str,
    config: Any,
    seed: int,
    inputs: list[str],
    opts: io.StorageOptions | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a manifest for one stage output.

    Args:
        stage: stage name (``generate``, ``validate``, ...).
        config: the full config (dataclass or dict); stored redacted, with its hash.
        seed: the global seed.
        inputs: URIs the stage read; each gets a fingerprint.
        opts: storage options to list remote inputs.
        **extra: stage-specific fields (row counts, per-shard status, ...).
    """
    return {
        "stage": stage,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "config_hash": config_hash(config),
        "config": redact(config),
        "git_revision": git_revision(),
        "seed": seed,
        "versions": library_versions(),
        "inputs": [fingerprint(u, opts) for u in inputs],
        **extra,
    }


def write_manifest(out_dir: str, manifest: dict[str, Any], opts: io.StorageOptions | None = None) -> str:
    """Write ``manifest.json`` into ``out_dir`` atomically; returns its URI."""
    uri = io.join(out_dir, MANIFEST_NAME)
    io.write_json(uri, manifest, opts)
    log.info("manifest %s (config %s)", uri, manifest["config_hash"])
    return uri


def read_manifest(out_dir: str, opts: io.StorageOptions | None = None) -> dict[str, Any] | None:
    """The manifest of ``out_dir``, or None when the output is unfinished or absent."""
    uri = io.join(out_dir, MANIFEST_NAME)
    if not io.exists(uri, opts):
        return None
    data: dict[str, Any] = io.read_json(uri, opts)
    return data
