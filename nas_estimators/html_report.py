"""The one HTML page builder of every report: sections, tables and plotly figures, self-contained.

``compare``'s report and ``nas-estimators report`` both build on it. The first figure carries plotly.js,
so a page opens offline and inlines the library once.

Example:
    >>> import pandas as pd
    >>> page = HtmlPage("Demo")
    >>> body = [page.section("numbers", "Numbers", "A table.", page.table(pd.DataFrame({"a": [1]})))]
    >>> "<h1>Demo</h1>" in page.render(body)
    True
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Sequence

from .files import atomic_write_text


class HtmlPage:
    """One report page; :meth:`figure` numbers the figures and inlines plotly.js in the first."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.figures = 0

    def figure(self, figure: Any, div_id: str | None = None) -> str:
        """A plotly figure as an HTML fragment (``div_id`` defaults to ``figure-N``)."""
        self.figures += 1
        return figure.to_html(full_html=False, include_plotlyjs=self.figures == 1,
                              div_id=div_id or f"figure-{self.figures}", config={"displaylogo": False})

    @staticmethod
    def section(key: str, heading: str, text: str, content: str) -> str:
        note = f'<p class="note">{html.escape(text)}</p>' if text else ""
        return f'<section id="{key}"><h2>{html.escape(heading)}</h2>{note}{content}</section>'

    @staticmethod
    def table(frame: Any, float_format: str | None = None) -> str:
        """A pandas DataFrame as an HTML table (``float_format``: e.g. ``"%.4g"``)."""
        formatter = (lambda value: float_format % value) if float_format else None
        return frame.to_html(index=False, escape=True, border=0, classes="table", na_rep="", float_format=formatter)

    def render(self, body: Sequence[str]) -> str:
        return _PAGE.format(title=html.escape(self.title), body="\n".join(body))

    def write(self, path: str | os.PathLike[str], body: Sequence[str]) -> Path:
        """Render ``body`` and write it to ``path`` atomically (its folder is created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(path, self.render(body))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px 32px; color: #222; }}
h1 {{ font-size: 24px; }} h2 {{ font-size: 20px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 36px; }}
h3 {{ font-size: 16px; margin: 16px 0 6px; }}
.note {{ color: #555; font-size: 14px; }}
table.table {{ border-collapse: collapse; font-size: 13px; }}
table.table th, table.table td {{ padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; }}
table.table td {{ font-family: ui-monospace, monospace; }}
.cells {{ display: flex; flex-wrap: wrap; gap: 24px; }}
figure.cell {{ margin: 0; max-width: 100%; }} figure.cell svg {{ max-width: 100%; height: auto; }}
</style></head>
<body><h1>{title}</h1>
{body}
</body></html>
"""
