"""Figures without pyplot: a standalone matplotlib ``Figure`` per plot, written atomically as PNG."""

from __future__ import annotations

import io
from pathlib import Path

from ..data.files import atomic_write_bytes


def subplots(*args, figsize=None, **kwargs):
    """(figure, axes) without pyplot: a standalone ``matplotlib.figure.Figure``, so drawing never
    switches the process's matplotlib backend or keeps figures in pyplot's global registry."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def save_png(fig, path: Path, dpi: int = 110) -> None:
    """Lay out ``fig`` and write it as PNG atomically to ``path``."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    atomic_write_bytes(Path(path), buf.getvalue())
