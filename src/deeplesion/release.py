"""A DeepLesion release on disk: ``DL_info.csv`` + ``Images_png/``, with slices, runs, stacks, volumes.

>>> release = deeplesion.open("/data/DeepLesion")          # or $DEEPLESION_ROOT
>>> sample = release.context(0, slices=9, interval_mm=2.0)  # (9, H, W) float32 HU around lesion 0

The object never writes under its root (a read-only root works) and pickles as its root and annotation
path only, so it is cheap to send to process-pool or Dask workers (call
:func:`deeplesion.parallel.configure_worker` there).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from deeplesion.cache import SliceCache, default_cache_dir
from deeplesion.catalog import (
    DEFAULT_FILE_NAME,
    Catalog,
    Lesion,
    load_catalog,
    resolve_root,
)
from deeplesion.context import ContextStack, Mode, build_stack, plan_context
from deeplesion.errors import ImageError, UsageError
from deeplesion.geometry import BoxRule, Transform, crop_transform
from deeplesion.io import describe_array
from deeplesion.names import IMAGES_DIR, folder_of, parse_file_name, slice_number_of, slice_path
from deeplesion.slices import read_slice_hu
from deeplesion.transforms import BodyCrop, Pipeline, Record, split_fusable
from deeplesion.transforms import pipeline as build_pipeline

log = logging.getLogger(__name__)

_WARNED_LONE_FOLDERS: set[str] = set()


@dataclass(frozen=True)
class Run:
    """A contiguous run of slices in a series folder, as the annotation rows describe it.

    Attributes
    ----------
    folder
        ``PPPPPP_SS_RR``.
    first, last
        1-based slice numbers, inclusive (``Slice_range``).
    spacing
        (x, y, z) mm; z is this run's own slice interval (runs of one folder can differ).
    image_size
        (width, height) pixels.
    """

    folder: str
    first: int
    last: int
    spacing: tuple[float, float, float]
    image_size: tuple[int, int]

    @property
    def slice_numbers(self) -> range:
        """The run's slice numbers."""
        return range(self.first, self.last + 1)


def annotated_runs(catalog: Catalog) -> dict[str, list[Run]]:
    """Per series folder, its runs as the rows describe them (one per ``Slice_range``, with the spacing
    and size of its first row), sorted by first slice."""
    seen: dict[tuple[str, int, int], Run] = {}
    for i, name in enumerate(catalog.file_name.tolist()):
        folder = folder_of(name)
        first, last = (int(v) for v in catalog.slice_range[i])
        if (folder, first, last) not in seen:
            sx, sy, sz = (float(v) for v in catalog.spacing[i])
            width, height = (int(v) for v in catalog.image_size[i])
            seen[(folder, first, last)] = Run(folder, first, last, (sx, sy, sz), (width, height))
    out: dict[str, list[Run]] = {}
    for key in sorted(seen):
        out.setdefault(key[0], []).append(seen[key])
    return out


@dataclass(frozen=True)
class Volume:
    """A run as a 3D array.

    Attributes
    ----------
    data
        (Z, H, W) int16 HU, Z in increasing slice number.
    slice_numbers
        (Z,) int64 slice numbers of the planes.
    spacing
        (x, y, z) mm.
    folder
        The series folder.
    """

    data: npt.NDArray[np.int16]
    slice_numbers: npt.NDArray[np.int64]
    spacing: tuple[float, float, float]
    folder: str

    def __repr__(self) -> str:
        numbers = self.slice_numbers
        span = f"{numbers[0]}-{numbers[-1]}" if len(numbers) else "none"
        spacing = ", ".join(f"{v:g}" for v in self.spacing)
        return f"Volume({self.folder}, slices {span}, {describe_array(self.data)} HU, spacing ({spacing}) mm)"


@dataclass(frozen=True)
class Sample:
    """A model-ready 2.5D sample (see :meth:`Release.sample`).

    Attributes
    ----------
    image
        (C, H', W') float32, windowed (0-255 for the ``model`` window by default) and resized.
    boxes
        (K, 4) float64 boxes of the lesions on the key slice, in ``image`` pixels.
    transform
        Maps 0-based key-slice pixel coordinates to ``image`` pixels (``.inverse()`` maps back).
    lesions
        The K lesions on the key slice.
    """

    image: npt.NDArray[np.float32]
    boxes: npt.NDArray[np.float64]
    transform: Transform
    lesions: list[Lesion]

    def __repr__(self) -> str:
        names = sorted({x.file_name for x in self.lesions})
        return (
            f"Sample({', '.join(names)}, image {describe_array(self.image)}, {len(self.boxes)} box(es), "
            f"scale {self.transform.scale_x:.4f}, rule {self.transform.rule})"
        )


class Release:
    """A release folder: ``DL_info.csv`` (or another annotation file) and ``Images_png/``.

    Parameters
    ----------
    root
        The folder; default ``$DEEPLESION_ROOT``.
    annotations
        The annotation file; default ``ROOT/DL_info.csv``.
    catalog
        An already loaded (for example filtered) catalog to use instead of reading ``annotations``.
    cache
        A decoded cache folder (``deeplesion cache build``) to read slices from where it is valid; the
        arrays are the same as from the PNGs, bit for bit. ``"auto"``: the default folder under the
        root when there is one.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        annotations: str | os.PathLike[str] | None = None,
        catalog: Catalog | None = None,
        cache: str | os.PathLike[str] | None = None,
    ) -> None:
        self.root = resolve_root(root)
        self.annotations = Path(annotations) if annotations is not None else self.root / DEFAULT_FILE_NAME
        self._given_catalog = catalog
        self._listing: dict[str, frozenset[int]] = {}
        self.cache = self._open_cache(cache)

    def _open_cache(self, cache: str | os.PathLike[str] | None) -> SliceCache | None:
        if cache is None:
            return None
        if str(cache) == "auto":
            folder = default_cache_dir(self.root)
            return SliceCache(folder, self.root) if folder.is_dir() else None
        return SliceCache(cache, self.root)

    def __repr__(self) -> str:
        return f"Release({str(self.root)!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Only what identifies the release travels; catalogs and listings are rebuilt where needed.
        return {
            "root": self.root,
            "annotations": self.annotations,
            "catalog": self._given_catalog,
            "cache": self.cache,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.root = state["root"]
        self.annotations = state["annotations"]
        self._given_catalog = state["catalog"]
        self.cache = state.get("cache")
        self._listing = {}

    @cached_property
    def catalog(self) -> Catalog:
        """The annotations (loaded on first use)."""
        if self._given_catalog is not None:
            return self._given_catalog
        return load_catalog(self.annotations)

    # files -------------------------------------------------------------------------------------------
    @property
    def images_dir(self) -> Path:
        """``ROOT/Images_png``."""
        return self.root / IMAGES_DIR

    def path(self, folder: str, slice_number: int) -> Path:
        """Path of a slice, ``ROOT/Images_png/<folder>/<NNN>.png``."""
        return self.root / slice_path(folder, slice_number)

    def path_of(self, file_name: str) -> Path:
        """Path of a slice given its ``File_name`` (``PPPPPP_SS_RR_NNN.png``)."""
        return self.path(*parse_file_name(file_name))

    def folders(self) -> list[str]:
        """Series folders present under ``Images_png/``, sorted."""
        if not self.images_dir.is_dir():
            return []
        return sorted(entry.name for entry in os.scandir(self.images_dir) if entry.is_dir())

    def slice_numbers(self, folder: str) -> frozenset[int]:
        """Slice numbers on disk in ``folder`` (names in the release's ``%03d.png`` form; others are ignored
        here and reported by the inventory)."""
        numbers = self._listing.get(folder)
        if numbers is None:
            directory = self.images_dir / folder
            names = [e.name for e in os.scandir(directory)] if directory.is_dir() else []
            numbers = frozenset(n for n in map(slice_number_of, names) if n is not None)
            self._listing[folder] = numbers
        return numbers

    def runs(self, folder: str | None = None) -> list[Run]:
        """Runs described by the annotation rows (one per folder and ``Slice_range``), sorted."""
        by_folder = annotated_runs(self.catalog)
        if folder is not None:
            return by_folder.get(folder, [])
        return [run for name in sorted(by_folder) for run in by_folder[name]]

    # reading -----------------------------------------------------------------------------------------
    def lesion(self, which: int | str | Lesion) -> Lesion:
        """A lesion by catalog position, by key-slice file name (its first lesion) or as given."""
        if isinstance(which, Lesion):
            return which
        if isinstance(which, str):
            found = self.catalog.lesions_on(which)
            if not found:
                raise UsageError(f"{which} is not a key slice of {self.annotations}")
            return found[0]
        return self.catalog[which]

    def read_slice(
        self, folder: str, slice_number: int, *, image_size: tuple[int, int] | None = None
    ) -> npt.NDArray[np.int16]:
        """One slice as (H, W) int16 HU (``image_size`` = (width, height) to check).

        Raises
        ------
        ImageError
            Missing or broken; a slice that a partial download did not ask for says so, and how to get it.
        """
        path = self.path(folder, slice_number)
        if not path.exists():
            from deeplesion.download.state import Requested

            requested = Requested.load(self.root)
            ranges = requested.slice_ranges(folder)
            outside_folders = requested.folders is not None and folder not in requested.folders
            outside_ranges = ranges is not None and not any(a <= slice_number <= b for a, b in ranges)
            if outside_folders or outside_ranges:
                raise ImageError(
                    f"{path}: not on disk, and not requested by the partial download of {self.root}; fetch "
                    f"it with `deeplesion download --root {self.root} --only key-slices --lesions FILE` "
                    "(with --context-mm for its neighbours)"
                )
        return read_slice_hu(path, expected_size=image_size)

    def key_slice(self, which: int | str | Lesion) -> npt.NDArray[np.int16]:
        """The key slice of a lesion as (H, W) int16 HU, checked against its ``Image_size``."""
        lesion = self.lesion(which)
        return self.read_slice(lesion.folder, lesion.key_slice, image_size=lesion.image_size)

    def context(
        self,
        which: int | str | Lesion,
        *,
        slices: int = 3,
        interval_mm: float = 2.0,
        mode: Mode = "correct",
        crop_box: tuple[int, int, int, int] | None = None,
        preloaded: dict[int, npt.NDArray[np.int16]] | None = None,
        gain: float = 1.0,
        offset: float = 0.0,
    ) -> ContextStack:
        """A 2.5D stack of ``slices`` channels ``interval_mm`` apart, centred on a lesion's key slice.

        Parameters
        ----------
        which
            Catalog position, key-slice file name or :class:`Lesion`.
        slices
            Odd number of channels.
        interval_mm
            Distance between channels, mm.
        mode
            ``correct`` (default) or ``reference`` (reproduces the reference loaders, weight bug included);
            see :mod:`deeplesion.context`.
        crop_box
            ``(x0, y0, x1, y1)`` to return only that region.
        preloaded, gain, offset
            See :func:`deeplesion.context.build_stack`.

        Returns
        -------
        ContextStack
            ``hu`` (C, H, W) float32 HU and the slices blended for each channel.
        """
        lesion = self.lesion(which)
        plan = plan_context(slices, interval_mm, lesion.slice_interval_mm, mode)
        on_disk = self.slice_numbers(lesion.folder)
        if mode == "correct":
            first, last = lesion.slice_range
            available: frozenset[int] | set[int] = {n for n in on_disk if first <= n <= last}
        else:
            available = on_disk
        if lesion.key_slice not in on_disk:
            raise ImageError(f"{self.path(lesion.folder, lesion.key_slice)}: key slice not on disk")
        size = lesion.image_size
        folder = lesion.folder

        def read(n: int) -> npt.NDArray[np.int16]:
            return self.read_slice(folder, n, image_size=size)

        if crop_box is not None and self.cache is not None:
            # read the region itself: from the cache where it holds it, else the PNG, cropped here
            box, cache, read_png = crop_box, self.cache, read

            def read(n: int) -> npt.NDArray[np.int16]:
                region = cache.region(folder, n, box)
                return region if region is not None else read_png(n)[box[1] : box[3], box[0] : box[2]]

            preloaded = {n: v[box[1] : box[3], box[0] : box[2]] for n, v in (preloaded or {}).items()}
            crop_box = None
        stack = build_stack(
            lesion.key_slice,
            plan,
            available,
            read,
            crop_box=crop_box,
            preloaded=preloaded,
            gain=gain,
            offset=offset,
        )
        if stack.key_slice_only and lesion.folder not in _WARNED_LONE_FOLDERS:
            _WARNED_LONE_FOLDERS.add(lesion.folder)  # once per series and process: a loop must not flood
            log.warning(
                "%s: no neighbour slice of %s is available; all %d channels repeat the key slice "
                "(stack.key_slice_only is True)",
                lesion.file_name,
                lesion.folder,
                len(stack.sources),
            )
        return stack

    def sample(
        self,
        which: int | str | Lesion,
        *,
        slices: int = 9,
        interval_mm: float = 2.0,
        mode: Mode = "correct",
        pipeline: Pipeline | None = None,
        seed: int | np.random.Generator | None = None,
        window: str | tuple[float, float] = "model",
        scale: Literal["unit", "float255"] = "float255",
        crop_body: bool = True,
        target_mm: float | None = 0.8,
        max_size: int = 512,
    ) -> Sample:
        """A key slice and its context, preprocessed for a model: a :class:`~deeplesion.transforms.Pipeline`.

        The default is the reference preprocessing (:data:`deeplesion.transforms.REFERENCE`): the body
        crop box of the key slice, a 2.5D stack of only that region, the window (``model`` = [-1024,
        3071] to 0-255), then a resize to ``target_mm`` per pixel with the long side at most ``max_size``.
        The keywords ``window``, ``scale``, ``crop_body``, ``target_mm`` (None: no resize) and
        ``max_size`` build that pipeline with other values; ``pipeline`` gives any other (augmentations
        included, drawn from ``seed``). A leading body crop and window are fused into building the stack
        (cropped before blending, windowed inside the blend): the same numbers, one pass less.

        Parameters
        ----------
        mode
            ``correct`` or ``reference``; in reference mode the context and every resize follow the
            dataset authors' code (boxes ``x' = s * x``), pixel for pixel.

        Returns
        -------
        Sample
            The (C, H', W') float32 image, the boxes of the key slice's lesions in image pixels, the
            transform, and the lesions.
        """
        chosen = pipeline or build_pipeline(
            crop_body=crop_body, window=window, scale=scale, target_mm=target_mm, max_size=max_size
        )
        body, _, rest = split_fusable(chosen.steps)
        lesion = self.lesion(which)
        cached_box = None
        if self.cache is not None and body == BodyCrop() and not any(isinstance(s, BodyCrop) for s in rest):
            cached_box = self.cache.key_box(lesion.folder, lesion.key_slice)  # the reference crop, cached
        key = None if cached_box is not None else self.key_slice(lesion)

        def make_stack(box: tuple[int, int, int, int], gain: float, offset: float) -> ContextStack:
            return self.context(
                lesion,
                slices=slices,
                interval_mm=interval_mm,
                mode=mode,
                crop_box=box,
                preloaded={lesion.key_slice: key} if key is not None else None,
                gain=gain,
                offset=offset,
            )

        record = preprocess_stack(
            chosen,
            key,
            make_stack,
            spacing_mm=lesion.spacing[0],
            rule="reference" if mode == "reference" else "centres",
            rng=seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed),
            box=cached_box,
        )
        on_slice = self.catalog.lesions_on(lesion.file_name) or [lesion]
        boxes = record.boxes_of([x.box for x in on_slice])
        return Sample(record.image, boxes, record.transform, on_slice)

    def volume(
        self, which: int | str | Lesion | Run, *, missing: Literal["error", "skip"] = "error"
    ) -> Volume:
        """The run holding a lesion's key slice (or the given :class:`Run`) as a (Z, H, W) int16 volume.

        Parameters
        ----------
        missing
            ``error`` (default): a slice of the run that is not on disk is an :class:`ImageError`;
            ``skip``: leave it out (``slice_numbers`` then has gaps).
        """
        if isinstance(which, Run):
            run = which
        else:
            lesion = self.lesion(which)
            run = Run(lesion.folder, *lesion.slice_range, lesion.spacing, lesion.image_size)
        on_disk = self.slice_numbers(run.folder)
        numbers = [n for n in run.slice_numbers if n in on_disk]
        absent = [n for n in run.slice_numbers if n not in on_disk]
        if absent and missing == "error":
            shown = ", ".join(f"{n:03d}.png" for n in absent[:5])
            raise ImageError(
                f"{self.images_dir / run.folder}: {len(absent)} slice(s) of run {run.first}-{run.last} "
                f"are not on disk ({shown}); pass missing='skip' to build the volume without them"
            )
        if not numbers:
            raise ImageError(
                f"{self.images_dir / run.folder}: no slice of run {run.first}-{run.last} on disk"
            )
        planes = [self.read_slice(run.folder, n, image_size=run.image_size) for n in numbers]
        return Volume(np.stack(planes), np.array(numbers, dtype=np.int64), run.spacing, run.folder)


def preprocess_stack(
    chosen: Pipeline,
    key_hu: npt.NDArray[np.int16] | None,
    make_stack: Callable[[tuple[int, int, int, int], float, float], ContextStack],
    *,
    spacing_mm: float,
    rng: np.random.Generator,
    rule: BoxRule = "centres",
    box: tuple[int, int, int, int] | None = None,
) -> Record:
    """Run ``chosen`` on a 2.5D stack, with a leading body crop and window fused into building the stack
    (cropped before blending, windowed inside the blend: the same numbers, one pass less).

    Parameters
    ----------
    chosen
        The pipeline.
    key_hu
        (H, W) int16 the key slice in HU (the body crop reads it); None only when ``box`` is given.
    make_stack
        ``make_stack(crop_box, gain, offset)``: the stack of that region, ``gain * HU + offset``
        (:func:`deeplesion.context.build_stack` or :meth:`Release.context`).
    spacing_mm
        The key slice's in-plane pixel size, mm.
    rng
        Draws of the pipeline's random steps.
    rule
        How resizes move coordinates.
    box
        The crop box when already known (a cached reference crop).

    Returns
    -------
    Record
        The (C, H', W') float32 image and the transform from the key slice's pixels.
    """
    body, windowing, rest = split_fusable(chosen.steps)
    if box is None:
        if key_hu is None:
            raise ValueError("preprocess_stack needs the key slice or the crop box")
        box = body.box(key_hu) if body is not None else (0, 0, key_hu.shape[1], key_hu.shape[0])
    gain, offset, top = windowing.gain_offset() if windowing is not None else (1.0, 0.0, 0.0)
    stack = make_stack(box, gain, offset)
    image = np.clip(stack.hu, 0.0, top, out=stack.hu) if windowing is not None else stack.hu
    record = Record(
        image, spacing_mm, crop_transform(box), rule=rule, key_hu=key_hu, windowed=windowing is not None
    )
    return Pipeline(chosen.name, rest)(record, rng)


def open_release(
    root: str | os.PathLike[str] | None = None,
    *,
    annotations: str | os.PathLike[str] | None = None,
    catalog: Catalog | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> Release:
    """Open a release folder (``deeplesion.open``); see :class:`Release`.

    Raises
    ------
    DataRootError
        No root given and ``DEEPLESION_ROOT`` unset, or the folder does not exist.
    """
    return Release(root, annotations=annotations, catalog=catalog, cache=cache)
