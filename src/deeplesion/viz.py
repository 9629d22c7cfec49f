"""Seeing the data: key-slice overlays (OpenCV, fast enough for every key slice) and plots (matplotlib).

Overlays draw, for every lesion on a key slice, the RECIST long axis, the short axis and the box in an
Okabe-Ito palette (distinguishable with colour-blindness): long axis vermillion, short axis sky blue,
box bluish green. Plot functions take ``ax=None`` and return the axes; matplotlib is imported only
inside them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import Catalog, Lesion, LesionType
from deeplesion.errors import UsageError
from deeplesion.names import folder_of
from deeplesion.windowing import apply_window, resolve_window

log = logging.getLogger(__name__)

# Okabe & Ito (2008), colour-blind safe; RGB
LONG_AXIS_RGB = (213, 94, 0)
SHORT_AXIS_RGB = (86, 180, 233)
BOX_RGB = (0, 158, 115)
TYPE_COLOURS: dict[str, str] = {
    "bone": "#000000",
    "abdomen": "#E69F00",
    "mediastinum": "#56B4E9",
    "liver": "#009E73",
    "lung": "#0072B2",
    "kidney": "#D55E00",
    "soft_tissue": "#CC79A7",
    "pelvis": "#F0E442",
    "unknown": "#BBBBBB",
}
"""Lesion type -> colour of the body map (Okabe-Ito; untyped training rows in light grey)."""


def overlay_window(lesion: Lesion, window: str | Sequence[float] | None) -> tuple[float, float]:
    """The window to draw with: ``dicom`` or None -> the lesion's own DICOM window; else a preset/pair."""
    if window is None or (isinstance(window, str) and window.lower() == "dicom"):
        return resolve_window(lesion.window)
    return resolve_window(window)


def draw_lesions(
    hu: npt.NDArray[Any],
    lesions: Sequence[Lesion],
    window: tuple[float, float],
    *,
    thickness: int = 1,
    labels: Sequence[str] | None = None,
    highlight: Sequence[bool] | None = None,
) -> npt.NDArray[np.uint8]:
    """The key slice windowed to grey with every lesion's RECIST axes and box drawn on it.

    Parameters
    ----------
    hu
        (H, W) key slice, HU.
    lesions
        Lesions on this slice (coordinates in the project frame, 0-based).
    window
        (low, high) HU.
    labels
        Text written beside each lesion's box (numbers that match a caption, say).
    highlight
        Per lesion: drawn one pixel thicker when True (the lesion a caption is about).

    Returns
    -------
    ndarray
        (H, W, 3) uint8 RGB.
    """
    import cv2

    grey = apply_window(hu, window, scale="uint8")
    image = np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    shift = 4  # sub-pixel drawing: coordinates are multiplied by 16
    scale = 1 << shift

    def pt(p: Any) -> tuple[int, int]:
        return round(float(p[0]) * scale), round(float(p[1]) * scale)

    for i, lesion in enumerate(lesions):
        width = thickness + (1 if highlight is not None and highlight[i] else 0)
        x1, y1, x2, y2 = lesion.box
        cv2.rectangle(image, pt((x1, y1)), pt((x2, y2)), BOX_RGB, width, cv2.LINE_AA, shift)
        r = lesion.recist
        cv2.line(image, pt(r[2]), pt(r[3]), SHORT_AXIS_RGB, width, cv2.LINE_AA, shift)
        cv2.line(image, pt(r[0]), pt(r[1]), LONG_AXIS_RGB, width, cv2.LINE_AA, shift)
        for end in (r[0], r[1]):  # endpoint ticks, so the exact clicked points stay visible
            cv2.circle(image, pt(end), 2 * scale, LONG_AXIS_RGB, -1, cv2.LINE_AA, shift)
        if labels is not None:
            corner = (max(int(x1), 0), max(int(y1) - 4, 12))
            cv2.putText(image, labels[i], corner, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(image, labels[i], corner, cv2.FONT_HERSHEY_SIMPLEX, 0.5, BOX_RGB, 1, cv2.LINE_AA)
    return image


def close_ups(
    hu: npt.NDArray[Any], lesions: Sequence[Lesion], window: tuple[float, float], *, size: int = 512
) -> npt.NDArray[np.uint8]:
    """One square close-up of all the lesions, or, when they lie far apart, a 2 x 2 grid of close-ups
    centred on each (up to four), so that every annotation can be checked at a glance.

    Returns
    -------
    ndarray
        (size, size, 3) uint8 RGB.
    """
    boxes = np.array([x.box for x in lesions])
    spread = max(boxes[:, 2].max() - boxes[:, 0].min(), boxes[:, 3].max() - boxes[:, 1].min())
    if len(lesions) == 1 or spread <= 160:
        return zoom_panel(hu, lesions, window, size=size)
    half = size // 2
    grid = np.zeros((size, size, 3), dtype=np.uint8)
    for i, lesion in enumerate(lesions[:4]):
        tile = zoom_panel(hu, lesions, window, size=half, focus=lesion)
        row, col = divmod(i, 2)
        grid[row * half : (row + 1) * half, col * half : (col + 1) * half] = tile
    return grid


def zoom_panel(
    hu: npt.NDArray[Any],
    lesions: Sequence[Lesion],
    window: tuple[float, float],
    *,
    size: int = 512,
    margin_px: float = 24.0,
    focus: Lesion | None = None,
) -> npt.NDArray[np.uint8]:
    """A square close-up of the lesions (upsampled to ``size``), the annotations drawn at that scale, so
    small lesions can be checked at a glance.

    Returns
    -------
    ndarray
        (size, size, 3) uint8 RGB.
    """
    import dataclasses

    import cv2

    from deeplesion.geometry import Transform

    boxes = np.array([x.box for x in ([focus] if focus is not None else lesions)])
    x0, y0 = boxes[:, :2].min(axis=0) - margin_px
    x1, y1 = boxes[:, 2:].max(axis=0) + margin_px
    side = max(x1 - x0, y1 - y0, 48.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    side_px = round(side)
    padded = np.pad(hu, side_px, mode="edge")  # lesions at the edge still get a full square
    crop = padded[top + side_px : top + 2 * side_px, left + side_px : left + 2 * side_px].astype(np.float32)
    scale = size / crop.shape[0]
    big = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC)
    to_zoom = Transform(scale, scale, 0.5 * scale - 0.5 - left * scale, 0.5 * scale - 0.5 - top * scale)
    moved = [
        dataclasses.replace(x, recist=to_zoom.points(x.recist), box=to_zoom.boxes(x.box)) for x in lesions
    ]
    panel = draw_lesions(big, moved, window, thickness=2)
    label = f"x{scale:.1f}" + (f"  row {focus.row}" if focus is not None else "")
    cv2.putText(panel, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def caption(lesion: Lesion) -> str:
    """One line per lesion: row, type, diameters (mm), split, spacing."""
    return (
        f"row {lesion.row} | {lesion.lesion_type.label} | {lesion.long_diameter_mm:.1f} x "
        f"{lesion.short_diameter_mm:.1f} mm | {lesion.split.label} | {lesion.spacing[0]:.3f} mm/px, "
        f"{lesion.spacing[2]:g} mm slices" + (" | possibly noisy" if lesion.noisy else "")
    )


def compose_panel(
    image: npt.NDArray[np.uint8], lines: Sequence[str], *, strip: npt.NDArray[np.uint8] | None = None
) -> npt.NDArray[np.uint8]:
    """The overlay with a text band under it (and an optional strip of context slices)."""
    import cv2

    width = image.shape[1]
    line_height = 18
    band = np.zeros((line_height * len(lines) + 10, width, 3), dtype=np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(
            band,
            text,
            (6, 16 + i * line_height),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.42,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    parts = [image, band]
    if strip is not None:
        if strip.shape[1] != width:
            height = round(strip.shape[0] * width / strip.shape[1])
            strip = np.asarray(
                cv2.resize(strip, (width, height), interpolation=cv2.INTER_AREA), dtype=np.uint8
            )
        parts.append(strip)
    return np.concatenate(parts, axis=0)


def context_strip(
    release: Any, lesion: Lesion, window: tuple[float, float], *, count: int = 5
) -> npt.NDArray[np.uint8]:
    """Neighbouring slices of the key slice's run (on disk), side by side, the key slice framed."""
    import cv2

    on_disk = sorted(
        n for n in release.slice_numbers(lesion.folder) if lesion.slice_range[0] <= n <= lesion.slice_range[1]
    )
    position = on_disk.index(lesion.key_slice)
    start = max(0, min(position - count // 2, len(on_disk) - count))
    chosen = on_disk[start : start + count]
    tiles = []
    for number in chosen:
        grey = apply_window(release.read_slice(lesion.folder, number), window, scale="uint8")
        tile = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
        colour = LONG_AXIS_RGB if number == lesion.key_slice else (90, 90, 90)
        cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), colour, 6)
        cv2.putText(
            tile, f"{number:03d}", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2, cv2.LINE_AA
        )
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def key_slice_figure(
    release: Any, file_name: str, *, window: str | Sequence[float] | None = None, context: bool = False
) -> npt.NDArray[np.uint8]:
    """The ``deeplesion show`` picture of one key slice: overlay, captions, optional context strip.

    Returns
    -------
    ndarray
        (H', W, 3) uint8 RGB.
    """
    lesions = release.catalog.lesions_on(file_name)
    if not lesions:
        from deeplesion.errors import UsageError

        raise UsageError(f"{file_name} is not a key slice of {release.annotations}")
    import cv2

    first = lesions[0]
    low_high = overlay_window(first, window)
    hu = release.key_slice(first)
    overview = draw_lesions(hu, lesions, low_high)
    close_up = close_ups(hu, lesions, low_high, size=overview.shape[0])
    if close_up.shape[0] != overview.shape[0]:
        close_up = np.asarray(cv2.resize(close_up, (overview.shape[0], overview.shape[0])), dtype=np.uint8)
    image = np.concatenate([overview, close_up], axis=1)
    lines = [f"{file_name}  window [{low_high[0]:g}, {low_high[1]:g}] HU", *(caption(x) for x in lesions)]
    strip = context_strip(release, first, low_high) if context else None
    return compose_panel(image, lines, strip=strip)


def encode_png(rgb: npt.NDArray[np.uint8]) -> bytes:
    """(H, W, 3) uint8 RGB (or (H, W) grey) -> PNG bytes."""
    import cv2

    image = rgb[:, :, ::-1] if rgb.ndim == 3 else rgb  # OpenCV stores BGR
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise ValueError("OpenCV could not encode the image as PNG")
    return bytes(data)


def write_png(path: Path, rgb: npt.NDArray[np.uint8], *, force: bool = True) -> Path:
    """Write an RGB image as PNG, atomically."""
    from deeplesion.io import atomic_write_bytes

    return atomic_write_bytes(path, encode_png(rgb), force=force)


# --- rendering every key slice ------------------------------------------------------------------------


@dataclass
class RenderResult:
    """What rendering one series folder did."""

    written: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


def render_folder(
    root: str, annotations: str, file_names: tuple[str, ...], out: str, force: bool
) -> RenderResult:
    """Render the key slices of one folder (a pure function, for process pools and Dask)."""
    from deeplesion.catalog import load_catalog
    from deeplesion.errors import ImageError
    from deeplesion.release import open_release

    result = RenderResult()
    release = open_release(root, catalog=load_catalog(annotations).filter(file_names=file_names))
    for name in file_names:
        target = Path(out) / name
        if target.exists() and not force:
            result.skipped += 1
            continue
        lesions = release.catalog.lesions_on(name)
        try:
            hu = release.key_slice(lesions[0])
        except ImageError as exc:
            result.failed.append(str(exc))
            continue
        write_png(target, draw_lesions(hu, lesions, overlay_window(lesions[0], None)))
        result.written += 1
    return result


def render_key_slices(
    root: str | os.PathLike[str],
    annotations: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    split: str | None = None,
    jobs: int = 1,
    force: bool = False,
    progress: Any = None,
) -> RenderResult:
    """One overlay PNG per key slice, ``out/<File_name>`` (as the release's ``Key_slices.zip``), in each
    lesion's DICOM window; resumable (existing files are kept unless ``force``)."""
    from deeplesion.catalog import load_catalog
    from deeplesion.parallel import map_calls

    if not Path(root).is_dir():
        raise UsageError(f"{root} is not a folder: `root` is the release folder (DL_info.csv, Images_png/)")
    catalog = load_catalog(annotations)
    rows = catalog.filter(split=split) if split else catalog
    by_folder: dict[str, list[str]] = {}
    for name in sorted(set(rows.file_name.tolist())):
        by_folder.setdefault(folder_of(name), []).append(name)
    Path(out).mkdir(parents=True, exist_ok=True)
    calls = [(str(root), str(annotations), tuple(names), str(out), force) for names in by_folder.values()]
    total = RenderResult()
    for result in map_calls(render_folder, calls, jobs=jobs, progress=progress):
        total.written += result.written
        total.skipped += result.skipped
        total.failed.extend(result.failed)
    return total


# --- plots --------------------------------------------------------------------------------------------


def new_axes(size: tuple[float, float] = (6.0, 4.0), dpi: int = 120) -> Any:
    """Axes on a new figure drawn by Agg, outside pyplot: the caller's backend (a notebook's, say) and
    pyplot's list of open figures stay as they were, and nothing needs closing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def _axes(ax: Any, size: tuple[float, float] = (6.0, 4.0)) -> Any:
    return ax if ax is not None else new_axes(size)


def plot_bodymap(catalog: Catalog, *, ax: Any = None, point_size: float | None = None) -> Any:
    """The DeepLesion body map (the README's Fig. 1): normalized x against z, coloured by lesion type.

    A frontal view: x as given (the patient's right has small x, on the left of the plot, as a
    radiologist faces the patient), z inverted so the head is at the top; equal aspect. Only validation
    and test rows have types; untyped rows are light grey, drawn first.

    Returns
    -------
    matplotlib.axes.Axes
        One scatter point per lesion.
    """
    ax = _axes(ax, (5.0, 7.0))
    if point_size is None:  # a few large points for a small subset, small ones for the whole release
        point_size = float(np.clip(3000.0 / max(len(catalog), 1), 4.0, 40.0))
    location = catalog.location
    types = catalog.lesion_type
    typed = [t for t in LesionType if t is not LesionType.UNKNOWN]
    # untyped first, then the larger groups, so that small groups are drawn on top and stay visible
    order = [LesionType.UNKNOWN, *sorted(typed, key=lambda t: -int((types == int(t)).sum()))]
    for kind in order:
        mask = types == int(kind)
        if not mask.any():
            continue
        label = f"{kind.label.replace('_', ' ')} ({int(mask.sum())})"
        if kind is LesionType.UNKNOWN:
            label = f"untyped: train rows ({int(mask.sum())})"
        ax.scatter(
            location[mask, 0],
            location[mask, 2],
            s=point_size,
            c=TYPE_COLOURS[kind.label],
            label=label,
            linewidths=0,
            alpha=0.5 if kind is LesionType.UNKNOWN else 0.8,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(1, 0)  # head at the top
    ax.set_aspect("equal")
    ax.set_xlabel("normalized x (patient's right → left)")
    ax.set_ylabel("normalized z (head → feet)")
    ax.set_title(f"Lesion positions, {len(catalog)} lesions")
    handles, labels = ax.get_legend_handles_labels()
    by_type = dict(zip(labels, handles, strict=True))
    wanted = [label for t in LesionType for label in by_type if label.startswith(t.label.replace("_", " "))]
    wanted += [label for label in by_type if label.startswith("untyped")]
    legend = ax.legend(
        [by_type[k] for k in wanted],
        wanted,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        markerscale=2.5,
        frameon=False,
        title="type (val/test rows only)",
        title_fontsize=8,
    )
    legend.get_title().set_ha("left")
    return ax


def plot_split_type_counts(catalog: Catalog, *, ax: Any = None) -> Any:
    """Lesions per split, stacked by type (grouped bars)."""
    from deeplesion.catalog import Split

    ax = _axes(ax)
    kinds = [t for t in LesionType]
    bottom = np.zeros(len(Split))
    for kind in kinds:
        counts = np.array(
            [int(((catalog.split == int(s)) & (catalog.lesion_type == int(kind))).sum()) for s in Split]
        )
        if counts.any():
            ax.bar(
                [s.label for s in Split],
                counts,
                bottom=bottom,
                color=TYPE_COLOURS[kind.label],
                label=kind.label.replace("_", " "),
            )
            bottom += counts
    ax.set_ylabel("lesions")
    ax.set_title("Lesions per split and type")
    ax.legend(fontsize=7, ncol=2, frameon=False)
    return ax


def plot_histogram(
    values: npt.ArrayLike, *, bins: Any, xlabel: str, title: str, ax: Any = None, log_x: bool = False
) -> Any:
    """A plain histogram (diameters, slice intervals, ages)."""
    ax = _axes(ax)
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    ax.hist(data, bins=bins, color="#0072B2", edgecolor="white", linewidth=0.5)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    return ax


def plot_interval_counts(catalog: Catalog, *, ax: Any = None) -> Any:
    """Lesions per slice interval: the intervals are a few discrete values (0.25 to 22.5 mm in the
    release), so one bar each on a linear axis from 0, with its count written on it so that the rare ones
    stay readable (a log axis starting near 10 made a 10-lesion bar look empty)."""
    from collections import Counter

    from deeplesion.catalog import format_number

    ax = _axes(ax)
    counts = sorted(Counter(catalog.slice_interval_mm.tolist()).items())
    bars = ax.bar([format_number(v) for v, _ in counts], [n for _, n in counts], color="#0072B2")
    ax.bar_label(bars, fontsize=7, padding=1)
    ax.set_ylim(0, max((n for _, n in counts), default=1) * 1.12)
    ax.set_xlabel("slice interval (mm)")
    ax.set_ylabel("lesions")
    ax.set_title("Slice interval")
    ax.tick_params(axis="x", labelrotation=60, labelsize=8)
    return ax


def plot_age_sex(catalog: Catalog, *, ax: Any = None) -> Any:
    """Age histogram of lesions by sex (stacked)."""
    ax = _axes(ax)
    bins = np.arange(0, 105, 5)
    groups = [(sex, catalog.age[catalog.sex == sex]) for sex in ("F", "M")]
    ax.hist(
        [g[1][np.isfinite(g[1])] for g in groups],
        bins=bins,
        stacked=True,
        color=["#CC79A7", "#0072B2"],
        label=[f"{sex} ({len(v)} lesions)" for sex, v in groups],
        edgecolor="white",
        linewidth=0.5,
    )
    ax.set_xlabel("age (years)")
    ax.set_ylabel("lesions")
    ax.set_title("Age and sex")
    ax.legend(fontsize=8, frameon=False)
    return ax


def figure_png(ax: Any, *, image_format: str = "png", dpi: float | None = None) -> bytes:
    """The figure holding ``ax`` as PNG bytes (or ``image_format``: pdf, svg)."""
    import io

    buffer = io.BytesIO()
    ax.figure.savefig(buffer, format=image_format, bbox_inches="tight", dpi=dpi)
    return buffer.getvalue()
