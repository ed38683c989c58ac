"""One model over one dataset's cutoffs, in its own process (so its peak memory is its own).

The harness pickles a :class:`ChildSpec`, starts ``python -m inventory_scale.bench.child SPEC``
and samples the process tree's RSS while it runs. The child writes, under ``spec.out_dir``:

- ``forecast-<cutoff>.parquet``: the forecast frame (``sku_id, warehouse_id, cutoff, ds, step,
  mean[, q*]``) of every cutoff;
- ``result.json``: per cutoff ``fit_seconds``, ``predict_seconds``, ``steps``, ``series`` and,
  for ours, the training windows/s, achieved GFLOP/s and sample paths/s of the run.

Ours runs exactly as a user runs it: ``pipeline.run_train`` then ``pipeline.run_forecast`` per
cutoff (one Ray task per shard, checkpoints, forecasts table), inside one Ray session. Peers get
the Nixtla view of the same history (``schema.nixtla_view``) and run through :mod:`.peers`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from inventory_scale import schema as S
from inventory_scale.bench.peers import PeerSettings, run_peer, to_forecast_frame
from inventory_scale.config import Config, RunConfig
from inventory_scale.data import io

log = logging.getLogger(__name__)

RESULT = "result.json"


@dataclass(frozen=True)
class ChildSpec:
    """What one child process runs.

    Attributes:
        model: ``ours`` or a peer name.
        cfg: the whole config for ours on this dataset (``data`` = the dataset).
        cutoffs: forecast origins, oldest first.
        out_dir: local folder for the forecasts and ``result.json``.
        settings: what the peers are told.
    """

    model: str
    cfg: Config
    cutoffs: tuple[dt.date, ...]
    out_dir: str
    settings: PeerSettings


def forecast_path(out_dir: str | Path, cutoff: dt.date) -> Path:
    """Where the child writes the forecast frame of ``cutoff``."""
    return Path(out_dir) / f"forecast-{cutoff.isoformat()}.parquet"


def _frame_columns(quantiles: list[float]) -> list[str]:
    return [S.SKU_ID, S.WAREHOUSE_ID, S.CUTOFF, S.DS, S.STEP, S.MEAN, *map(S.quantile_column, quantiles)]


def lstm_flops_per_window(input_size: int, hidden: int, layers: int, steps: int) -> float:
    """Training FLOPs of one window through a stacked LSTM (forward + backward).

    Per step and layer the four gates cost two matmuls, ``[4H x D_l] x [D_l]`` (input) and
    ``[4H x H] x [H]`` (recurrent), ``2 x 4H x (D_l + H)`` FLOPs (a multiply-add is 2); ``D_0`` is
    the input width, ``D_l = H`` above. The backward pass costs about twice the forward (gradients
    for inputs and for weights), so training is ``3 x`` the forward over the ``steps`` time steps.
    Elementwise gate maths, the likelihood head and the embeddings are left out (< 3% here).
    """
    forward = sum(
        2.0 * 4 * hidden * ((input_size if layer == 0 else hidden) + hidden) for layer in range(layers)
    )
    return 3.0 * forward * steps


def _ours(spec: ChildSpec) -> list[dict[str, Any]]:
    from inventory_scale.distributed import outputs
    from inventory_scale.distributed.runner import ray_session
    from inventory_scale.manifest import read_manifest
    from inventory_scale.models.module import load_forecaster
    from inventory_scale.pipeline import run_forecast, run_train

    cfg = spec.cfg
    spec_fc = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    rows = []
    with ray_session(cfg.ray):
        for cutoff in spec.cutoffs:
            run_dir = str(Path(spec.out_dir) / "run" / cutoff.isoformat())
            c = dataclasses.replace(cfg, run=RunConfig(dir=run_dir, cutoff=cutoff.isoformat()))
            t0 = time.perf_counter()
            run_train(c)
            t1 = time.perf_counter()
            run_forecast(c)
            t2 = time.perf_counter()
            frame = io.read_table(run_dir, spec_fc)
            frame.select(_frame_columns(cfg.forecast.quantiles)).write_parquet(
                forecast_path(spec.out_dir, cutoff)
            )
            trained = (read_manifest(io.join(run_dir, outputs.MODELS)) or {}).get("shards", [])
            sampled = (read_manifest(io.join(run_dir, spec_fc.name)) or {}).get("shards", [])
            steps = [int(r.get("steps", 0)) for r in trained]
            windows = sum(steps) * cfg.model.batch_size
            net = load_forecaster(outputs.checkpoint_uri(run_dir, int(trained[0]["shard"]))).net_config
            flops = lstm_flops_per_window(
                net.input_size, net.hidden_size, net.num_layers, net.context_length + net.horizon - 1
            )
            paths = sum(int(r.get("series", 0)) for r in sampled) * cfg.forecast.num_paths
            rows.append(
                {
                    "cutoff": cutoff.isoformat(),
                    "fit_seconds": t1 - t0,
                    "predict_seconds": t2 - t1,
                    "steps": max(steps, default=0),
                    "shards": len(trained),
                    "series": frame.select(S.SKU_ID, S.WAREHOUSE_ID).n_unique(),
                    "train_windows": windows,
                    "train_windows_per_s": windows / (t1 - t0),
                    "train_gflops": windows * flops / (t1 - t0) / 1e9,
                    "flops_per_window": flops,
                    "paths_per_s": paths / (t2 - t1),
                    "forecast_series_per_s": paths / cfg.forecast.num_paths / (t2 - t1),
                }
            )
            log.info("ours %s: fit %.1fs, predict %.1fs", cutoff, t1 - t0, t2 - t1)
    return rows


def nixtla_history(
    root: str, cutoff: dt.date, opts: io.StorageOptions | None = None
) -> tuple[Any, pl.DataFrame]:
    """Pandas ``unique_id, ds, y`` history up to ``cutoff`` and the ``unique_id -> keys`` map."""
    hist = (
        io.scan_table(root, S.SALES, opts)
        .filter(pl.col(S.DATE) <= cutoff)
        .select(S.SKU_ID, S.WAREHOUSE_ID, S.DATE, S.UNITS_SOLD)
        .sort(S.SKU_ID, S.WAREHOUSE_ID, S.DATE)
        .collect()
    )
    view = S.nixtla_view(hist.lazy()).collect()
    keys = pl.concat([hist.select(S.SKU_ID, S.WAREHOUSE_ID), view.select(S.UNIQUE_ID)], how="horizontal")
    train = view.with_columns(pl.col(S.DS).cast(pl.Datetime("ns")), pl.col(S.Y).cast(pl.Float64))
    return train.to_pandas(), keys.unique(maintain_order=True)


def _peer(spec: ChildSpec) -> list[dict[str, Any]]:
    rows = []
    for cutoff in spec.cutoffs:
        train, keys = nixtla_history(spec.cfg.data.root, cutoff)
        result = run_peer(spec.model, train, spec.settings)
        frame = to_forecast_frame(result, keys, cutoff, spec.settings.quantiles)
        frame.write_parquet(forecast_path(spec.out_dir, cutoff))
        rows.append(
            {
                "cutoff": cutoff.isoformat(),
                "fit_seconds": result.fit_seconds,
                "predict_seconds": result.predict_seconds,
                "steps": result.steps,
                "series": keys.height,
            }
        )
        log.info(
            "%s %s: fit %.1fs, predict %.1fs", spec.model, cutoff, result.fit_seconds, result.predict_seconds
        )
    return rows


def run_child(spec: ChildSpec) -> dict[str, Any]:
    """Run ``spec`` in this process; write the forecasts and ``result.json``; return the result."""
    Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = _ours(spec) if spec.model == "ours" else _peer(spec)
    result = {"model": spec.model, "cutoffs": rows, "seconds": time.perf_counter() - t0}
    (Path(spec.out_dir) / RESULT).write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m inventory_scale.bench.child SPEC.pkl``: run a pickled :class:`ChildSpec`."""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    for name in ("lightning.pytorch", "pytorch_lightning", "lightning_fabric", "neuralforecast"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with open(args[0], "rb") as f:
        spec = pickle.load(f)
    run_child(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
