"""Sweep outputs: the results table, the best config as a Hydra overlay, the run summary.

Under ``<run.dir>/sweeps/<sweep.name>/``:

- ``results.parquet``: one row per trial, sorted by the metric (complete trials first):
  ``trial_id, status, <metric>, last_<metric>, budget, reports, seconds, error`` and one column
  per searched key (``model.hidden_size`` ...). ``<metric>`` is the final score and is set only
  for trials that completed every unit; ``last_<metric>`` is the last report (the running score
  where ASHA stopped a trial early).
- ``experiment/<name>_best.yaml``: a ``# @package _global_`` overlay with the best trial's values
  and the sweep's fixed ``sweep.overrides``; run it with
  ``inventory-scale pipeline hydra.searchpath=[file://<run.dir>/sweeps/<name>] +experiment=<name>_best``.
- ``sweep.json``: the spec hash a resumed sweep must match, the best trial and that command.
"""

from __future__ import annotations

import io as _bytes_io
import json
import logging
from collections.abc import Callable
from typing import Any

import polars as pl
import yaml

from inventory_scale.data import io
from inventory_scale.errors import ConfigError, InventoryScaleError, format_keys

log = logging.getLogger(__name__)

RESULTS = "results.parquet"
STATE = "sweep.json"


def sweep_dir(run_dir: str, name: str) -> str:
    """Folder of one sweep's outputs and Tune state."""
    return io.join(run_dir, "sweeps", name)


def overlay_name(name: str) -> str:
    """Experiment name of a sweep's best config (``<name>_best``)."""
    return f"{name}_best"


def results_table(rows: list[dict[str, Any]], keys: list[str], metric: str) -> pl.DataFrame:
    """Trial rows -> the results frame, sorted by the final metric then the last report."""
    points: dict[str, list[Any]] = {k: [r["point"].get(k) for r in rows] for k in keys}
    for k, values in points.items():  # a choice of mixed types (500, 2000, "all") -> strings
        types = {type(v) for v in values if v is not None}
        if len(types) > 1 and not types <= {int, float}:
            points[k] = [None if v is None else str(v) for v in values]
    flat = [
        {**{k: v for k, v in r.items() if k != "point"}, **{k: points[k][i] for k in keys}}
        for i, r in enumerate(rows)
    ]
    schema: dict[str, Any] = {
        "trial_id": pl.String,
        "status": pl.String,
        metric: pl.Float64,
        f"last_{metric}": pl.Float64,
        "budget": pl.Int64,
        "reports": pl.Int64,
        "seconds": pl.Float64,
        "error": pl.String,
    }
    frame = (
        pl.DataFrame(flat, schema_overrides=schema, infer_schema_length=None)
        if flat
        else pl.DataFrame(schema=schema)
    )
    for k in [*schema, *keys]:
        if k not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=schema.get(k, pl.Null)).alias(k))
    return frame.select(*schema, *keys).sort([metric, f"last_{metric}"], nulls_last=True)


def best_trial(table: pl.DataFrame, metric: str) -> dict[str, Any]:
    """The complete trial with the lowest metric.

    Raises:
        InventoryScaleError: no trial completed (every one failed, was stopped or never ran).
    """
    done = table.filter(pl.col(metric).is_not_null())
    if done.is_empty():
        counts = dict(table.group_by("status").len().iter_rows()) if table.height else {}
        errors = table.filter(pl.col("error").is_not_null())["error"].head(3).to_list()
        raise InventoryScaleError(f"no sweep trial completed (trials by status: {counts}); errors: {errors}")
    return done.sort(metric).row(0, named=True)


def _nest(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        node = out
        *groups, name = key.split(".")
        for g in groups:
            node = node.setdefault(g, {})
        node[name] = value
    return out


def overlay_text(name: str, best: dict[str, Any], keys: list[str], fixed: dict[str, Any], metric: str) -> str:
    """The ``# @package _global_`` overlay of the best trial (searched keys + fixed overrides)."""
    searched = {k: best[k] for k in keys}
    header = [
        "# @package _global_",
        f"# Best trial of sweep '{name}' (trial {best['trial_id']}: {metric} {best[metric]:.5f}),",
        "# written by `inventory-scale sweep`. Searched keys, then the sweep's fixed trial settings",
        "# (sweep.overrides): drop or edit those for a full-budget run.",
    ]
    body = yaml.safe_dump(_nest({**fixed, **searched}), sort_keys=True, default_flow_style=False)
    notes = [f"# searched: {', '.join(f'{k}={best[k]!r}' for k in keys)}"]
    if fixed:
        notes.append(f"# fixed (sweep.overrides): {', '.join(f'{k}={v!r}' for k, v in fixed.items())}")
    return "\n".join([*header, *notes, body])


def write_outputs(
    run_dir: str,
    name: str,
    table: pl.DataFrame,
    keys: list[str],
    fixed: dict[str, Any],
    metric: str,
    opts: io.StorageOptions | None,
) -> dict[str, Any]:
    """Write the results table and the best overlay; return the summary fields."""
    out = sweep_dir(run_dir, name)
    buf = _bytes_io.BytesIO()
    table.write_parquet(buf)
    io.write_bytes(io.join(out, RESULTS), buf.getvalue(), opts)
    best = best_trial(table, metric)
    exp = overlay_name(name)
    overlay = io.join(out, "experiment", f"{exp}.yaml")
    io.write_bytes(overlay, overlay_text(name, best, keys, fixed, metric).encode(), opts)
    search = out if io.is_remote(out) else f"file://{out}"
    command = f"inventory-scale pipeline 'hydra.searchpath=[{search}]' +experiment={exp}"
    with pl.Config(tbl_rows=30, tbl_cols=12, tbl_width_chars=160, fmt_str_lengths=24):
        log.info("sweep %s: %d trial(s), best first:\n%s", name, table.height, table.drop("error"))
    log.info(
        "sweep %s: best trial %s, %s %.5f; overlay %s; run it with:\n  %s",
        name,
        best["trial_id"],
        metric,
        best[metric],
        overlay,
        command,
    )
    counts = {s: int(n) for s, n in table.group_by("status").len().iter_rows()}
    return {
        "results": io.join(out, RESULTS),
        "overlay": overlay,
        "command": command,
        "best": {"trial_id": best["trial_id"], metric: best[metric], **{k: best[k] for k in keys}},
        "trials": table.height,
        "trials_by_status": counts,
    }


def default_score(
    point: dict[str, Any] | None,
    table: pl.DataFrame,
    metric: str,
    stored: dict[str, Any] | None,
    rescore: Callable[[dict[str, Any]], float],
) -> dict[str, Any]:
    """The base config's full score (the "before"): its trial's when complete, else ``rescore``.

    ASHA may stop the default trial early; it is then trained and scored once more, in this
    process, to the full budget (remembered in ``sweep.json``, so a rerun does not redo it).

    Args:
        point: the base config's values of the searched keys (None: outside the space).
        table: the results table.
        metric: the sweep metric.
        stored: the ``default`` entry of an earlier ``sweep.json``.
        rescore: ``point -> metric`` by a full trial run.

    Returns:
        ``{"default": {metric, source, point}, "improvement": (default - best) / default}`` or {}.
    """
    if point is None:
        log.info("sweep: the base config lies outside the space; no default score")
        return {}
    if stored and stored.get("point") == point and stored.get(metric) is not None:
        score, source = float(stored[metric]), str(stored.get("source", "stored"))
    else:
        match = table.filter(pl.col("status") == "complete")
        for key, value in point.items():
            col = pl.col(key)
            match = match.filter((col - value).abs() < 1e-12 if isinstance(value, float) else col == value)
        if match.height:
            score, source = float(match[metric][0]), f"trial {match['trial_id'][0]}"
        else:
            log.info("sweep: ASHA stopped the default config's trial; scoring it to the full budget")
            score, source = rescore(point), "full run after the sweep"
    best = float(table[metric].min())  # type: ignore[arg-type]
    gain = (score - best) / score if score else 0.0
    log.info(
        "sweep: default config %s %.5f (%s); best %.5f: %.1f%% lower", metric, score, source, best, 100 * gain
    )
    return {"default": {metric: score, "source": source, "point": point}, "improvement": round(gain, 5)}


def flatten_spec(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"base": {"model": {"dropout": 0.1}}}`` -> ``{"base.model.dropout": 0.1}`` (JSON values)."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if isinstance(value, dict) and value:
            out.update(flatten_spec(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.loads(json.dumps(value, default=str))
    return out


def check_stored_spec(
    stored: dict[str, Any], spec_hash: str, spec: dict[str, Any], out: str, name: str
) -> None:
    """Refuse to resume a sweep folder made with another spec; name the keys that differ.

    Raises:
        ConfigError: the stored spec hash differs from ``spec_hash``.
    """
    if stored.get("spec_hash") == spec_hash:
        return
    old = stored.get("spec") or {}
    changed = sorted(k for k in old.keys() | spec.keys() if old.get(k) != spec.get(k))
    raise ConfigError(
        f"config key 'sweep.name': {out} holds sweep '{name}' made with a different space, "
        f"overrides, sample or config (differs in: {format_keys(changed) or 'unknown'}); "
        "use another sweep.name or run.dir, or sweep.resume=false to start over"
    )
