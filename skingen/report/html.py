"""One self-contained HTML page: every table and figure (embedded), the study spec, versions, audit."""
from __future__ import annotations

import base64
import html
import platform
import time
from pathlib import Path

from .. import __version__
from .tables import Table

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd;margin:.3em 0}pre{background:#f7f7f7;padding:1em;overflow:auto;font-size:12px}
.verdict{background:#eef6ff;border-left:4px solid #3a7bd5;padding:.8em 1em}.fail{color:#b00;font-weight:bold}.pass{color:#080}"""


def table_html(table: Table) -> str:
    """A table as HTML with its title."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in table.rows)
    empty = "" if table.rows else f"<tr><td colspan='{len(table.header)}'>no rows</td></tr>"
    note = f"<p>{html.escape(table.note)}</p>" if table.note else ""
    return f"<h3>{html.escape(table.title)}</h3>{note}<table><thead><tr>{head}</tr></thead><tbody>{body}{empty}</tbody></table>"


def paragraph_html(text: str) -> str:
    """One highlighted sentence (e.g. feature spaces that disagree)."""
    return f"<p class='verdict'>{html.escape(text)}</p>"


def figure_html(title: str, path: Path | None, why_missing: str = "") -> str:
    """An embedded PNG (data URI), or a line saying why the figure is missing."""
    if path is None:
        return f"<h3>{html.escape(title)}</h3><p><em>missing: {html.escape(why_missing or 'no data')}</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"


def audit_html(checks: list[dict]) -> str:
    """The protocol audit as a table with coloured results."""
    rows = "".join(f"<tr><td>{html.escape(c['check'])}</td><td class='{'fail' if c['result'] == 'FAIL' else 'pass'}'>"
                   f"{c['result']}</td><td>{html.escape(c['evidence'])}</td></tr>" for c in checks)
    return f"<table><thead><tr><th>Check</th><th>Result</th><th>Evidence</th></tr></thead><tbody>{rows}</tbody></table>"


def versions() -> dict:
    """Software versions that produced the report."""
    import numpy
    import torch

    out = {"skingen": __version__, "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    for name in ("timm", "accelerate", "submitit", "sklearn", "h5py"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def render_page(study: str, verdicts: list[str], sections: list[tuple[str, list[str]]], audit: list[dict],
                spec_text: str) -> str:
    """The whole page."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>SkinGenBench report: {html.escape(study)}"
             f"</title><style>{STYLE}</style></head><body>",
             f"<h1>SkinGenBench report: {html.escape(study)}</h1>",
             f"<p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>",
             "<h2>The question</h2>" + "".join(f"<p class='verdict'>{html.escape(v)}</p>" for v in verdicts),
             "<h2>Protocol audit</h2>" + audit_html(audit)]
    for title, blocks in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>" + "".join(blocks))
    vers = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in versions().items())
    parts.append(f"<h2>Software</h2><table><tbody>{vers}</tbody></table>")
    parts.append(f"<h2>Study spec</h2><pre>{html.escape(spec_text)}</pre></body></html>")
    return "\n".join(parts)
