"""The report's single self-contained HTML page: tables inline, figures embedded as data URIs
(one file to open, mail or archive; no link can break)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from bench.report import render
from bench.report.tables import Table

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
figure { margin: 1.5em 0; } img { max-width: 100%; } figcaption { color: #555; }
"""


def figure_html(path: Path, caption: str) -> str:
    """A figure with the PNG embedded as a data URI."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def block_html(block: str) -> str:
    """One block of Markdown-like text as HTML: a list where it starts with `- ` (items
    indented by four spaces nest under the item above), else a paragraph."""
    if not block.startswith("- "):
        return f"<p>{html.escape(block)}</p>"
    items: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("    - "):
            items[-1][1].append(line.removeprefix("    - "))
        else:
            items.append((line.removeprefix("- "), []))
    return f"<ul>{''.join(_item_html(item, nested) for item, nested in items)}</ul>"


def _item_html(item: str, nested: list[str]) -> str:
    inner = "".join(f"<li>{html.escape(text)}</li>" for text in nested)
    return f"<li>{html.escape(item)}{f'<ul>{inner}</ul>' if nested else ''}</li>"


def page(title: str, intro: str, tables: list[Table], figures: list[tuple[Path, str]]) -> str:
    """The whole page: title, what it shows (`intro`, blocks split at blank lines: paragraphs
    and lists, `block_html`), tables, then figures."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    body += [block_html(block) for block in intro.split("\n\n")]
    body += [render.html_fragment(t) for t in tables]
    body += ["<h2>Figures</h2>", *(figure_html(p, c) for p, c in figures)]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
