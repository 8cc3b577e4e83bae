"""A figure in the house style (mplhep's ATLAS-like style) and its bytes in a format."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")  # no display: figures are only ever written to bytes

import mplhep  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reinterpret.errors import ReinterpretError  # noqa: E402

FORMATS = {"svg": "image/svg+xml", "png": "image/png", "pdf": "application/pdf"}
# rcParams are process-wide; figures built in two threads at once must not mix styles.
_STYLE_LOCK = threading.Lock()


class PlotError(ReinterpretError):
    """A figure cannot be drawn (unknown format, nothing to draw)."""


@contextmanager
def styled() -> Iterator[None]:
    style = dict(mplhep.style.ATLAS)
    # Glyphs the style's fonts lack (combining tilde, sub- and superscripts in a submitter's
    # axis titles) fall back to DejaVu Sans, which matplotlib ships.
    # (matplotlib falls back through the families of font.family, one font per generic one)
    style["font.family"] = ["sans-serif", "DejaVu Sans"]
    with _STYLE_LOCK, matplotlib.rc_context(style):
        yield


def render(draw: Callable[[Figure], None], fmt: str, size: tuple[float, float]) -> bytes:
    """Build a figure of `size` inches with draw(figure) and return its bytes in fmt."""
    if fmt not in FORMATS:
        raise PlotError(f"unknown figure format {fmt!r}; use one of {sorted(FORMATS)}")
    with styled():
        fig = Figure(figsize=size, layout="constrained")
        draw(fig)
        buffer = io.BytesIO()
        metadata = {"Creator": "hepstore portal"} if fmt in ("svg", "pdf") else None
        fig.savefig(buffer, format=fmt, dpi=150, metadata=metadata)
    return buffer.getvalue()


def axis_title(label: str, info: dict | None = None) -> str:
    """An axis title from a label's name, or the submitter's title and unit: "m(b1) [GeV]"."""
    info = info or {}
    title = str(info.get("title") or label)
    unit = info.get("unit")
    return f"{title} [{unit}]" if unit else title
