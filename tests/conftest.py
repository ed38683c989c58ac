"""Shared fixtures: a moto S3 server on 127.0.0.1, a tiny synthetic marketplace, free ports."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from inventory_scale.cli import main

# Before anything imports Ray: Ray reads this at import and then resolves "localhost" node IPs
# to 127.0.0.1 instead of the machine's external interface (DESIGN.md section 6).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

# A marketplace small enough for seconds-long stages: 24 series, 150 days, a tiny network.
TINY = [
    "data.n_skus=12",
    "data.n_warehouses=2",
    "data.days=150",
    "data.horizon=7",
    "data.context_length=28",
    "model.hidden_size=8",
    "model.num_layers=1",
    "model.batch_size=32",
    "trainer.max_epochs=1",
    "trainer.steps_per_epoch=3",
    "forecast.num_paths=30",
    "forecast.quantiles=[0.05,0.1,0.5,0.9,0.95]",
    "seed=11",
]
TINY_SERIES = 24
S3_ACCESS_KEY = "AKIAINVSCALE5TESTKEY"  # distinctive, so a leak is easy to find
S3_SECRET = "s3cr3t-never-logged-0123456789"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated tiny marketplace (read-only: copy it with ``copy_data`` before changing it)."""
    root = tmp_path_factory.mktemp("tiny") / "data"
    assert main(["generate", *TINY, f"data.root={root}"]) == 0
    return root


def copy_data(src: Path, dst: Path) -> Path:
    """A private copy of a dataset root."""
    shutil.copytree(src, dst)
    return dst


@pytest.fixture()
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (started and stopped here), bucket ``inv``, AWS_* env set."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(k, v)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="inv")
    try:
        yield endpoint
    finally:
        server.stop()
