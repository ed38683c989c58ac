"""Typed configuration: one dataclass per Hydra config group, checked when the config is built.

Hydra composes ``conf/`` onto these dataclasses (registered by ``cli.py``, the only Hydra
importer), so an unknown key or a wrong type fails at compose time with the key named. Bad values
(a negative horizon, a quantile outside (0, 1)) are caught by ``__post_init__`` when ``cli.py``
turns the composed config into these objects; the :class:`ConfigError` names the full key.

Stage code receives a plain :class:`Config` (picklable, so it crosses into Ray workers as is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inventory_scale.config_checks import check_date as _check_date
from inventory_scale.config_checks import require as _require
from inventory_scale.config_tools import (
    BENCH_DATASETS,
    BENCH_MODELS,
    BenchConfig,
    BenchDatasetConfig,
    MonitorConfig,
    ReportConfig,
    SweepConfig,
)
from inventory_scale.schema import FREQUENCIES, PLANNED_SOURCES

__all__ = [
    "BENCH_DATASETS",
    "BENCH_MODELS",
    "BenchConfig",
    "BenchDatasetConfig",
    "MonitorConfig",
    "ReportConfig",
    "SweepConfig",
]

DEFAULT_QUANTILES = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]


@dataclass
class DataConfig:
    """Input dataset: where it lives, its frequency, and how it is made (``generate``).

    Synthetic fields (``n_skus`` .. ``chunk_series``) drive ``data/synth.py``; the fill rules
    (``margin`` .. ``cover_days``) supply what real sources lack (costs, lead times, capacities).
    """

    name: str = "synthetic"
    root: str = "datasets/synthetic"
    source_dir: str = "../shared/data"
    verify_checksums: bool = True
    freq: str = "1d"
    horizon: int = 28
    context_length: int = 112
    season_length: int = 7
    max_series: int | None = None
    # synthetic marketplace
    n_skus: int = 300
    n_warehouses: int = 3
    days: int = 730
    start_date: str = "2024-01-01"
    chunk_series: int = 4000
    launch_share: float = 0.15
    # fill rules for fields a source lacks
    margin: float = 0.35
    salvage_fraction: float = 0.3
    goodwill_fraction: float = 0.1
    lead_time_days: float = 7.0
    lead_time_std_days: float = 1.5
    review_period_days: int = 7
    holding_cost_rate: float = 0.25
    volume_m3: float = 0.01
    case_pack: int = 1
    moq: int = 0
    cover_days: float = 21.0
    budget_cover_days: float = 14.0
    negative_sales: str = "clip"
    # covariates of the forecast horizon known at the cutoff (data/planned.py)
    planned_prices: str = "table"

    def __post_init__(self) -> None:
        _require(
            bool(self.root),
            "data.root",
            "must be set to the dataset root (local path or s3://...)",
            self.root,
        )
        _require(self.freq in FREQUENCIES, "data.freq", f"must be one of {list(FREQUENCIES)}", self.freq)
        _require(self.horizon > 0, "data.horizon", "must be > 0", self.horizon)
        _require(self.context_length > 0, "data.context_length", "must be > 0", self.context_length)
        _require(self.season_length > 0, "data.season_length", "must be > 0", self.season_length)
        _require(self.n_skus > 0, "data.n_skus", "must be > 0", self.n_skus)
        _require(self.n_warehouses > 0, "data.n_warehouses", "must be > 0", self.n_warehouses)
        _require(self.days > 0, "data.days", "must be > 0", self.days)
        _require(self.chunk_series > 0, "data.chunk_series", "must be > 0", self.chunk_series)
        _require(0.0 <= self.launch_share <= 1.0, "data.launch_share", "must be in [0, 1]", self.launch_share)
        _require(0.0 <= self.margin < 1.0, "data.margin", "must be in [0, 1)", self.margin)
        _require(
            0.0 <= self.salvage_fraction < 1.0,
            "data.salvage_fraction",
            "must be in [0, 1)",
            self.salvage_fraction,
        )
        _require(
            self.goodwill_fraction >= 0, "data.goodwill_fraction", "must be >= 0", self.goodwill_fraction
        )
        _require(self.lead_time_days > 0, "data.lead_time_days", "must be > 0", self.lead_time_days)
        _require(
            self.lead_time_std_days >= 0, "data.lead_time_std_days", "must be >= 0", self.lead_time_std_days
        )
        _require(
            self.review_period_days > 0, "data.review_period_days", "must be > 0", self.review_period_days
        )
        _require(self.volume_m3 > 0, "data.volume_m3", "must be > 0", self.volume_m3)
        _require(self.case_pack >= 1, "data.case_pack", "must be >= 1", self.case_pack)
        _require(self.moq >= 0, "data.moq", "must be >= 0", self.moq)
        _require(self.cover_days > 0, "data.cover_days", "must be > 0", self.cover_days)
        _require(self.budget_cover_days > 0, "data.budget_cover_days", "must be > 0", self.budget_cover_days)
        _require(
            self.negative_sales in ("clip", "error"),
            "data.negative_sales",
            "must be 'clip' or 'error'",
            self.negative_sales,
        )
        _require(
            self.planned_prices in PLANNED_SOURCES,
            "data.planned_prices",
            f"must be one of {list(PLANNED_SOURCES)}",
            self.planned_prices,
        )
        _require(
            self.max_series is None or self.max_series > 0,
            "data.max_series",
            "must be > 0 or null",
            self.max_series,
        )
        _check_date("data.start_date", self.start_date)


@dataclass
class ModelConfig:
    """Global LSTM (DeepAR-style) architecture and optimisation."""

    name: str = "lstm"
    likelihood: str = "negbin"
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.1
    embedding_dim: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    window_sampling: str = "scale"
    launch_share: float = 0.0
    text_features: bool = False
    text_dim: int = 16
    lags: list[int] | None = None
    last_year: bool = True
    subcategory: bool = False
    last_year_group: bool = False
    last_year_min_years: float = 1.0
    named_events: bool = False
    ensemble: int = 1

    def __post_init__(self) -> None:
        _require(self.ensemble >= 1, "model.ensemble", "must be >= 1", self.ensemble)
        _require(
            self.lags is None or all(lag >= 1 for lag in self.lags),
            "model.lags",
            "must be null (frequency default) or a list of lags >= 1",
            self.lags,
        )
        _require(
            self.likelihood in ("negbin", "tweedie"),
            "model.likelihood",
            "must be 'negbin' or 'tweedie'",
            self.likelihood,
        )
        _require(self.hidden_size > 0, "model.hidden_size", "must be > 0", self.hidden_size)
        _require(self.num_layers > 0, "model.num_layers", "must be > 0", self.num_layers)
        _require(0.0 <= self.dropout < 1.0, "model.dropout", "must be in [0, 1)", self.dropout)
        _require(self.embedding_dim > 0, "model.embedding_dim", "must be > 0", self.embedding_dim)
        _require(self.learning_rate > 0, "model.learning_rate", "must be > 0", self.learning_rate)
        _require(self.weight_decay >= 0, "model.weight_decay", "must be >= 0", self.weight_decay)
        _require(self.batch_size > 0, "model.batch_size", "must be > 0", self.batch_size)
        _require(0.0 <= self.launch_share < 1.0, "model.launch_share", "must be in [0, 1)", self.launch_share)
        _require(self.text_dim > 0, "model.text_dim", "must be > 0", self.text_dim)
        years = self.last_year_min_years
        _require(years >= 0, "model.last_year_min_years", "must be >= 0", years)
        _require(
            self.window_sampling in ("scale", "uniform"),
            "model.window_sampling",
            "must be 'scale' or 'uniform'",
            self.window_sampling,
        )


@dataclass
class ForecastConfig:
    """What a forecast run emits: sample paths and the quantiles read from them."""

    num_paths: int = 200
    quantiles: list[float] = field(default_factory=lambda: list(DEFAULT_QUANTILES))
    protection_quantiles: list[float] = field(default_factory=lambda: [0.5, 0.8, 0.9, 0.95, 0.99])
    keep_paths: bool = False
    sample_rows: int = 65536
    cold_start: bool = True

    def __post_init__(self) -> None:
        _require(self.num_paths > 0, "forecast.num_paths", "must be > 0", self.num_paths)
        _require(self.sample_rows > 0, "forecast.sample_rows", "must be > 0", self.sample_rows)
        for key, qs in (
            ("forecast.quantiles", self.quantiles),
            ("forecast.protection_quantiles", self.protection_quantiles),
        ):
            _require(len(qs) > 0, key, "must not be empty", qs)
            for q in qs:
                _require(0.0 < float(q) < 1.0, key, "must hold quantiles strictly inside (0, 1)", q)


@dataclass
class TextConfig:
    """Product-text embeddings (``text/embed.py``; used when ``model.text_features=true``)."""

    cache: str = "outputs/text_cache"
    batch_size: int = 128
    device: str = "auto"

    def __post_init__(self) -> None:
        _require(self.batch_size > 0, "text.batch_size", "must be > 0", self.batch_size)
        _require(
            self.device in ("auto", "cpu", "cuda"), "text.device", "must be auto, cpu or cuda", self.device
        )


@dataclass
class TrainerConfig:
    """Lightning trainer settings (``trainer=cpu`` or ``trainer=gpu``)."""

    accelerator: str = "cpu"
    devices: int = 1
    precision: str = "32-true"
    max_epochs: int = 20
    steps_per_epoch: int = 100
    gradient_clip_val: float = 10.0
    early_stopping_patience: int = 3
    deterministic: bool = True

    def __post_init__(self) -> None:
        _require(
            self.accelerator in ("cpu", "gpu", "cuda", "auto"),
            "trainer.accelerator",
            "must be cpu, gpu, cuda or auto",
            self.accelerator,
        )
        _require(self.devices > 0, "trainer.devices", "must be > 0", self.devices)
        _require(self.max_epochs > 0, "trainer.max_epochs", "must be > 0", self.max_epochs)
        _require(self.steps_per_epoch > 0, "trainer.steps_per_epoch", "must be > 0", self.steps_per_epoch)
        _require(
            self.gradient_clip_val >= 0, "trainer.gradient_clip_val", "must be >= 0", self.gradient_clip_val
        )
        _require(
            self.early_stopping_patience >= 0,
            "trainer.early_stopping_patience",
            "must be >= 0",
            self.early_stopping_patience,
        )


@dataclass
class RayConfig:
    """Where work runs: embedded local Ray (``address: local``), an existing cluster, or in-process.

    ``sales_layout``: ``bucketed`` writes the sales history once per run bucketed by shard so
    each task reads one slice (``distributed/sharding.py:prepare_sales``); ``raw`` has every task
    read the raw table with predicate pushdown.
    """

    mode: str = "local"
    address: str | None = "local"
    num_cpus: int | None = None
    num_cpus_per_task: float = 1.0
    num_gpus_per_task: float = 0.0
    shard_size: str = "2000"
    group_by: str | None = None
    max_retries: int = 2
    max_in_flight: int | None = None
    sales_layout: str = "bucketed"
    dashboard: bool = False

    def __post_init__(self) -> None:
        _require(
            self.mode in ("local", "cluster", "inprocess"),
            "ray.mode",
            "must be 'local', 'cluster' or 'inprocess'",
            self.mode,
        )
        _require(
            self.sales_layout in ("bucketed", "raw"),
            "ray.sales_layout",
            "must be 'bucketed' or 'raw'",
            self.sales_layout,
        )
        _require(
            self.num_cpus is None or self.num_cpus > 0, "ray.num_cpus", "must be > 0 or null", self.num_cpus
        )
        _require(self.num_cpus_per_task > 0, "ray.num_cpus_per_task", "must be > 0", self.num_cpus_per_task)
        _require(self.num_gpus_per_task >= 0, "ray.num_gpus_per_task", "must be >= 0", self.num_gpus_per_task)
        _require(
            self.shard_size == "all" or (self.shard_size.isdigit() and int(self.shard_size) > 0),
            "ray.shard_size",
            "must be a positive integer or 'all'",
            self.shard_size,
        )
        _require(self.max_retries >= 0, "ray.max_retries", "must be >= 0", self.max_retries)


@dataclass
class PolicyConfig:
    """Reorder policy: order-up-to rule, the costs it weighs, the solver, and the A/B baselines.

    The order-up-to level of a series is the critical-ratio quantile of its protection-interval
    demand, CR = (p - c + g) / (p - v + g) (``inventory/newsvendor.py``), where ``v`` is what a
    leftover unit is worth: its salvage value (``overage: salvage``, the one-shot newsvendor) or
    its cost less the holding cost of one more review period (``overage: carryover``, stock that
    keeps selling). Perishables value units that would outdate at salvage either way.
    ``carryover_days`` bounds "keeps selling" for every item: a unit that has not sold within the
    review period plus that many days after it arrives is valued at salvage, like an outdated one
    (seasonal goods after their season: the carried-over stock is not absorbed by the next orders).
    """

    name: str = "newsvendor"
    solver: str = "greedy"
    milp_time_limit_s: float = 30.0
    milp_gap: float = 1e-3
    milp_segments: int = 24
    service_level: float | None = None
    overage: str = "carryover"
    carryover_days: float | None = None
    ended_after_days: int | None = 28
    goodwill: float | None = None
    holding_cost_rate: float | None = None
    baseline_service_level: float = 0.95
    forecaster: str = "lstm"
    task_skus: int = 5000

    def __post_init__(self) -> None:
        _require(
            self.solver in ("greedy", "milp"), "policy.solver", "must be 'greedy' or 'milp'", self.solver
        )
        _require(
            self.milp_time_limit_s > 0, "policy.milp_time_limit_s", "must be > 0", self.milp_time_limit_s
        )
        _require(0.0 <= self.milp_gap < 1.0, "policy.milp_gap", "must be in [0, 1)", self.milp_gap)
        _require(self.milp_segments >= 2, "policy.milp_segments", "must be >= 2", self.milp_segments)
        _require(
            self.service_level is None or 0.0 < self.service_level < 1.0,
            "policy.service_level",
            "must be inside (0, 1) or null",
            self.service_level,
        )
        days = self.carryover_days
        _require(days is None or days > 0, "policy.carryover_days", "must be > 0 or null", days)
        ended = self.ended_after_days
        _require(ended is None or ended > 0, "policy.ended_after_days", "must be > 0 or null", ended)
        _require(
            self.overage in ("carryover", "salvage"),
            "policy.overage",
            "must be 'carryover' or 'salvage'",
            self.overage,
        )
        _require(
            self.goodwill is None or self.goodwill >= 0,
            "policy.goodwill",
            "must be >= 0 or null",
            self.goodwill,
        )
        _require(
            self.holding_cost_rate is None or self.holding_cost_rate >= 0,
            "policy.holding_cost_rate",
            "must be >= 0 or null",
            self.holding_cost_rate,
        )
        _require(
            0.0 < self.baseline_service_level < 1.0,
            "policy.baseline_service_level",
            "must be inside (0, 1)",
            self.baseline_service_level,
        )
        _require(
            self.forecaster in ("lstm", "seasonal_naive", "seasonal_ma"),
            "policy.forecaster",
            "must be 'lstm', 'seasonal_naive' or 'seasonal_ma'",
            self.forecaster,
        )
        _require(self.task_skus > 0, "policy.task_skus", "must be > 0", self.task_skus)


@dataclass
class BacktestConfig:
    """Rolling-origin evaluation: how many cutoffs, how far apart, which policies."""

    cutoffs: int = 3
    step: int = 28
    end: str | None = None
    models: list[str] = field(default_factory=lambda: ["lstm", "seasonal_naive", "seasonal_ma"])
    policies: list[str] = field(default_factory=lambda: ["newsvendor"])
    reforecast_every: int | None = None

    def __post_init__(self) -> None:
        _require(self.cutoffs > 0, "backtest.cutoffs", "must be > 0", self.cutoffs)
        every = self.reforecast_every
        _require(every is None or every > 0, "backtest.reforecast_every", "must be null or > 0", every)
        _require(self.step > 0, "backtest.step", "must be > 0", self.step)
        _check_date("backtest.end", self.end)
        known = ("lstm", "seasonal_naive", "seasonal_ma")
        for m in self.models:
            _require(m in known, "backtest.models", f"must hold models among {list(known)}", m)


@dataclass
class ValidateConfig:
    """Input checks: ``mode=fail`` stops at the first broken rule, ``quarantine`` sets rows aside."""

    mode: str = "fail"
    fill_gaps: bool = False
    max_keys_shown: int = 5

    def __post_init__(self) -> None:
        _require(
            self.mode in ("fail", "quarantine"), "validate.mode", "must be 'fail' or 'quarantine'", self.mode
        )


@dataclass
class StorageConfig:
    """Object storage (for ``s3://`` URIs); empty values fall back to ``AWS_*`` variables."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str | None = None


@dataclass
class PathsConfig:
    """Default locations, resolved to absolute paths once by the CLI."""

    data_dir: str = "datasets"
    output_dir: str = "outputs"
    shared_data_dir: str = "../shared/data"


@dataclass
class RunConfig:
    """One run: where outputs go and the forecast origin (``cutoff``; null = last sales date)."""

    dir: str = "outputs/run"
    cutoff: str | None = None

    def __post_init__(self) -> None:
        _check_date("run.cutoff", self.cutoff)


@dataclass
class Config:
    """The whole configuration of one ``inventory-scale`` invocation."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    text: TextConfig = field(default_factory=TextConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    run: RunConfig = field(default_factory=RunConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)

    def __post_init__(self) -> None:
        _require(self.seed >= 0, "seed", "must be >= 0", self.seed)
        _require(
            self.forecast.num_paths >= self.model.ensemble,
            "forecast.num_paths",
            f"must be >= model.ensemble ({self.model.ensemble}): every member draws paths",
            self.forecast.num_paths,
        )
