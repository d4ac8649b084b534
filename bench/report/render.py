"""Writing a Table as Markdown, LaTeX (booktabs), CSV and an HTML fragment."""

from __future__ import annotations

import html

from bench.report.tables import Table

LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "#": r"\#", "_": r"\_", "±": r"$\pm$", "Δ": r"$\Delta$"}
LATEX_SPECIALS |= {"<": r"$<$", "–": "--", "·": r"$\cdot$", "$": r"\$", "{": r"\{", "}": r"\}"}
LATEX_SPECIALS |= {"~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def markdown(table: Table) -> str:
    """A Markdown section: title, caption, table with the best cells in bold (the caption
    alone when the table has no row)."""
    lines = [f"## {table.title}", "", table.caption, ""]
    if not table.rows:  # nothing to list: the caption says so
        return "\n".join(lines)
    return "\n".join(lines) + "\n" + grid(table) + "\n"


def grid(table: Table, bold: bool = True) -> str:
    """The table alone as Markdown, the best cells in bold when `bold`."""
    lines = ["| " + " | ".join(h.replace("|", "\\|") for h in table.header) + " |"]
    lines.append("|" + "---|" * len(table.header))
    for i, row in enumerate(table.rows):
        cells = [c.replace("|", "\\|") for c in row]
        if bold:
            cells = [f"**{c}**" if (i, j) in table.best else c for j, c in enumerate(cells)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text)


def latex(table: Table) -> str:
    """A booktabs `table` environment (needs \\usepackage{booktabs}), best cells in bold."""
    columns = "l" * table.text_columns + "r" * (len(table.header) - table.text_columns)
    body = []
    for i, row in enumerate(table.rows):
        cells = [_latex_escape(c) for c in row]
        cells = [f"\\textbf{{{c}}}" if (i, j) in table.best else c for j, c in enumerate(cells)]
        body.append(" & ".join(cells) + r" \\")
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{_latex_escape(table.caption)}}}",
            rf"\label{{tab:{table.name}}}",
            rf"\begin{{tabular}}{{{columns}}}",
            r"\toprule",
            " & ".join(_latex_escape(h) for h in table.header) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
            "",
        ]
    )


def csv(table: Table) -> str:
    """The unrounded numbers behind the table."""
    return table.numbers.to_csv(index=False)


def html_fragment(table: Table) -> str:
    """An HTML section with the table (its caption alone when it has no row); best cells in
    bold."""
    if not table.rows:
        return (
            f'<section id="{table.name}"><h2>{html.escape(table.title)}</h2>'
            f"<p>{html.escape(table.caption)}</p></section>"
        )
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    rows = []
    for i, row in enumerate(table.rows):
        cells = "".join(
            f"<td><b>{html.escape(c)}</b></td>"
            if (i, j) in table.best
            else f"<td>{html.escape(c)}</td>"
            for j, c in enumerate(row)
        )
        rows.append(f"<tr>{cells}</tr>")
    return (
        f'<section id="{table.name}"><h2>{html.escape(table.title)}</h2>'
        f"<p>{html.escape(table.caption)}</p><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )
