"""What a run directory holds, read for the report: each input or ``None`` when it is absent.

The report reads whatever the run has: ``forecasts/``, ``plans/``, ``backtest/metrics/``,
``backtest/series/``, ``backtest/policy.parquet``, the per-shard training stats
(``models/shard=N/info.json``) and the stage manifests, plus the dataset the run was made from
(``sales``, ``products``, ``warehouses``, ``inventory``, ``calendar``) and the last monitoring
run's ``monitor/exceptions/``. The dataset root is the one
recorded in the run's manifests (so ``inventory-scale report run.dir=DIR`` needs nothing else),
falling back to ``data.root``. An absent input is ``None``, never an error: each report section
says plainly what it lacks.
"""

from __future__ import annotations

import datetime as dt
import io as pyio
import logging
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from inventory_scale import schema as S
from inventory_scale.data import io
from inventory_scale.errors import InventoryScaleError
from inventory_scale.manifest import read_manifest

log = logging.getLogger(__name__)

# Output folders of a run, in pipeline order, whose manifests the report lists.
STAGE_OUTPUTS: tuple[tuple[str, str], ...] = (
    ("validate", "validate"),
    ("train", "models"),
    ("forecast", "forecasts"),
    ("optimize", "plans"),
    ("backtest", "backtest"),
)
BACKTEST = "backtest"
POLICY_FILE = "policy.parquet"


def _raw_spec(name: str, partition_by: str | None = None) -> S.TableSpec:
    """A spec that only names a table folder (read with ``conform=False``)."""
    schema = pl.Schema({partition_by: pl.String}) if partition_by else pl.Schema({})
    return S.TableSpec(name=name, schema=schema, key=(), partition_by=partition_by)


FORECASTS_RAW = _raw_spec("forecasts", S.WAREHOUSE_ID)
SERIES_RAW = _raw_spec("series")


@dataclass(frozen=True)
class ForecastInfo:
    """The latest forecasts of a run: origin, last date, horizon, series, and their lazy scan."""

    cutoff: dt.date
    last: dt.date
    horizon: int
    series: int
    scan: pl.LazyFrame


@dataclass
class RunInputs:
    """Lazy, cached access to a run's outputs and its dataset.

    Args:
        run_dir: the run's output URI.
        data_root: dataset root from the config (used when no manifest records one).
        opts: storage options for ``s3://`` URIs.
    """

    run_dir: str
    data_root: str
    opts: io.StorageOptions | None = None
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stage, folder in STAGE_OUTPUTS:
            try:
                m = read_manifest(io.join(self.run_dir, folder), self.opts)
            except (InventoryScaleError, OSError, ValueError) as e:
                log.warning("report: unreadable manifest of %s: %s", folder, e)
                m = None
            if m is not None:
                self.manifests[stage] = m
        recorded = [
            m.get("config", {}).get("data", {}).get("root")
            for m in self.manifests.values()
            if isinstance(m.get("config"), dict)
        ]
        roots = [r for r in recorded if r] + [self.data_root]
        self.data_root = next((r for r in roots if io.table_files(r, S.SALES, self.opts)), self.data_root)

    def _memo(self, key: str, fn: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _scan(self, root: str, spec: S.TableSpec, conform: bool = True) -> pl.LazyFrame | None:
        if not io.table_files(root, spec, self.opts):
            return None
        return io.scan_table(root, spec, self.opts, conform=conform)

    def data_table(self, spec: S.TableSpec) -> pl.DataFrame | None:
        """A whole (small) input table of the dataset, or None."""
        return self._memo(f"data:{spec.name}", lambda: _collect(self._scan(self.data_root, spec)))

    def sales(self) -> pl.LazyFrame | None:
        """Lazy scan of the dataset's sales."""
        return self._scan(self.data_root, S.SALES)

    def forecast_info(self) -> ForecastInfo | None:
        """Cutoff, last date, horizon and series count of the latest forecasts, or None."""

        def read() -> ForecastInfo | None:
            lf = self._scan(self.run_dir, FORECASTS_RAW, conform=False)
            if lf is None:
                return None
            row = lf.select(pl.col(S.CUTOFF).max()).collect()
            cutoff = row.item()
            if cutoff is None:
                return None
            latest = lf.filter(pl.col(S.CUTOFF) == cutoff)
            agg = latest.select(
                pl.col(S.DS).max().alias("last"),
                pl.col(S.STEP).max().alias("horizon"),
                pl.struct(S.SKU_ID, S.WAREHOUSE_ID).n_unique().alias("series"),
            ).collect()
            return ForecastInfo(cutoff, agg["last"][0], int(agg["horizon"][0]), int(agg["series"][0]), latest)

        return self._memo("forecast_info", read)

    def forecasts(self) -> pl.LazyFrame | None:
        """Lazy scan of the latest cutoff's rows in ``forecasts/`` (all columns as written), or None.

        Collect aggregates or a few series from it: a run may hold millions of series.
        """
        info = self.forecast_info()
        return None if info is None else info.scan

    def forecast_series(self) -> pl.DataFrame | None:
        """The ``sku_id, warehouse_id`` keys of the latest forecasts, or None."""
        lf = self.forecasts()
        return self._memo(
            "forecast_series",
            lambda: None if lf is None else lf.select(S.SKU_ID, S.WAREHOUSE_ID).unique().collect(),
        )

    def cutoff(self) -> dt.date | None:
        """The forecast origin of the run (forecasts, else plans, else the train manifest)."""
        info = self.forecast_info()
        if info is not None:
            return info.cutoff
        plans = self.plans()
        if plans is not None and plans.height:
            return plans[S.CUTOFF].max()  # type: ignore[return-value]
        cut = self.manifests.get("train", {}).get("cutoff")
        return dt.date.fromisoformat(cut) if cut else None

    def plans(self) -> pl.DataFrame | None:
        """``plans/`` of the run, or None."""
        return self._memo("plans", lambda: _collect(self._scan(self.run_dir, S.PLANS)))

    def backtest_metrics(self) -> pl.DataFrame | None:
        """``backtest/metrics/``, or None."""
        root = io.join(self.run_dir, BACKTEST)
        return self._memo("metrics", lambda: _collect(self._scan(root, S.BACKTEST_METRICS)))

    def backtest_series(self) -> pl.DataFrame | None:
        """``backtest/series/`` (per-series metrics of every model), or None."""
        root = io.join(self.run_dir, BACKTEST)
        return self._memo("series", lambda: _collect(self._scan(root, SERIES_RAW, conform=False)))

    def policy(self) -> pl.DataFrame | None:
        """``backtest/policy.parquet`` (policy A/B KPIs), or None."""

        def read() -> pl.DataFrame | None:
            uri = io.join(self.run_dir, BACKTEST, POLICY_FILE)
            if not io.exists(uri, self.opts):
                return None
            return pl.read_parquet(pyio.BytesIO(io.read_bytes(uri, self.opts)))

        return self._memo("policy", read)

    def exceptions(self) -> pl.DataFrame | None:
        """``monitor/exceptions/`` (the last monitoring run), or None."""
        root = io.join(self.run_dir, "monitor")
        return self._memo("exceptions", lambda: _collect(self._scan(root, S.EXCEPTIONS)))

    def train_stats(self) -> list[dict[str, Any]]:
        """``info.json`` of every trained shard (steps, epochs, val_loss, windows/s, ...)."""

        def read() -> list[dict[str, Any]]:
            base = io.join(self.run_dir, "models")
            if not io.exists(base, self.opts):
                return []
            prefix = "s3://" if io.is_remote(base) else ""
            files = [f for f in io.list_files(base, self.opts, suffix="info.json")]
            return [io.read_json(prefix + f.path, self.opts) for f in files]

        return self._memo("train", read)


def _collect(lf: pl.LazyFrame | None) -> pl.DataFrame | None:
    return None if lf is None else lf.collect()
