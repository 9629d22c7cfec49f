"""A patient's timeline: each tracked lesion's diameter per study and the RECIST sum with its response."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deeplesion.catalog import LesionType
from deeplesion.tracking.response import PatientResponse
from deeplesion.tracking.tracks import Track

RESPONSE_COLOURS = {"CR": "#009E73", "PR": "#009E73", "SD": "#555555", "PD": "#D55E00", "NE": "#999999"}
"""Colour of each RECIST verdict on the timeline (Okabe-Ito green and vermilion)."""


def plot_timeline(tracks: list[Track], response: PatientResponse | None) -> Any:
    """Draw the diameters of a patient's tracks over the studies, and the target sum below.

    Parameters
    ----------
    tracks
        The patient's tracks (:meth:`TrackingResult.tracks_of`).
    response
        Its RECIST response (:func:`recist_response`), or None.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels: top, one line per track (targets thick and labelled with the axis they are followed
        on, other lesions thin), diameter in mm against ``Study_index``, coloured by lesion type (untyped
        lesions in turn by matplotlib's colour cycle); bottom,
        the change of the target sum from baseline per follow-up (%, over the targets that study
        bookmarks, at both ends) with the response letters.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from deeplesion.viz import TYPE_COLOURS

    figure = Figure(figsize=(7.5, 6.0), dpi=110)
    FigureCanvasAgg(figure)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    targets = {t.track: t for t in response.targets} if response else {}
    studies = sorted({m.study for t in tracks for m in t.measurements})
    for number, track in enumerate(tracks):
        target = targets.get(track.id)
        axis = target.axis if target else "long"
        xs = [m.study for m in track.measurements]
        ys = [m.short_mm if axis == "short" else m.long_mm for m in track.measurements]
        kind = LesionType(track.lesion_type).label if track.lesion_type > 0 else "untyped"
        if kind == "untyped":  # training rows have no type: tell the lines apart by matplotlib's cycle
            colour = f"C{number % 10}"
        else:  # the body map's type colours; its yellow is unreadable on white
            colour = TYPE_COLOURS[kind] if kind != "pelvis" else "#B8A800"
        top.plot(
            xs,
            ys,
            marker="o",
            color=colour,
            linewidth=2.2 if target else 0.8,
            markersize=5 if target else 3,
            alpha=1.0 if target else 0.6,
            label=f"{track.id} {kind.replace('_', ' ')}{f' ({axis} axis, target)' if target else ''}"
            if target or len(tracks) <= 12
            else None,
        )
        # the track's number at its last point, so that crowded lines can still be told apart
        top.annotate(
            track.id[-2:],
            (xs[-1], ys[-1]),
            textcoords="offset points",
            xytext=(4, 0),
            fontsize=6,
            va="center",
        )
    top.set_ylabel("diameter (mm)")
    title = f"Patient {tracks[0].patient}: {len(tracks)} tracked lesion(s) over {len(studies)} stud"
    top.set_title(title + ("y" if len(studies) == 1 else "ies"))
    if top.get_legend_handles_labels()[0]:
        top.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    top.grid(alpha=0.3)
    if response is not None and response.targets:
        # the change in % is taken over the same targets at both ends, so a follow-up that bookmarks only
        # some targets is still compared like with like (its sum alone is not)
        measured = [f for f in response.follow_ups if f.change_from_baseline_pct is not None]
        xs = [response.baseline_study] + [f.study for f in measured]
        ys = [0.0] + [float(f.change_from_baseline_pct or 0.0) for f in measured]
        bottom.plot(xs, ys, marker="s", color="#333333")
        bottom.axhline(-30, color=RESPONSE_COLOURS["PR"], linestyle="--", linewidth=0.8)
        bottom.axhline(20, color=RESPONSE_COLOURS["PD"], linestyle="--", linewidth=0.8)
        # the verdicts in one strip above the panel: x in data, y in axes units
        strip = bottom.get_xaxis_transform()
        bottom.text(
            response.baseline_study, 1.03, "B", transform=strip, ha="center", fontsize=8, weight="bold"
        )
        for follow_up in response.follow_ups:
            label = follow_up.response + (
                "*" if follow_up.sum_mm is not None and not follow_up.complete else ""
            )
            bottom.text(
                follow_up.study,
                1.03,
                label,
                transform=strip,
                ha="center",
                fontsize=7,
                color=RESPONSE_COLOURS[follow_up.response],
                weight="bold",
            )
        bottom.set_ylabel("target sum vs baseline (%)")
        bottom.set_title(
            "RECIST 1.1 per study (approximation; B baseline, * over the targets bookmarked there; "
            "dashed: -30% PR, +20% PD)",
            fontsize=8,
            pad=14,
        )
        span = max(40.0, *(abs(y) for y in ys))
        bottom.set_ylim(-span * 1.15, span * 1.15)
    else:
        bottom.text(
            0.5,
            0.5,
            "no measurable lesion in any study",
            ha="center",
            va="center",
            transform=bottom.transAxes,
        )
    bottom.set_xlabel("Study_index")
    bottom.set_xticks(studies)
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def timeline_png(tracks: list[Track], response: PatientResponse | None) -> bytes:
    """:func:`plot_timeline` as PNG bytes."""
    from deeplesion.viz import figure_png

    return figure_png(plot_timeline(tracks, response).axes[0])


def save_timeline(path: str | Path, tracks: list[Track], response: PatientResponse | None) -> Path:
    """Write :func:`plot_timeline` to a PNG (atomically)."""
    from deeplesion.io import atomic_write_bytes

    return atomic_write_bytes(Path(path), timeline_png(tracks, response), force=True)
