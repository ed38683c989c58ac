"""``inventory-scale <stage> [hydra overrides]``: the command line, and the only Hydra importer.

Composes ``conf/`` (Hydra compose API) onto the dataclasses of :mod:`inventory_scale.config`,
turns the result into a plain typed :class:`~inventory_scale.config.Config` (unknown keys, wrong
types and bad values fail here, naming the key), resolves local paths to absolute ones once, and
hands the config to :mod:`inventory_scale.pipeline`.

Examples::

    inventory-scale --help
    inventory-scale generate data.root=/tmp/mk data.n_skus=500 seed=7
    inventory-scale validate data.root=/tmp/mk run.dir=/tmp/run
    inventory-scale generate data=m5 data.root=/tmp/m5
    inventory-scale pipeline +experiment=smoke
    inventory-scale train --help          # the config that stage reads
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from inventory_scale import pipeline
from inventory_scale.config import Config
from inventory_scale.data.io import is_remote
from inventory_scale.errors import ConfigError, InventoryScaleError, StageNotBuiltError
from inventory_scale.manifest import redact

log = logging.getLogger("inventory_scale")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_BUILT = 3


def conf_dir() -> Path:
    """The Hydra config folder: ``$INVENTORY_SCALE_CONF`` or ``conf/`` beside the package."""
    env = os.environ.get("INVENTORY_SCALE_CONF")
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "conf"
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in {path}: set INVENTORY_SCALE_CONF to the project's conf/ folder")
    return path


def _register() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)


def _config_error(e: Exception) -> ConfigError:
    """Turn a Hydra/OmegaConf failure into one line that names the key."""
    cause: BaseException = e
    while cause.__cause__ is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    if isinstance(cause, ConfigError):
        return cause
    key = getattr(cause, "full_key", None)
    msg = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
    return ConfigError(f"config key '{key}': {msg}" if key else f"invalid configuration: {msg}")


# Groups with a ``null`` default: ``+group=x`` and ``group=x`` both select an option.
_OPTIONAL_GROUPS = ("experiment", "debug")


def _normalise(overrides: Sequence[str]) -> list[str]:
    return [o[1:] if o.startswith(tuple(f"+{g}=" for g in _OPTIONAL_GROUPS)) else o for o in overrides]


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/config.yaml`` with ``overrides``; errors name the key."""
    _register()
    overrides = _normalise(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(
            config_dir=str(conf_dir()), version_base="1.3", job_name="inventory_scale"
        ):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        raise _config_error(e) from e


def _absolute(path: str) -> str:
    return path if is_remote(path) else str(Path(path).expanduser().absolute())


def load_config(overrides: Sequence[str] = ()) -> Config:
    """Compose, validate and resolve: the typed config a stage receives.

    Raises:
        ConfigError: unknown key, wrong type or bad value; the message names the key.
    """
    dcfg = compose_config(overrides)
    missing = sorted(OmegaConf.missing_keys(dcfg))
    if missing:
        raise ConfigError(f"config key '{missing[0]}' must be set (missing: {', '.join(missing)})")
    try:
        cfg = OmegaConf.to_object(dcfg)
    except ConfigError:
        raise
    except OmegaConfBaseException as e:
        if isinstance(e.__cause__, ConfigError):
            raise e.__cause__ from None
        raise _config_error(e) from e
    if not isinstance(cfg, Config):  # pragma: no cover - the schema guarantees it
        raise ConfigError("conf/config.yaml does not compose onto inventory_scale.config.Config")
    cfg.data.root = _absolute(cfg.data.root)
    cfg.data.source_dir = _absolute(cfg.data.source_dir)
    cfg.run.dir = _absolute(cfg.run.dir)
    cfg.paths.data_dir = _absolute(cfg.paths.data_dir)
    cfg.paths.output_dir = _absolute(cfg.paths.output_dir)
    cfg.paths.shared_data_dir = _absolute(cfg.paths.shared_data_dir)
    return cfg


def _groups() -> dict[str, list[str]]:
    root = conf_dir()
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith((".", "_"))
    }


def _print_main_help() -> None:
    lines = ["usage: inventory-scale <stage> [hydra overrides] [--help]", "", "stages:"]
    for s in pipeline.STAGES.values():
        state = "" if s.built else f"  [not built yet: issue #{s.issue}]"
        lines.append(f"  {s.name:<10} {s.help}{state}")
    lines += ["", "config groups (choose with group=option, e.g. data=m5 trainer=gpu):"]
    for group, options in _groups().items():
        lines.append(f"  {group:<11} {', '.join(options)}")
    lines += [
        "",
        "every stage takes data.root=<URI> (input dataset) and run.dir=<URI> (outputs): a local",
        "path or s3://bucket/prefix (endpoint and credentials: storage.* or AWS_* variables).",
        "examples:",
        "  inventory-scale generate data.root=/tmp/mk data.n_skus=1000 data.n_warehouses=4 seed=1",
        "  inventory-scale validate data.root=/tmp/mk run.dir=/tmp/run validate.mode=quarantine",
        "  inventory-scale pipeline +experiment=smoke",
    ]
    print("\n".join(lines))


def _print_stage_help(stage: pipeline.Stage, overrides: Sequence[str]) -> None:
    dcfg = compose_config(overrides)
    selected: dict[str, Any] = {"seed": dcfg.seed}
    for group in stage.groups:
        selected[group] = redact(OmegaConf.to_container(dcfg[group], resolve=False))
    state = "" if stage.built else f"\n(not built yet: lands with issue #{stage.issue})"
    print(f"inventory-scale {stage.name}: {stage.help}{state}\n\nconfig it reads:\n")
    print(OmegaConf.to_yaml(OmegaConf.create(selected)).rstrip())


def _setup_logging() -> None:
    level = os.environ.get("INVENTORY_SCALE_LOG", "INFO").upper()
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _print_summary(summary: dict[str, Any]) -> None:
    from rich.console import Console

    Console(stderr=False, soft_wrap=True).print_json(json.dumps(summary, default=str))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:6])
        return shown + (f", ... ({len(value)})" if len(value) > 6 else "")
    return str(value)


def _summary_tables(summary: dict[str, Any]) -> list[Any]:
    """Rich tables of one stage summary: its scalars (nested dicts flattened one level), and one
    table per list of records (e.g. the backtest's per-model metrics)."""
    from rich.table import Table

    stage = str(summary.get("stage", "stage"))
    main_table = Table("key", "value", title=f"{stage} summary", title_justify="left")
    extra: list[Any] = []
    for key, value in summary.items():
        if key == "stage":
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                if not isinstance(v, dict | list):
                    main_table.add_row(f"{key}.{sub}", _cell(v))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            if len(value) > 50 or key == "shards":
                main_table.add_row(key, f"{len(value)} records")
                continue
            cols = list(dict.fromkeys(k for v in value for k in v if not isinstance(v[k], dict | list)))
            table = Table(*cols, title=f"{stage}: {key}", title_justify="left")
            for v in value:
                table.add_row(*(_cell(v.get(c, "")) for c in cols))
            extra.append(table)
        else:
            main_table.add_row(key, _cell(value))
    return [main_table, *extra]


def _print_summary_tables(summary: dict[str, Any]) -> None:
    """The final summary table(s) of the stage (of every stage for ``pipeline``), on stderr."""
    from rich.console import Console

    console = Console(stderr=True)
    for part in summary.get("stages", [summary]) if summary.get("stage") == "pipeline" else [summary]:
        for table in _summary_tables(part):
            console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``inventory-scale`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        _print_main_help()
        return 0 if args else EXIT_USAGE
    name, overrides = args[0], [a for a in args[1:] if a not in ("-h", "--help")]
    stage = pipeline.STAGES.get(name)
    try:
        if stage is None:
            raise ConfigError(f"unknown stage {name!r}; stages: {', '.join(pipeline.STAGES)}")
        if len(overrides) != len(args) - 1:
            _print_stage_help(stage, overrides)
            return 0
        _setup_logging()
        cfg = load_config(overrides)
        summary = pipeline.run_stage(name, cfg)
    except StageNotBuiltError as e:
        print(f"inventory-scale {name}: {e}", file=sys.stderr)
        return EXIT_NOT_BUILT
    except ConfigError as e:
        print(f"inventory-scale {name}: configuration error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except InventoryScaleError as e:
        print(f"inventory-scale {name}: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_ERROR
    _print_summary_tables(summary)
    _print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
