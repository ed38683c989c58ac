"""Configs of the tool stages (sweep, report, monitor, bench), kept apart from the core groups.

``inventory_scale.config`` re-exports every class here, so ``from inventory_scale.config import
SweepConfig`` keeps working; the checks are those of :mod:`inventory_scale.config_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inventory_scale.config_checks import check_date, require


@dataclass
class SweepConfig:
    """Hyperparameter search (Ray Tune + Optuna TPE + ASHA; ``inventory_scale/sweep.py``).

    ``space`` maps config keys to distributions (``sweep_space.py``); ``overrides`` sets keys to
    fixed values for every trial (the trial budget). Trials are scored with ``metric`` on the
    ``horizon`` after ``cutoffs`` validation origins ending at ``end`` (null: ``backtest.end`` or
    the last date), for the series of ``shards`` shards of the base sharding.
    """

    name: str = "lstm_small"
    num_samples: int = 16
    max_concurrent: int = 2
    metric: str = "rmsse"
    time_budget_s: float | None = None
    space: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    shards: int = 2
    cutoffs: int = 1
    end: str | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    grace_period: int = 1
    reduction_factor: int = 2
    include_default: bool = True
    resume: bool = True

    def __post_init__(self) -> None:
        require(bool(self.name) and "/" not in self.name, "sweep.name", "must be a plain name", self.name)
        require(self.num_samples > 0, "sweep.num_samples", "must be > 0", self.num_samples)
        require(self.max_concurrent > 0, "sweep.max_concurrent", "must be > 0", self.max_concurrent)
        require(
            self.metric in ("rmsse", "crps", "mase", "spl"),
            "sweep.metric",
            "must be rmsse, crps, mase or spl",
            self.metric,
        )
        require(
            self.time_budget_s is None or self.time_budget_s > 0,
            "sweep.time_budget_s",
            "must be > 0 or null",
            self.time_budget_s,
        )
        require(self.shards > 0, "sweep.shards", "must be > 0", self.shards)
        require(self.cutoffs > 0, "sweep.cutoffs", "must be > 0", self.cutoffs)
        check_date("sweep.end", self.end)
        require(self.cpus_per_trial > 0, "sweep.cpus_per_trial", "must be > 0", self.cpus_per_trial)
        require(self.gpus_per_trial >= 0, "sweep.gpus_per_trial", "must be >= 0", self.gpus_per_trial)
        require(self.grace_period > 0, "sweep.grace_period", "must be > 0", self.grace_period)
        require(self.reduction_factor >= 2, "sweep.reduction_factor", "must be >= 2", self.reduction_factor)


@dataclass
class ReportConfig:
    """The run report (``inventory-scale report``): which series and events it shows.

    ``series`` names series as ``sku_id/warehouse_id``; when empty the ``n_top`` best sellers are
    shown. ``n_worst`` more are the series the backtest scored worst on ``metric``. ``events``
    are matched case-insensitively as substrings of the calendar's event names.
    """

    dir: str | None = None
    series: list[str] = field(default_factory=list)
    n_top: int = 2
    n_worst: int = 2
    history_days: int = 56
    metric: str = "mase"
    events: list[str] = field(default_factory=lambda: ["11.11", "Black Friday", "Christmas"])
    event_before: int = 14
    event_after: int = 7
    top_orders: int = 5

    def __post_init__(self) -> None:
        require(self.n_top >= 0, "report.n_top", "must be >= 0", self.n_top)
        require(self.n_worst >= 0, "report.n_worst", "must be >= 0", self.n_worst)
        require(self.history_days > 0, "report.history_days", "must be > 0", self.history_days)
        for s in self.series:
            require(s.count("/") == 1, "report.series", "must hold 'sku_id/warehouse_id' names", s)
        metrics = ("mase", "rmsse", "spl", "crps", "bias")
        require(self.metric in metrics, "report.metric", f"must be one of {list(metrics)}", self.metric)
        require(self.event_before > 0, "report.event_before", "must be > 0", self.event_before)
        require(self.event_after >= 0, "report.event_after", "must be >= 0", self.event_after)
        require(self.top_orders >= 0, "report.top_orders", "must be >= 0", self.top_orders)


@dataclass
class MonitorConfig:
    """Monitoring (``inventory-scale monitor``): new sales against the last forecast.

    False alarms on a calibrated forecast (independent days): a band run of ``band_days`` days
    outside the 90% band has probability <= ``0.1 ** band_days`` per start day; the level-shift
    sign test is sized to ``shift_alpha`` (see ``inventory_scale/evaluation/exceptions.py``).
    """

    asof: str | None = None
    band_days: int = 3
    shift_min_days: int = 7
    shift_alpha: float = 0.01
    shift_min_ratio: float = 0.25
    stockout_quantile: float = 0.9
    excess_cover_days: float = 120.0
    reforecast: bool = False

    def __post_init__(self) -> None:
        check_date("monitor.asof", self.asof)
        require(self.band_days >= 1, "monitor.band_days", "must be >= 1", self.band_days)
        require(self.shift_min_days >= 2, "monitor.shift_min_days", "must be >= 2", self.shift_min_days)
        require(
            0.0 < self.shift_alpha < 0.5, "monitor.shift_alpha", "must be inside (0, 0.5)", self.shift_alpha
        )
        require(self.shift_min_ratio >= 0, "monitor.shift_min_ratio", "must be >= 0", self.shift_min_ratio)
        require(
            0.5 <= self.stockout_quantile < 1.0,
            "monitor.stockout_quantile",
            "must be in [0.5, 1)",
            self.stockout_quantile,
        )
        require(
            self.excess_cover_days > 0, "monitor.excess_cover_days", "must be > 0", self.excess_cover_days
        )


BENCH_MODELS = ("ours", "nf_lstm", "nf_lstm_negbin", "seasonal_naive", "autoets", "lightgbm")
"""Models ``inventory-scale bench`` knows: ours (LSTM on Ray) and the peers (``bench/peers.py``)."""

BENCH_DATASETS = ("synthetic", "m5", "store_item")
"""Daily datasets the benchmark can run on (``bench.datasets[].name``)."""


@dataclass
class BenchDatasetConfig:
    """One dataset of a benchmark run: what to load or generate, its cutoffs, and our settings.

    ``ours`` holds dotted overrides of the whole config for our LSTM on this dataset (e.g.
    ``{"model.hidden_size": 128, "ray.shard_size": "all"}``); the peers read context, horizon,
    hidden size and the training-step budget from the result, so both sides match.
    """

    name: str = "synthetic"
    label: str | None = None
    n_skus: int = 250
    n_warehouses: int = 4
    days: int = 730
    max_series: int | None = None
    horizon: int = 28
    context_length: int = 56
    cutoffs: int = 1
    step: int = 28
    ours: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(
            self.name in BENCH_DATASETS,
            "bench.datasets.name",
            f"must be one of {list(BENCH_DATASETS)}",
            self.name,
        )
        require(self.n_skus > 0, "bench.datasets.n_skus", "must be > 0", self.n_skus)
        require(self.n_warehouses > 0, "bench.datasets.n_warehouses", "must be > 0", self.n_warehouses)
        require(self.days > 0, "bench.datasets.days", "must be > 0", self.days)
        require(
            self.max_series is None or self.max_series > 0,
            "bench.datasets.max_series",
            "must be > 0 or null",
            self.max_series,
        )
        require(self.horizon > 0, "bench.datasets.horizon", "must be > 0", self.horizon)
        require(
            self.context_length >= 2, "bench.datasets.context_length", "must be >= 2", self.context_length
        )
        require(self.cutoffs > 0, "bench.datasets.cutoffs", "must be > 0", self.cutoffs)
        require(self.step > 0, "bench.datasets.step", "must be > 0", self.step)

    @property
    def key(self) -> str:
        """Row label: ``label``, else the name (with the series count for synthetic data)."""
        if self.label:
            return self.label
        return f"synthetic-{self.n_skus * self.n_warehouses}" if self.name == "synthetic" else self.name


@dataclass
class BenchConfig:
    """``inventory-scale bench``: ours against the peers on the same data, horizon and cutoffs."""

    name: str = "quick"
    datasets: list[BenchDatasetConfig] = field(default_factory=lambda: [BenchDatasetConfig()])
    models: list[str] = field(default_factory=lambda: list(BENCH_MODELS))
    require_peers: bool = True
    threads: int | None = None
    peer_steps_factor: float = 1.0
    lightgbm_estimators: int = 300
    lightgbm_conformal_windows: int = 0
    hardware: bool = True
    hardware_seconds: float = 2.0
    out_dir: str | None = None

    def __post_init__(self) -> None:
        require(len(self.datasets) > 0, "bench.datasets", "must list at least one dataset", self.datasets)
        keys = [d.key for d in self.datasets]
        require(len(set(keys)) == len(keys), "bench.datasets", "must have distinct labels", keys)
        require(len(self.models) > 0, "bench.models", "must list at least one model", self.models)
        for m in self.models:
            require(m in BENCH_MODELS, "bench.models", f"must hold models among {list(BENCH_MODELS)}", m)
        require(
            self.threads is None or self.threads > 0, "bench.threads", "must be > 0 or null", self.threads
        )
        require(
            self.peer_steps_factor >= 1.0,
            "bench.peer_steps_factor",
            "must be >= 1 (peers get an equal or larger step budget)",
            self.peer_steps_factor,
        )
        require(
            self.lightgbm_estimators > 0, "bench.lightgbm_estimators", "must be > 0", self.lightgbm_estimators
        )
        require(
            self.lightgbm_conformal_windows >= 0 and self.lightgbm_conformal_windows != 1,
            "bench.lightgbm_conformal_windows",
            "must be 0 (point forecast only) or >= 2",
            self.lightgbm_conformal_windows,
        )
        require(self.hardware_seconds > 0, "bench.hardware_seconds", "must be > 0", self.hardware_seconds)
