"""The run report: one self-contained HTML file (charts embedded) and a Markdown summary.

``inventory-scale report run.dir=DIR`` reads whatever DIR holds (see ``report_inputs.py``), builds
the sections of ``report_sections.py``, ``report_events.py`` and ``report_inventory.py`` and
writes::

    <report.dir or run.dir/report>/report.html   every section, PNG charts base64-embedded, no JS
    <report.dir or run.dir/report>/report.md     the same numbers as Markdown tables, for terminals
    <report.dir or run.dir/report>/manifest.json

A section whose input is absent says so in a highlighted note instead of failing the report.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from inventory_scale.config import Config
from inventory_scale.data import io
from inventory_scale.evaluation import report_events, report_inventory, report_sections
from inventory_scale.evaluation.report_inputs import RunInputs
from inventory_scale.evaluation.report_sections import Section, Table
from inventory_scale.manifest import build_manifest, write_manifest

log = logging.getLogger(__name__)

HTML_NAME = "report.html"
MARKDOWN_NAME = "report.md"
Builder = Callable[[RunInputs, Any], Section]
BUILDERS: tuple[Builder, ...] = (
    report_sections.overview,
    report_sections.forecasts,
    report_sections.accuracy,
    report_sections.calibration,
    report_events.events,
    report_inventory.policy,
    report_inventory.plans,
    report_inventory.exceptions,
)
"""Section builders in report order."""
SECTION_KEYS: tuple[str, ...] = (
    "overview",
    "forecasts",
    "accuracy",
    "calibration",
    "events",
    "policy",
    "plans",
    "exceptions",
)

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #222;
       margin: 0; background: #f4f5f7; }
header { background: #1f3b63; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .85; }
nav { padding: 10px 32px; background: #fff; border-bottom: 1px solid #dde; }
nav a { margin-right: 16px; color: #1f5fbf; text-decoration: none; }
main { padding: 16px 32px 40px; max-width: 1280px; }
section { background: #fff; border: 1px solid #e1e3e8; border-radius: 6px; padding: 14px 20px;
          margin: 16px 0; }
h2 { font-size: 18px; margin: 4px 0 10px; color: #1f3b63; }
figure { margin: 10px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #666; font-size: 12px; }
table { border-collapse: collapse; margin: 10px 0; font-size: 12.5px; }
caption { text-align: left; font-weight: 600; padding: 4px 0; color: #444; }
th, td { border-bottom: 1px solid #e6e6e6; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f2f6; } th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
.missing { background: #fff6dd; border-left: 4px solid #e0a800; padding: 6px 10px; margin: 8px 0; }
code { background: #f0f2f6; padding: 0 3px; border-radius: 3px; }
header code { background: rgba(255, 255, 255, .15); color: #fff; }
"""


def build_sections(inp: RunInputs, cfg: Config) -> list[Section]:
    """Every section in order; a builder that fails on bad data becomes a section naming the error."""
    out: list[Section] = []
    for key, build in zip(SECTION_KEYS, BUILDERS, strict=True):
        t0 = time.perf_counter()
        try:
            sec = build(inp, cfg.report)
        except Exception as e:  # a broken input must not sink the whole report
            log.warning("report: section %s failed: %s: %s", key, type(e).__name__, e)
            sec = Section(key, key.capitalize(), missing=[f"This section failed: {type(e).__name__}: {e}"])
        log.info("report: section %s in %.2fs", key, time.perf_counter() - t0)
        out.append(sec)
    return out


def _inline(text: str) -> str:
    """Escape ``text`` for HTML and turn `code` spans into <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?$|^-$")


def _html_table(t: Table) -> str:
    """A table whose all-numeric columns are right-aligned (header included)."""
    num = [bool(t.rows) and all(_NUMBER.match(str(r[i])) for r in t.rows) for i in range(len(t.header))]
    cls = [' class="num"' if n else "" for n in num]
    head = "".join(f"<th{c}>{html.escape(h)}</th>" for h, c in zip(t.header, cls, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td{c}>{html.escape(str(x))}</td>" for x, c in zip(r, cls, strict=True)) + "</tr>"
        for r in t.rows
    )
    return f"<table><caption>{html.escape(t.caption)}</caption><tr>{head}</tr>{body}</table>"


def section_html(s: Section) -> str:
    """One section as HTML (``<section id=key>``); notebooks display it with ``IPython.display.HTML``."""
    body = [f"<h2>{html.escape(s.title)}</h2>"]
    body += [f'<p class="missing">{_inline(m)}</p>' for m in s.missing]
    body += [f"<p>{_inline(t)}</p>" for t in s.text]
    for caption, png in s.images:
        data = base64.b64encode(png).decode("ascii")
        body.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    body += [_html_table(t) for t in s.tables]
    return f'<section id="{s.key}">{"".join(body)}</section>'


def build_section(key: str, cfg: Config, opts: io.StorageOptions | None = None) -> Section:
    """One section of the report of ``cfg.run.dir`` by key (see :data:`SECTION_KEYS`)."""
    inp = RunInputs(cfg.run.dir, cfg.data.root, opts)
    return dict(zip(SECTION_KEYS, BUILDERS, strict=True))[key](inp, cfg.report)


def render_html(sections: list[Section], title: str, subtitle: str) -> str:
    """The self-contained HTML page: inline CSS, base64 PNG images, no scripts."""
    nav = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    parts = [section_html(s) for s in sections]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{_inline(subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(parts)}</main></body></html>"
    )


def _md_cell(x: str) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_markdown(sections: list[Section], title: str, subtitle: str) -> str:
    """The Markdown summary: the same text and tables, charts referred to the HTML file."""
    lines = [f"# {title}", "", subtitle, ""]
    for s in sections:
        lines += [f"## {s.title}", ""]
        lines += [f"> **Input absent.** {m}" for m in s.missing] + ([""] if s.missing else [])
        lines += [line for t in s.text for line in (t, "")]
        lines += [f"_Chart: {c} (in {HTML_NAME}#{s.key})._" for c, _ in s.images] + ([""] if s.images else [])
        for t in s.tables:
            lines += [f"**{t.caption}**", "", "| " + " | ".join(_md_cell(h) for h in t.header) + " |"]
            lines.append("|" + "|".join("---" for _ in t.header) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in t.rows]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def run_report(cfg: Config, opts: io.StorageOptions | None = None) -> dict[str, Any]:
    """Build the report of ``run.dir``; write HTML, Markdown and a manifest; return a summary.

    Returns:
        ``stage``, ``html``, ``markdown`` (URIs), ``sections`` (key -> "ok" or "missing: ..."),
        ``images`` (count), ``seconds``.
    """
    t0 = time.perf_counter()
    inp = RunInputs(cfg.run.dir, cfg.data.root, opts)
    sections = build_sections(inp, cfg)
    out = cfg.report.dir or io.join(cfg.run.dir, "report")
    title = "inventory_scale run report"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"Run `{cfg.run.dir}`, cutoff {inp.cutoff() or 'unknown'}, generated {now}"
    io.write_bytes(io.join(out, HTML_NAME), render_html(sections, title, subtitle).encode(), opts)
    io.write_bytes(io.join(out, MARKDOWN_NAME), render_markdown(sections, title, subtitle).encode(), opts)
    seconds = round(time.perf_counter() - t0, 2)
    status = {s.key: "ok" if not s.missing else "missing: " + " ".join(s.missing) for s in sections}
    manifest = build_manifest("report", cfg, cfg.seed, [cfg.run.dir], opts, sections=status, seconds=seconds)
    write_manifest(out, manifest, opts)
    log.info("report: %s (%d sections) in %.1fs", io.join(out, HTML_NAME), len(sections), seconds)
    return {
        "stage": "report",
        "html": io.join(out, HTML_NAME),
        "markdown": io.join(out, MARKDOWN_NAME),
        "sections": status,
        "images": sum(len(s.images) for s in sections),
        "seconds": seconds,
    }
