"""Monitoring: newly arrived sales against the last forecast -> an exceptions table for planners.

``inventory-scale monitor data.root=... run.dir=...`` reads the run's latest ``forecasts/`` (origin
``cutoff``), the sales after the cutoff up to ``monitor.asof`` (default: the last sales date), the
stock (``inventory`` as of the cutoff, ``inbound``, ``products``, the run's ``plans``), applies the
rules of :mod:`inventory_scale.evaluation.exceptions` (band breaches, level shifts, stockout,
excess and expiry risk; their false-alarm bound is stated there) and writes
``<run.dir>/monitor/exceptions/`` (:data:`schema.EXCEPTIONS`) with a manifest.

``monitor.reforecast=true`` re-runs ``forecast`` and ``optimize`` at ``asof`` for the shards that
hold a flagged series only, with the run's checkpoints, into ``<run.dir>/monitor/reforecast/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from typing import Any

import polars as pl

from inventory_scale import schema as S
from inventory_scale.config import Config, RunConfig
from inventory_scale.data import io
from inventory_scale.errors import SchemaError
from inventory_scale.evaluation.exceptions import (
    HI,
    KEYS,
    LO,
    MID,
    detect,
    protection_column,
    run_probability,
    sign_test_threshold,
)
from inventory_scale.manifest import build_manifest, write_manifest

__all__ = ["detect", "run_monitor", "run_probability", "sign_test_threshold", "stock_frame"]

log = logging.getLogger(__name__)

MONITOR = "monitor"
REFORECAST = "reforecast"


def stock_frame(
    inventory: pl.DataFrame,
    inbound: pl.DataFrame,
    products: pl.DataFrame,
    sales: pl.DataFrame,
    plans: pl.DataFrame | None,
    cutoff: dt.date,
    asof: dt.date,
) -> pl.DataFrame:
    """Per series: on hand at ``asof``, in transit, the next receipt and the shelf life.

    ``inventory.on_hand`` is the stock at the cutoff; receipts of ``inbound`` in (cutoff, asof]
    are added and the sales since subtracted (clipped at 0). The next receipt is the first inbound
    arrival after ``asof``, the run's planned order (``order_qty > 0``, arriving ``lead_time_days``
    after the cutoff) if that is sooner and still ahead, else an order placed at ``asof``.
    """
    arrived = (
        inbound.filter((pl.col(S.ARRIVAL_DATE) > cutoff) & (pl.col(S.ARRIVAL_DATE) <= asof))
        .group_by(KEYS)
        .agg(pl.col(S.QUANTITY).cast(pl.Float64).sum().alias("_arrived"))
    )
    ahead = inbound.filter(pl.col(S.ARRIVAL_DATE) > asof)
    transit = ahead.group_by(KEYS).agg(
        pl.col(S.QUANTITY).cast(pl.Float64).sum().alias("in_transit"),
        pl.col(S.ARRIVAL_DATE).min().alias("_inbound_next"),
    )
    sold = (
        sales.filter((pl.col(S.DATE) > cutoff) & (pl.col(S.DATE) <= asof))
        .group_by(KEYS)
        .agg(pl.col(S.UNITS_SOLD).cast(pl.Float64).sum().alias("_sold"))
    )
    lead = pl.duration(days=pl.col(S.LEAD_TIME_DAYS).ceil().cast(pl.Int64))
    frame = (
        inventory.join(arrived, on=KEYS, how="left")
        .join(transit, on=KEYS, how="left")
        .join(sold, on=KEYS, how="left")
        .join(products.select(S.SKU_ID, S.SHELF_LIFE_DAYS), on=S.SKU_ID, how="left")
    )
    planned = pl.lit(None, pl.Date)
    if plans is not None and not plans.is_empty():
        orders = plans.filter(pl.col(S.ORDER_QTY) > 0).select(*KEYS, pl.lit(True).alias("_planned"))
        frame = frame.join(orders, on=KEYS, how="left")
        planned = pl.when(pl.col("_planned") & (pl.lit(cutoff) + lead > asof)).then(pl.lit(cutoff) + lead)
    receipt = pl.min_horizontal(pl.col("_inbound_next"), planned, pl.lit(asof) + lead)
    return frame.select(
        *KEYS,
        (
            pl.col(S.ON_HAND).cast(pl.Float64)
            + pl.col("_arrived").fill_null(0.0)
            - pl.col("_sold").fill_null(0.0)
        )
        .clip(lower_bound=0.0)
        .alias(S.ON_HAND),
        pl.col("in_transit").fill_null(0.0),
        receipt.cast(pl.Date).alias("next_receipt"),
        pl.col(S.SHELF_LIFE_DAYS),
    )


def _reforecast(cfg: Config, exceptions: pl.DataFrame, asof: dt.date, opts: io.StorageOptions | None) -> Any:
    """Forecast and optimize again at ``asof`` for the shards holding a flagged series only."""
    from inventory_scale import pipeline
    from inventory_scale.distributed import outputs

    shards = io.read_table(cfg.run.dir, S.SHARDS, opts)
    hit = shards.join(exceptions.select(KEYS).unique(), on=KEYS, how="semi")[S.SHARD].unique().sort()
    sub_dir = io.join(cfg.run.dir, MONITOR, REFORECAST)
    io.remove(sub_dir, opts)
    io.write_table(shards.filter(pl.col(S.SHARD).is_in(hit.to_list())), sub_dir, S.SHARDS, opts)
    for shard in hit.to_list():
        members = cfg.model.ensemble
        srcs = outputs.member_uris(cfg.run.dir, int(shard), members)
        dsts = outputs.member_uris(sub_dir, int(shard), members)
        for src, dst in [
            *zip(srcs[1:], dsts[1:], strict=True),
            (srcs[0], dsts[0]),
        ]:  # member 0, the marker, last
            io.write_bytes(dst, io.read_bytes(src, opts), opts)
    sub = dataclasses.replace(cfg, run=RunConfig(dir=sub_dir, cutoff=asof.isoformat()))
    log.info("monitor: re-forecasting %d shard(s) %s at %s -> %s", len(hit), hit.to_list(), asof, sub_dir)
    forecast = pipeline.run_forecast(sub)
    optimize = pipeline.run_optimize(sub)
    return {
        "dir": sub_dir,
        "shards": [int(s) for s in hit.to_list()],
        "forecast": forecast,
        "optimize": optimize,
    }


def run_monitor(cfg: Config, opts: io.StorageOptions | None = None) -> dict[str, Any]:
    """Compare the sales after the run's forecast cutoff with it; write the exceptions table.

    Returns:
        Summary: cutoff, asof, new days, series checked, exceptions by reason and severity, the
        output URI, and the re-forecast summary when ``monitor.reforecast=true``.

    Raises:
        SchemaError: the run has no forecasts or the dataset no sales.
    """
    t0 = time.perf_counter()
    mcfg, root = cfg.monitor, cfg.data.root
    spec = S.forecast_spec(cfg.forecast.quantiles, cfg.forecast.protection_quantiles)
    if not io.table_files(cfg.run.dir, spec, opts):
        raise SchemaError(f"{io.join(cfg.run.dir, spec.name)}: no forecasts to monitor (run forecast first)")
    fc_lf = io.scan_table(cfg.run.dir, spec, opts, conform=False)
    names = fc_lf.collect_schema().names()
    pi_col = protection_column(names, mcfg.stockout_quantile)
    wanted = [*KEYS, S.CUTOFF, S.DS, S.STEP, S.MEAN, LO, MID, HI, S.PI_STEPS, S.PI_MEAN, pi_col]
    fc = (
        fc_lf.select([c for c in wanted if c in names])  # only what the rules read: runs can be large
        .filter(pl.col(S.CUTOFF) == pl.col(S.CUTOFF).max())
        .collect()
    )
    cutoff: dt.date = fc[S.CUTOFF][0]
    sales_lf = io.scan_table(root, S.SALES, opts)
    last = sales_lf.select(pl.col(S.DATE).max()).collect().item()
    asof = dt.date.fromisoformat(mcfg.asof) if mcfg.asof else last
    series = fc.select(KEYS).unique()
    sales = (
        sales_lf.filter((pl.col(S.DATE) > cutoff) & (pl.col(S.DATE) <= asof))
        .join(series.lazy(), on=KEYS, how="semi")
        .collect()
    )
    new_days = sales[S.DATE].n_unique()
    if new_days == 0:
        log.warning(
            "monitor: no sales after the forecast cutoff %s (as of %s): nothing to compare", cutoff, asof
        )
    tables = {t.name: io.read_table(root, t, opts) for t in (S.INVENTORY, S.INBOUND, S.PRODUCTS)}
    plans = io.read_table(cfg.run.dir, S.PLANS, opts) if io.table_files(cfg.run.dir, S.PLANS, opts) else None
    stock = stock_frame(
        tables["inventory"], tables["inbound"], tables["products"], sales, plans, cutoff, asof
    ).join(series, on=KEYS, how="semi")
    skipped = [
        r for r, cols in (("band_breach", (LO, HI)), ("level_shift", (MID,))) if set(cols) - set(fc.columns)
    ]
    if skipped:
        log.warning(
            "monitor: forecasts lack %s: %s skipped (add 0.05, 0.5 and 0.95 to forecast.quantiles)",
            ", ".join(c for c in (LO, MID, HI) if c not in fc.columns),
            " and ".join(skipped),
        )
    exceptions = detect(fc, sales, stock, asof, mcfg)
    out = io.join(cfg.run.dir, MONITOR)
    io.write_table(exceptions, out, S.EXCEPTIONS, opts)
    by_reason = dict(exceptions.group_by(S.REASON).len().sort(S.REASON).rows())
    by_severity = dict(exceptions.group_by(S.SEVERITY).len().rows())
    summary: dict[str, Any] = {
        "stage": "monitor",
        "output": io.join(out, S.EXCEPTIONS.name),
        "cutoff": cutoff.isoformat(),
        "asof": asof.isoformat(),
        "new_days": new_days,
        "series": series.height,
        "exceptions": exceptions.height,
        "series_flagged": exceptions.select(KEYS).n_unique(),
        "by_reason": {str(k): int(v) for k, v in by_reason.items()},
        "by_severity": {s: int(by_severity.get(s, 0)) for s in S.SEVERITIES},
    }
    if mcfg.reforecast and exceptions.height:
        summary["reforecast"] = _reforecast(cfg, exceptions, asof, opts)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    inputs = [io.join(cfg.run.dir, spec.name), io.join(root, S.SALES.name)]
    write_manifest(out, build_manifest("monitor", cfg, cfg.seed, inputs, opts, summary=summary), opts)
    log.info(
        "monitor: %d exception(s) on %d of %d series (%d new days): %s",
        exceptions.height,
        summary["series_flagged"],
        series.height,
        new_days,
        summary["by_reason"],
    )
    return summary
