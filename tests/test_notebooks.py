"""The notebooks are stored without outputs and run top to bottom (nbclient) on tiny settings.

Each notebook's ``parameters`` cell is replaced by tiny settings and a temporary ``WORK`` folder;
the test then checks what the run wrote and what the notebook displayed.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import TINY

from inventory_scale import schema as S
from inventory_scale.data import io

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
NAMES = ("01_quickstart", "02_m5_walkthrough", "03_replenishment")


def _run(name: str, params: str, tmp_path: Path) -> tuple[object, Path]:
    """Execute notebook ``name`` with its parameters cell replaced by ``params``; returns it and WORK."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    work = tmp_path / "work"
    cell.source = f"WORK = {str(work)!r}\n{params}"
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    return nb, work


def _outputs(nb: object, mime: str) -> list[str]:
    return [
        o["data"][mime]
        for c in nb.cells  # type: ignore[attr-defined]
        if c.cell_type == "code"
        for o in c.outputs
        if o.get("output_type") in ("display_data", "execute_result") and mime in o.get("data", {})
    ]


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_stored_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "WORK =" in params[0].source and "OVERRIDES =" in params[0].source
    body = "\n".join(c.source for c in code if c is not params[0])
    assert "def " not in body and "class " not in body  # no logic of their own: the package does it


def test_quickstart_runs_end_to_end_on_local_ray(tmp_path: Path) -> None:
    overrides = [
        *TINY,
        "backtest.cutoffs=1",
        "data.start_date=2023-09-01",  # 11.11, Black Friday and Christmas inside the history
        "backtest.policies=[seasonal_naive_ss,moving_average_ss]",  # no LSTM refit: 03 does that
        "ray.num_cpus=2",
    ]
    nb, work = _run("01_quickstart", f"OVERRIDES = {overrides!r}", tmp_path)
    run = work / "run"
    assert io.read_table(str(run), S.PLANS).height == 24
    page = (run / "report" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 7
    html = _outputs(nb, "text/html")
    assert sum('<section id="' in h for h in html) == 4  # overview, forecasts, accuracy, policy displayed
    assert all('class="missing"' not in h for h in html)
    manifest = json.loads((run / "forecasts" / "manifest.json").read_text())
    assert manifest["config"]["ray"]["mode"] == "local"


@pytest.mark.data
@pytest.mark.skipif(not (SHARED_DATA / "m5").is_dir(), reason=f"M5 data absent ({SHARED_DATA / 'm5'})")
def test_m5_walkthrough_on_twenty_series(tmp_path: Path) -> None:
    overrides = [o for o in TINY if not o.startswith("data.n_") and o != "data.days=150"]
    overrides += ["data.max_series=20", "backtest.cutoffs=1"]
    params = f"SHARED_DATA = {str(SHARED_DATA)!r}\nOVERRIDES = {overrides!r}"
    nb, work = _run("02_m5_walkthrough", params, tmp_path)
    metrics = io.read_table(io.join(str(work / "run"), "backtest"), S.BACKTEST_METRICS)
    assert set(metrics[S.MODEL].unique().to_list()) == {"lstm", "seasonal_naive", "seasonal_ma"}
    overall = metrics.filter((pl.col(S.GROUP) == "all") & (pl.col(S.METRIC) == "n_series"))
    assert overall[S.VALUE].to_list() == [20.0] * 3
    html = _outputs(nb, "text/html")
    assert sum("data:image/png;base64," in h for h in html) >= 3  # accuracy, calibration, forecasts


def test_replenishment_plans_and_policy_ab(tmp_path: Path) -> None:
    overrides = [*TINY, "backtest.cutoffs=1", "backtest.models=[seasonal_naive]"]
    overrides += ["backtest.policies=[newsvendor,seasonal_naive_ss,oracle]"]
    nb, work = _run("03_replenishment", f"OVERRIDES = {overrides!r}", tmp_path)
    kpis = pl.read_parquet(work / "run" / "backtest" / "policy.parquet")
    assert kpis[S.POLICY].unique().sort().to_list() == ["newsvendor", "oracle", "seasonal_naive_ss"]
    assert io.read_table(str(work / "run"), S.PATHS).height > 0  # the optimizer planned on kept paths
    html = "\n".join(_outputs(nb, "text/html"))
    assert '<section id="plans">' in html and '<section id="policy">' in html
    assert "seasonal_naive_ss" in html and "Largest orders" in html
