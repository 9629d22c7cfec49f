"""FROC plots (matplotlib, imported only here)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deeplesion.evaluate.froc import Curve, Protocol, read_levels


def plot_froc(
    curves: dict[str, Curve],
    levels: Sequence[float],
    protocol: Protocol,
    *,
    title: str = "FROC",
    ax: Any = None,
) -> Any:
    """Draw FROC curves (sensitivity against false positives per image, log2 axis) with the levels marked.

    Parameters
    ----------
    curves
        Label -> curve; several labels (strata) become several lines.
    levels
        False-positive levels to mark with their sensitivity.
    ax
        A matplotlib ``Axes`` to draw on; None makes a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on.
    """
    from deeplesion.viz import new_axes

    if ax is None:
        ax = new_axes((7.0, 5.0), dpi=110)
    fig = ax.figure
    low = min(min(levels), 0.125)
    high = max(max(levels), max((c.max_fp_per_image for c in curves.values()), default=1.0), 1.0)
    for label, curve in curves.items():
        if curve.num_lesions == 0 or len(curve.fp_per_image) == 0:
            continue
        x = np.concatenate([[low / 2], np.maximum(curve.fp_per_image, low / 2)])
        y = np.concatenate([[0.0], curve.sensitivity])
        reading = read_levels(curve, tuple(levels), protocol).sensitivity
        headline = np.mean([reading.get(v, np.nan) for v in (0.5, 1.0, 2.0, 4.0)])
        label_text = f"{label} ({curve.num_lesions} lesions, mean@0.5-4 {headline:.3f})"
        (line,) = ax.step(x, y, where="post", linewidth=1.6, label=label_text)
        ax.plot(list(reading), list(reading.values()), "o", color=line.get_color(), markersize=5)
        beyond = [v for v in levels if v > curve.max_fp_per_image]
        if beyond:  # how the protocol reads levels past the last detection: dashed
            value = reading[beyond[0]]
            ax.plot(
                [curve.max_fp_per_image, high * 1.2],
                [value, value],
                "--",
                color=line.get_color(),
                linewidth=1,
            )
        if len(curves) == 1:
            for level, value in reading.items():
                ax.annotate(
                    f"{value:.3f}", (level, value), textcoords="offset points", xytext=(4, -12), fontsize=8
                )
    ax.set_xscale("log", base=2)
    ax.set_xlim(low / 2, high * 1.2)
    ax.set_ylim(0.0, 1.0)
    ax.set_xticks(sorted(set(levels)))
    ax.set_xticklabels([format(v, "g") for v in sorted(set(levels))])
    ax.set_xlabel("false positives per image")
    ax.set_ylabel("sensitivity")
    ax.set_title(f"{title} ({protocol} protocol)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def save_froc_plot(path: str | Path, *args: Any, force: bool = True, **kwargs: Any) -> Path:
    """Draw with :func:`plot_froc` and write a PNG atomically."""
    from deeplesion.io import atomic_write_bytes
    from deeplesion.viz import figure_png

    fig = plot_froc(*args, **kwargs)
    return atomic_write_bytes(Path(path), figure_png(fig.axes[0]), force=force)
