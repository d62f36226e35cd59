"""Charts for the workbench as inline SVG (matplotlib, object API without pyplot so it is safe in
worker threads). Text is kept as SVG text (`svg.fonttype = none`) so the browser draws Chinese
labels with its own CJK fonts.

May import: matplotlib, the standard library, `hie_server.surveillance.chart_font`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib import rcParams
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hie_server.surveillance.chart_font import chart_families

rcParams["svg.fonttype"] = "none"
rcParams["svg.hashsalt"] = "qyhie"  # stable ids: same data, same bytes


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def trend_svg(
    title: str,
    unit: str,
    points: Sequence[tuple[datetime, float]],
    low: float | None = None,
    high: float | None = None,
) -> str:
    """A line chart of one lab test over time (dates on x, value in `unit` on y), with the
    reference range shaded when known. Returns the `<svg>` element as text."""
    fig = Figure(figsize=(4.2, 2.1), dpi=96)
    ax = fig.add_subplot()
    xs: Any = [p[0] for p in points]  # matplotlib converts datetimes (its stubs say float)
    ys = [p[1] for p in points]
    if low is not None and high is not None:
        ax.axhspan(low, high, color="#0b6e4f", alpha=0.08, lw=0)
    ax.plot(xs, ys, marker="o", color="#0b6e4f", lw=1.6, ms=4)
    ax.set_title(title, fontsize=9, fontfamily=chart_families(), loc="left")
    ax.set_ylabel(unit, fontsize=8, fontfamily=chart_families())
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.autofmt_xdate(rotation=30)
    return _svg(fig)


def bars_svg(
    title: str,
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    ylabel: str,
    percent: bool = False,
) -> str:
    """Grouped lines per series over `labels` (e.g. ISO weeks) — for ILI share trends."""
    fig = Figure(figsize=(5.6, 2.4), dpi=96)
    ax = fig.add_subplot()
    for name, values in series.items():
        ax.plot(
            list(labels), [v * 100 if percent else v for v in values], marker="o", ms=3, lw=1.4, label=name
        )
    ax.set_title(title, fontsize=9, fontfamily=chart_families(), loc="left")
    ax.set_ylabel(ylabel, fontsize=8, fontfamily=chart_families())
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.25)
    if len(series) > 1:
        ax.legend(fontsize=7, frameon=False, prop={"family": chart_families(), "size": 7})
    fig.autofmt_xdate(rotation=30)
    return _svg(fig)


def epicurve_svg(title: str, weeks: Sequence[str], series: Mapping[str, Sequence[int]], ylabel: str) -> str:
    """Epidemic curve: cases per ISO week stacked by disease (labels in the page's language)."""
    fig = Figure(figsize=(6.4, 2.8), dpi=96)
    ax = fig.add_subplot()
    bottom = [0] * len(weeks)
    for name, counts in series.items():
        ax.bar(list(weeks), list(counts), bottom=bottom, label=name, width=0.8)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_title(title, fontsize=9, fontfamily=chart_families(), loc="left")
    ax.set_ylabel(ylabel, fontsize=8, fontfamily=chart_families())
    ax.tick_params(labelsize=7)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.25)
    if series:
        ax.legend(
            fontsize=7,
            frameon=False,
            prop={"family": chart_families(), "size": 7},
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
    fig.autofmt_xdate(rotation=30)
    return _svg(fig)
