"""Reading what `make report` printed and wrote, as a person would: table rows by their first
cell, and the texts the chart shows."""

import xml.etree.ElementTree as ET

SVG_TEXT = "{http://www.w3.org/2000/svg}text"


def rows(shown: str) -> list[list[str]]:
    """Every row of the terminal's tables, as stripped cells (rich draws cells between │).

    A cell too long for its column goes on over the next lines, under an empty first cell:
    it is joined back, at the space where rich broke it."""
    found: list[list[str]] = []
    for line in shown.splitlines():
        if not line.lstrip().startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if cells[0] or not found:
            found.append(cells)
        else:
            found[-1] = [
                " ".join(filter(None, pair)) for pair in zip(found[-1], cells, strict=True)
            ]
    return found


def row(shown: str, first: str) -> list[str]:
    """The first table row whose first cell is `first`."""
    for cells in rows(shown):
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in\n{shown}")


def chart_texts(page: str) -> list[str]:
    """The texts drawn in the HTML page's chart (its inline SVG)."""
    start, end = page.index("<svg"), page.index("</svg>") + len("</svg>")
    chart = ET.fromstring(page[start:end])  # noqa: S314 (the test's own output)
    return ["".join(text.itertext()) for text in chart.iter(SVG_TEXT)]


def on_chart(shown: str, texts: list[str]) -> bool:
    """The chart shows the label, or its beginning cut with an ellipsis."""
    return any(t == shown or (t.endswith("…") and shown.startswith(t[:-1])) for t in texts)
