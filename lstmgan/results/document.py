"""A report as a list of blocks (headings, paragraphs, tables, figures, code), rendered twice: as Markdown,
and as one self-contained HTML file (figures embedded). lstmgan.results.report fills one."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmgan.fs import read_regular
from lstmgan.results.markdown import markdown_table


@dataclass
class Report:
    folder: Path
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", (header, rows)))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("img", (path, caption)))
        self.figures.append(path)

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    @property
    def md_path(self) -> Path:
        return self.folder / "report.md"

    @property
    def html_path(self) -> Path:
        return self.folder / "report.html"

    def named_tables(self) -> dict[str, tuple[list[str], list[list[str]]]]:
        """Every table, named by the heading above it in lower-case words joined by `-` (the W&B report
        run's `tables/<name>`); a second table under one heading gets its position appended."""
        tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        heading = "report"
        for kind, value in self.blocks:
            if kind == "h":
                heading = value[1]
            elif kind == "table":
                name = re.sub(r"[\W_]+", "-", heading.lower()).strip("-")  # \W: all but letters, digits and _
                tables[name if name not in tables else f"{name}-{len(tables)}"] = value
        return tables

    def markdown(self) -> str:
        out = []
        for kind, value in self.blocks:
            if kind == "h":
                out.append("#" * value[0] + " " + value[1])
            elif kind == "p":
                out.append(value)
            elif kind == "table":
                out.append(markdown_table(*value))
            elif kind == "img":
                out.append(f"![{value[1]}]({value[0].relative_to(self.folder)})\n\n*{value[1]}*")
            elif kind == "code":
                out.append(f"```\n{value}\n```")
            out.append("")
        return "\n".join(out)

    def html(self, title: str) -> str:
        body = []
        for kind, value in self.blocks:
            if kind == "h":
                body.append(f"<h{value[0]}>{html.escape(value[1])}</h{value[0]}>")
            elif kind == "p":
                body.append(f"<p>{html.escape(value)}</p>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{html.escape(c)}</th>" for c in header)
                cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>")
            elif kind == "img":
                data = base64.b64encode(read_regular(value[0], "image")).decode()
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(value[1])}">'
                            f"<figcaption>{html.escape(value[1])}</figcaption></figure>")
            elif kind == "code":
                body.append(f"<pre>{html.escape(value)}</pre>")
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
                 "text-align:left}th{background:#f4f4f4}img{max-width:100%}figcaption{color:#555;font-size:90%}"
                 "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:85%}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
