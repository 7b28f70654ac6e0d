"""Charts as SVG, drawn on the server with matplotlib; each page also shows the data as a table
and gives the chart a text alternative, so nothing is only in the picture.

Text is drawn as outlines (``svg.fonttype = path``): Japanese labels look the same in every
browser without fonts shipped to it. The SVG carries a ``<title>`` for assistive technology.

>>> svg = bar_chart([("1", 3.0), ("2", 5.0)], title="Trips per day", unit="trips")
>>> svg.startswith(b"<?xml") and b"<title>Trips per day</title>" in svg
True
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from functools import cache
from xml.sax.saxutils import escape

#: matplotlib's global state is not thread-safe; pages render in a thread pool.
_lock = threading.Lock()
INK = "#1b1f24"
ACCENT = "#0b5cad"
GRID = "#c9d0d8"


@cache
def _setup() -> None:
    import matplotlib

    matplotlib.use("svg")
    from matplotlib import font_manager, rcParams

    families = {f.name for f in font_manager.fontManager.ttflist}
    preferred = [f for f in ("Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic") if f in families]
    rcParams["font.family"] = [*preferred, "DejaVu Sans"]
    rcParams["svg.fonttype"] = "path"
    rcParams["svg.hashsalt"] = "machikado"  # the same data gives the same bytes
    rcParams["axes.edgecolor"] = INK
    rcParams["axes.labelcolor"] = INK
    rcParams["xtick.color"] = INK
    rcParams["ytick.color"] = INK


def bar_chart(
    bars: Sequence[tuple[str, float | None]],
    *,
    title: str,
    unit: str,
    integers: bool = False,
    width_in: float = 9.0,
    height_in: float = 3.2,
) -> bytes:
    """A bar per (label, value); a None value is a gap (no data), not a zero."""
    _setup()
    from matplotlib.figure import Figure

    with _lock:
        fig = Figure(figsize=(width_in, height_in), dpi=96)
        ax = fig.subplots()
        xs = list(range(len(bars)))
        values = [v if v is not None else 0.0 for _l, v in bars]
        colours = [ACCENT if v is not None else "none" for _l, v in bars]
        ax.bar(xs, values, color=colours, width=0.75)
        step = max(1, len(bars) // 16)
        ax.set_xticks(xs[::step], [label for label, _v in bars][::step])
        ax.set_ylabel(unit)
        if integers:  # a count of 1 is not drawn on an axis of 0.2 steps
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.margins(x=0.01)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="svg", metadata={"Date": None})
    svg = out.getvalue()
    # A title element right inside <svg> names the image for screen readers.
    start = svg.find(b"<svg")
    end = svg.find(b">", start) + 1
    return svg[:end] + f"<title>{escape(title)}</title>".encode() + svg[end:]
