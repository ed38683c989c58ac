"""Hardware efficiency, measured at the moment of the benchmark on this machine.

- :func:`sgemm_peak`: GFLOP/s of a large float32 matmul in torch (``2 n^3`` FLOPs per product) with
  every thread the benchmark gives the models: the ceiling the LSTM is compared with.
- :func:`lstm_efficiency`: our network (``models/lstm.py``, ``DeepARNet``) on synthetic batches of
  the benchmark's shape: training windows/s (loss, backward, AdamW step) and the GFLOP/s that
  implies by :func:`~inventory_scale.bench.child.lstm_flops_per_window` (gate matmuls, forward +
  backward = 3 x forward), as a share of the sgemm peak; inference windows/s (teacher-forced
  forward without gradients) and sample paths/s (``DeepARNet.sample``: encode, then H
  autoregressive steps over all series x paths in one batch).

Variants of the training step: ``fp32`` at the configured batch, ``fp32`` at 4x the batch (bigger
matmuls), and ``bf16`` autocast at 4x when the CPU supports it. The best one is the figure the
target is checked against; every one is reported.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from inventory_scale.bench.child import lstm_flops_per_window
from inventory_scale.models.lstm import DeepARNet, LSTMConfig, resolve_lags

log = logging.getLogger(__name__)

NUM_TIME_FEATURES = 14  # calendar, price, promotion and flags per step, about what data/features.py emits
CARDINALITIES = [40, 12, 400]  # category, warehouse, sku vocabularies


@dataclass(frozen=True)
class LSTMShape:
    """The network and batch the efficiency figures are measured on (ours' settings)."""

    hidden_size: int = 64
    num_layers: int = 2
    context_length: int = 56
    horizon: int = 28
    batch_size: int = 512
    num_paths: int = 100


def _rate(step: Callable[[], Any], seconds: float, warmup: int = 2) -> float:
    """Calls per second of ``step`` over about ``seconds`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds and n >= 2:
            return n / elapsed


def sgemm_peak(threads: int, n: int = 2048, seconds: float = 2.0) -> float:
    """Float32 matmul GFLOP/s of ``[n x n] @ [n x n]`` with ``threads`` torch threads, now."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    rate = _rate(lambda: torch.mm(a, b, out=out), seconds)
    return rate * 2.0 * n**3 / 1e9


def _batch(net: DeepARNet, batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    cfg = net.config
    g = torch.Generator().manual_seed(seed)
    length, horizon, nf = cfg.context_length, cfg.horizon, cfg.num_time_features
    return {
        "past_target": torch.poisson(torch.full((batch_size, length), 3.0), generator=g),  # [B, L]
        "past_observed": torch.ones(batch_size, length),  # [B, L]
        "past_time_feat": torch.randn(batch_size, length, nf, generator=g),  # [B, L, F]
        "future_time_feat": torch.randn(batch_size, horizon, nf, generator=g),  # [B, H, F]
        "future_target": torch.poisson(torch.full((batch_size, horizon), 3.0), generator=g),  # [B, H]
        "future_observed": torch.ones(batch_size, horizon),  # [B, H]
        "static_cat": torch.zeros(batch_size, len(cfg.cardinalities), dtype=torch.int64),  # [B, C]
    }


def _train_step(net: DeepARNet, batch_size: int, bf16: bool) -> Callable[[], None]:
    """One training step (loss, backward, AdamW) on a fixed synthetic batch."""
    batch = _batch(net, batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = net.loss(batch)
        loss.backward()
        opt.step()

    return step


def profile_training(net: DeepARNet, batch_size: int, steps: int = 3, rows: int = 12) -> str:
    """torch.profiler table (self CPU time) of ``steps`` fp32 training steps: where the time goes."""
    step = _train_step(net, batch_size, bf16=False)
    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    table: str = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return table


def _net(shape: LSTMShape) -> tuple[LSTMConfig, DeepARNet]:
    cfg = LSTMConfig(
        num_time_features=NUM_TIME_FEATURES,
        cardinalities=CARDINALITIES,
        hidden_size=shape.hidden_size,
        num_layers=shape.num_layers,
        context_length=shape.context_length,
        horizon=shape.horizon,
        lags=resolve_lags(None, "1d", shape.context_length, shape.horizon),
    )
    return cfg, DeepARNet(cfg)


def train_windows_per_s(shape: LSTMShape, threads: int, seconds: float = 2.0) -> float:
    """Float32 training windows/s of our LSTM at ``shape`` with ``threads`` torch threads, now."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    _, net = _net(shape)
    return _rate(_train_step(net, shape.batch_size, False), seconds) * shape.batch_size


def lstm_efficiency(shape: LSTMShape, threads: int, seconds: float = 2.0) -> dict[str, Any]:
    """Training and inference throughput of our LSTM against the sgemm peak measured now.

    Returns:
        ``sgemm_peak_gflops``, ``flops_per_window``, ``variants`` (name -> windows/s, GFLOP/s,
        share of peak), the best variant's ``train_windows_per_s``, ``train_gflops``,
        ``train_peak_share``, ``inference_windows_per_s`` and ``paths_per_s``, and the shape.
    """
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    peak = sgemm_peak(threads, seconds=seconds)
    cfg, net = _net(shape)
    flops = lstm_flops_per_window(
        cfg.input_size, cfg.hidden_size, cfg.num_layers, cfg.context_length + cfg.horizon - 1
    )
    variants: dict[str, dict[str, float]] = {}
    plans = [("fp32", shape.batch_size, False), ("fp32_4x", 4 * shape.batch_size, False)]
    if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        plans.append(("bf16_4x", 4 * shape.batch_size, True))
    for name, batch_size, bf16 in plans:
        wps = _rate(_train_step(net, batch_size, bf16), seconds) * batch_size
        variants[name] = {
            "batch_size": batch_size,
            "windows_per_s": wps,
            "gflops": wps * flops / 1e9,
            "peak_share": wps * flops / 1e9 / peak,
        }
        log.info("lstm train %s: %.0f windows/s, %.1f GFLOP/s", name, wps, wps * flops / 1e9)
    best = max(variants, key=lambda k: variants[k]["windows_per_s"])
    profile = profile_training(net, shape.batch_size)
    net.eval()
    batch = _batch(net, shape.batch_size)
    with torch.no_grad():
        infer = _rate(lambda: net(batch), seconds) * shape.batch_size
        few = {k: v[: max(1, shape.batch_size // 8)] for k, v in batch.items()}
        gen = torch.Generator().manual_seed(0)
        paths = _rate(lambda: net.sample(few, shape.num_paths, gen), seconds, warmup=1)
    paths *= few["past_target"].shape[0] * shape.num_paths
    return {
        "threads": threads,
        "sgemm_peak_gflops": peak,
        "hidden_size": shape.hidden_size,
        "num_layers": shape.num_layers,
        "window_steps": shape.context_length + shape.horizon,
        "flops_per_window": flops,
        "variants": variants,
        "best_variant": best,
        "train_windows_per_s": variants[best]["windows_per_s"],
        "train_gflops": variants[best]["gflops"],
        "train_peak_share": variants[best]["peak_share"],
        "inference_windows_per_s": infer,
        "paths_per_s": paths,
        "profile": profile,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m inventory_scale.bench.hardware JSON OUT``: JSON holds shape, threads, seconds."""
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0])
    result = lstm_efficiency(LSTMShape(**spec["shape"]), int(spec["threads"]), float(spec["seconds"]))
    with open(args[1], "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
