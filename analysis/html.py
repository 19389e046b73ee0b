"""Building blocks of the HTML reports: escaping, tables and embedded figures.

Both the run report (`analysis.report`) and the sweep report (`analysis.sweep_report`)
are plain HTML with inline CSS and figures embedded as base64 PNG, so they open offline.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A rendered figure: its file name (without suffix), title, caption and PNG bytes."""

    name: str
    title: str
    caption: str
    png: bytes


def escape(value) -> str:
    """Return `value` as HTML-escaped text."""
    return html.escape(str(value))


def is_missing(value) -> bool:
    """Whether a value is absent (None or NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool],
               css_class: str = "") -> str:
    """A table: `header` is escaped here, `rows` hold ready HTML; numeric columns align right."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{cell}</td>' if num else f"<td>{cell}</td>"
                         for cell, num in zip(row, numeric)) + "</tr>"
        for row in rows)
    cls = f' class="{css_class}"' if css_class else ""
    # A wide table scrolls in its own box rather than run past the page's right edge.
    return f'<div class="table-wrap"><table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def figure_html(figure: Figure, heading: bool = True) -> str:
    """A figure embedded as base64 PNG, with its title, caption and a link to the PNG file."""
    data = base64.b64encode(figure.png).decode("ascii")
    title = f"<h3>{escape(figure.title)}</h3>" if heading else ""
    return (f'<figure id="{escape(figure.name)}">{title}'
            f'<img src="data:image/png;base64,{data}" alt="{escape(figure.title)}">'
            f'<figcaption>{escape(figure.caption)} <a href="figures/{escape(figure.name)}.png">PNG</a>'
            "</figcaption></figure>")
