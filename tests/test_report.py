"""The run report: every section with a real chart and the numbers of the run's outputs; an empty
run says what it lacks; the HTML renders in headless Chromium with no console output."""

from __future__ import annotations

import base64
import datetime as dt
import io as pyio
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import polars as pl
import pytest
from conftest import TINY

from inventory_scale import schema as S
from inventory_scale.cli import load_config, main
from inventory_scale.data import io
from inventory_scale.evaluation.report import SECTION_KEYS

# Sales from 2023-09-01 (150 days) so that 11.11, Black Friday and Christmas have a baseline; the
# forecast origin is 2023-12-20, so the 7-day forecast covers Christmas and has actuals after it.
START, CUTOFF = "2023-09-01", dt.date(2023, 12, 20)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    base = tmp_path_factory.mktemp("report")
    args = [*TINY, f"data.start_date={START}", f"data.root={base / 'data'}", f"run.dir={base / 'run'}"]
    assert main(["generate", *args]) == 0
    args += [f"run.cutoff={CUTOFF}", "ray=inprocess", "backtest.cutoffs=1"]
    args += ["backtest.policies=[newsvendor,seasonal_naive_ss]"]
    for stage in ("train", "forecast", "optimize", "backtest", "monitor", "report"):  # not validate:
        assert main([stage, *args]) == 0  # it refuses sales after run.cutoff
    return args, base / "run" / "report"


def _sections(page: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([a-z]+)">(.*?)</section>', page, flags=re.S))


def _png(b64: str) -> np.ndarray:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(mpimg.imread(pyio.BytesIO(raw), format="png"))


def _not_blank(img: np.ndarray) -> bool:
    gray = img[..., :3].mean(axis=-1)
    return bool(gray.std() > 0.05 and (gray < 0.9).mean() > 0.01)


def _md_table(md: str, caption: str) -> list[list[str]]:
    """Rows of the Markdown table under ``**caption**`` (header first)."""
    block = md.split(f"**{caption}**", 1)[1].strip().split("\n\n", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in lines]


def test_every_section_has_a_chart_and_no_missing_input(run: tuple[list[str], Path]) -> None:
    _, out = run
    page = (out / "report.html").read_text()
    sections = _sections(page)
    assert list(sections) == list(SECTION_KEYS)
    for key, body in sections.items():
        assert 'class="missing"' not in body, (key, re.findall(r'class="missing">(.*?)</p>', body))
        images = re.findall(r'src="data:image/png;base64,([^"]+)"', body)
        assert images, key
        for b64 in images:
            img = _png(b64)
            assert img.shape[0] > 100 and img.shape[1] > 300 and _not_blank(img), key
    assert "<script" not in page and "http://" not in page and "https://" not in page  # self-contained
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["sections"].values()) == {"ok"}


def test_markdown_numbers_match_the_run_outputs(run: tuple[list[str], Path]) -> None:
    args, out = run
    cfg = load_config(args)
    md = (out / "report.md").read_text()
    for title in (
        "Run overview",
        "Forecast vs actual",
        "Accuracy",
        "Calibration",
        "Seasonal events",
        "Policy",
        "plans",
    ):
        assert title in md
    # accuracy: ours, both baselines and the oracle, MASE = mean over cutoffs of backtest/metrics
    acc = _md_table(md, "All series, mean over 1 cutoff(s)")
    models = {r[0]: r for r in acc[1:]}
    assert set(models) == {"lstm", "seasonal_naive", "seasonal_ma", "oracle"}
    metrics = io.read_table(io.join(cfg.run.dir, "backtest"), S.BACKTEST_METRICS)
    mase = metrics.filter(
        (pl.col(S.MODEL) == "lstm") & (pl.col(S.GROUP) == "all") & (pl.col(S.METRIC) == "mase")
    )
    assert float(models["lstm"][acc[0].index("mase")]) == pytest.approx(mase[S.VALUE].mean(), rel=0.01)
    # calibration: randomized-PIT coverage of ours = backtest/metrics, beside the closed intervals
    pit = _md_table(md, "Randomized-PIT coverage (counts: interval end-points not counted as covered)")
    pit_rows = {r[0]: r for r in pit[1:]}
    want = metrics.filter(
        (pl.col(S.MODEL) == "lstm") & (pl.col(S.GROUP) == "all") & (pl.col(S.METRIC) == S.PIT_COVERAGE_90)
    )[S.VALUE].mean()
    assert float(pit_rows["lstm"][2].rstrip("%")) / 100 == pytest.approx(want, abs=0.0006)
    # policy: profit per policy = the total rows of backtest/policy.parquet
    pol = _md_table(md, "Per policy (mean over cutoffs)")
    kpis = pl.read_parquet(Path(cfg.run.dir) / "backtest" / "policy.parquet")
    for row in pol[1:]:
        want = kpis.filter(
            (pl.col(S.POLICY) == row[0]) & (pl.col(S.WAREHOUSE_ID) == "all") & (pl.col(S.KPI) == S.PROFIT)
        )[S.VALUE].mean()
        assert float(row[1].replace(",", "")) == pytest.approx(want, rel=1e-3, abs=1.0)
    assert [r[0] for r in pol[1:]] == ["newsvendor", "seasonal_naive_ss"]
    # plans: spend per warehouse = sum of order_qty x unit_cost
    wh = _md_table(md, "Per warehouse")
    plans = io.read_table(cfg.run.dir, S.PLANS).join(io.read_table(cfg.data.root, S.PRODUCTS), on=S.SKU_ID)
    spend = dict(plans.group_by(S.WAREHOUSE_ID).agg((pl.col(S.ORDER_QTY) * pl.col(S.UNIT_COST)).sum()).rows())
    for row in wh[1:]:
        assert float(row[wh[0].index("spend")].replace(",", "")) == pytest.approx(spend[row[0]], rel=1e-3)
        assert row[wh[0].index("orders")] == str(
            int(plans.filter(pl.col(S.WAREHOUSE_ID) == row[0])[S.ORDER_QTY].gt(0).sum())
        )
    # forecast vs actual: 7 days of actuals after the cutoff for every series shown
    shown = _md_table(md, "Series shown")
    assert len(shown) == 1 + 2 + 2  # 2 top sellers + 2 worst
    assert all(r[shown[0].index("days of actuals after cutoff")] == "7" for r in shown[1:])
    assert all(r[-1].endswith("%") for r in shown[1:])
    # events: Christmas falls inside the forecast window, so it has a forecast lift
    ev = _md_table(md, "Lift on the event day (x baseline) and the peak up to the days after")
    xmas = [r for r in ev[1:] if r[0] == "Christmas"]
    assert xmas and any(r[-1] != "-" and float(r[-1]) > 0 for r in xmas)
    assert {r[0] for r in ev[1:]} >= {"Black Friday", "Christmas"}
    # exceptions: the rows of monitor/exceptions, most severe first
    exc = io.read_table(io.join(cfg.run.dir, "monitor"), S.EXCEPTIONS)
    shown = _md_table(md, f"Most severe (first {min(exc.height, 15)} of {exc.height})")
    assert [r[0] for r in shown[1:]] == exc[S.SEVERITY].head(15).to_list()
    assert [r[2] for r in shown[1:]] == [
        f"{a}/{b}" for a, b in exc.select(S.SKU_ID, S.WAREHOUSE_ID).head(15).rows()
    ]


def test_empty_run_says_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", f"run.dir={tmp_path / 'empty'}", f"data.root={tmp_path / 'nodata'}"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 0 and list(summary["sections"]) == list(SECTION_KEYS)
    assert all(v.startswith("missing: ") for v in summary["sections"].values())
    page = Path(summary["html"]).read_text()
    assert page.count('class="missing"') >= len(SECTION_KEYS)
    assert "run `inventory-scale backtest" in Path(summary["markdown"]).read_text()


def _chromium(url: str, tmp_path: Path, name: str) -> tuple[np.ndarray, list[str]]:
    """Screenshot of ``url`` and the console lines Chromium logged while loading it."""
    shot = tmp_path / f"{name}.png"
    proc = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / ('profile-' + name)}",
         f"--screenshot={shot}", "--window-size=1200,2000", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shot.is_file(), proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return np.asarray(mpimg.imread(shot)), console


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)"
)
def test_report_renders_in_headless_chromium(run: tuple[list[str], Path], tmp_path: Path) -> None:
    _, out = run
    bad = tmp_path / "bad.html"  # positive control: console output is caught
    bad.write_text('<html><body><p>x</p><script>console.error("boom"); nope();</script></body></html>')
    _, console = _chromium(bad.as_uri(), tmp_path, "bad")
    assert any("boom" in ln for ln in console) and any("nope" in ln for ln in console)

    img, console = _chromium((out / "report.html").as_uri(), tmp_path, "report")
    assert console == []
    assert img.shape[:2] == (2000, 1200) and _not_blank(img)
    header = img[10:60, 10:600, :3].mean(axis=(0, 1))  # the dark blue header band rendered
    assert header[2] > header[0] + 0.1
