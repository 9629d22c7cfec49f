"""A synthetic DeepLesion release in the exact official layout (``deeplesion synth``).

What is written under the output folder::

    DL_info.csv                        the catalog's writer: exact header and cell formats
    Images_png/<PPPPPP_SS_RR>/<NNN>.png 16-bit grey, value = HU + 32768, %03d slice numbers
    Images_png_01.zip ...              with ``zips``: whole series folders, sorted members, fixed times
    MD5_checksums.txt                  with ``zips``: ``<md5>  <name>`` per zip and DL_info.csv
    synth-manifest.json                the parameters and every planted quirk (code and place)

Annotations are measured on the lesion actually drawn on the key slice (RECIST from its mask), so a
detector trained here learns what the CSV says. The same seed gives the same files within one
installation (OpenCV's PNG encoder is part of that installation).
"""

from __future__ import annotations

import json
import logging
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deeplesion.catalog import (
    BOX_PADDING_PX,
    DEFAULT_FILE_NAME,
    Lesion,
    LesionType,
    Split,
    dl_info_text,
    from_lesions,
)
from deeplesion.errors import UsageError
from deeplesion.io import file_digest, staged_dir
from deeplesion.measure import recist_from_mask
from deeplesion.names import IMAGES_DIR, key_file_name, series_folder, slice_path
from deeplesion.slices import encode_slice, read_slice_hu
from deeplesion.synth.phantom import (
    Body,
    Lesion3D,
    NoiseBank,
    SliceGeometry,
    lesion_mask,
    random_body,
    render_slice,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "synth-manifest.json"
CHECKSUMS_NAME = "MD5_checksums.txt"
ZIP_TIMESTAMP = (2018, 7, 27, 0, 0, 0)  # the date the release was re-zipped into whole-series archives
CONTEXT_MM = 30.0  # each key slice brings about +-30 mm of neighbours, more for large lesions
INTERVALS_MM = (5.0, 1.0, 2.0, 2.5)
INTERVAL_WEIGHTS = (0.64, 0.14, 0.11, 0.11)
NOISE_SIGMA_HU = 14.0

# lesion type -> (weight, normalized z range, diameter range mm, HU options)
LESION_KINDS: dict[str, tuple[float, tuple[float, float], tuple[float, float], tuple[float, ...]]] = {
    "lung": (0.20, (0.08, 0.30), (5.0, 30.0), (35.0,)),
    "mediastinum": (0.13, (0.10, 0.30), (8.0, 22.0), (45.0,)),
    "liver": (0.16, (0.38, 0.55), (10.0, 50.0), (12.0, 120.0)),
    "abdomen": (0.14, (0.60, 0.80), (10.0, 45.0), (80.0, 0.0)),
    "kidney": (0.07, (0.50, 0.58), (8.0, 24.0), (5.0, 45.0)),
    "pelvis": (0.10, (0.80, 0.90), (10.0, 40.0), (80.0,)),
    "bone": (0.08, (0.12, 0.85), (6.0, 16.0), (20.0, 950.0)),
    "soft_tissue": (0.12, (0.12, 0.90), (8.0, 30.0), (40.0,)),
}

QUIRKS = (
    "nan-age",
    "missing-slice",
    "unreadable-png",
    "png-8bit",
    "size-768",
    "fractional-window",
    "box-past-edge",
    "slice-number-1000",
)
"""The quirks ``--quirks`` plants, each a real oddity of the release."""


@dataclass
class SeriesPlan:
    """One series of one study: its geometry, its lesions and which slices get written."""

    patient: int
    study: int
    series: int
    geometry: SliceGeometry
    interval: float
    z_first: float  # z (mm) of slice number 1
    slice_count: int
    lesions: list[Lesion3D]  # what is drawn (the patient's lesions at this study's sizes)
    annotated: list[int]  # indices into lesions that get a DL_info row
    age: float | None
    key_slices: dict[int, int] = field(default_factory=dict)  # lesion index -> slice number
    runs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def folder(self) -> str:
        """``PPPPPP_SS_RR``."""
        return series_folder(self.patient, self.study, self.series)

    def z_of(self, slice_number: int) -> float:
        """Height (mm) of a slice number."""
        return self.z_first + (slice_number - 1) * self.interval

    def slice_of(self, z: float) -> int:
        """Nearest slice number of height ``z`` mm."""
        return round((z - self.z_first) / self.interval) + 1


@dataclass
class PatientPlan:
    """A patient: anatomy, demographics, split and series."""

    index: int
    body: Body
    sex: str
    split: Split
    series: list[SeriesPlan]
    lesions: list[Lesion3D] = field(default_factory=list)  # the 3D lesions, in identity order

    def lesion_id(self, lesion: Lesion3D) -> str:
        """The identity of a 3D lesion across this patient's studies: ``PPPPPP-LNN`` by its place in
        :attr:`lesions` (studies change its size, never its centre); ``PPPPPP-XNN`` for a lesion drawn
        in one quirk series only."""
        for number, known in enumerate(self.lesions, 1):
            if known.center == lesion.center:
                return f"{self.index:06d}-L{number:02d}"
        extra = [x for x in self.extra_lesions if x.center == lesion.center]
        if not extra:
            self.extra_lesions.append(lesion)
        return f"{self.index:06d}-X{self.extra_lesions.index(extra[0] if extra else lesion) + 1:02d}"

    extra_lesions: list[Lesion3D] = field(default_factory=list)


def _cavity(body: Body, z: float) -> tuple[float, float]:
    """Semi-axes (mm) of the body cavity at height z, as the phantom draws it."""
    bx, by = body.outline(z)
    return bx - body.fat_mm - 9.0, by - body.fat_mm * 0.8 - 9.0


def _place_lesion(body: Body, kind: str, rng: np.random.Generator, z: float | None = None) -> Lesion3D:
    """A lesion of ``kind`` inside the organ the phantom draws for it."""
    _, zrange, (dmin, dmax), hus = LESION_KINDS[kind]
    if z is None:
        z = float(rng.uniform(*zrange)) * body.length_mm
    ix, iy = _cavity(body, z)
    side = float(rng.choice([-1.0, 1.0]))
    diameter = float(rng.uniform(dmin, dmax))
    u, v = rng.uniform(-1.0, 1.0, 2)
    if kind == "lung":
        x, y = side * 0.48 * ix + u * 0.18 * ix, 0.05 * iy + v * 0.35 * iy
    elif kind == "mediastinum":
        x, y = side * 0.06 * ix, 0.15 * iy + v * 0.1 * iy
    elif kind == "liver":
        x, y = -0.42 * ix + u * 0.15 * ix, -0.02 * iy + v * 0.25 * iy
    elif kind == "abdomen":
        x, y = u * 0.35 * ix, -0.15 * iy + v * 0.25 * iy
    elif kind == "kidney":
        x, y = side * 0.45 * ix, 0.48 * iy
    elif kind == "pelvis":
        x, y = side * 0.30 * ix, -0.05 * iy + v * 0.1 * iy
    elif kind == "bone":
        x, y = 0.0, 0.68 * iy
    else:  # soft tissue: in the subcutaneous fat, somewhere around the outline
        bx, by = body.outline(z)
        phi = float(rng.uniform(0.2, math.pi - 0.2)) * side
        depth = body.fat_mm * 0.5
        x, y = (bx - depth) * math.sin(phi), -(by - depth) * math.cos(phi)
        diameter = min(diameter, max(body.fat_mm * 1.4, 8.0))
    radius = diameter / 2.0
    elongation = float(rng.uniform(0.65, 1.0))
    return Lesion3D(
        center=(float(x), float(y), float(z)),
        semi_axes=(radius, radius * elongation, max(radius * float(rng.uniform(0.8, 1.2)), 3.0)),
        angle=float(rng.uniform(0.0, math.pi)),
        hu=float(rng.choice(hus)),
        kind=kind,
    )


def _overlaps(new: Lesion3D, others: list[Lesion3D]) -> bool:
    for other in others:
        gap = math.dist(new.center, other.center)
        if gap < new.semi_axes[0] + other.semi_axes[0] + 4.0:
            return True
    return False


def _patient_lesions(body: Body, rng: np.random.Generator) -> list[Lesion3D]:
    kinds = list(LESION_KINDS)
    weights = np.array([LESION_KINDS[k][0] for k in kinds])
    lesions: list[Lesion3D] = []
    for _ in range(int(rng.integers(2, 6))):
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        # sometimes put the lesion on the height of an earlier one: several lesions on one key slice
        same_z = None
        if lesions and rng.random() < 0.3:
            same_z = lesions[-1].center[2]
            zr = LESION_KINDS[kind][1]
            if not zr[0] <= same_z / body.length_mm <= zr[1]:
                same_z = None
        for _attempt in range(12):
            candidate = _place_lesion(body, kind, rng, same_z)
            if not _overlaps(candidate, lesions):
                lesions.append(candidate)
                break
    return lesions


def _grown(lesion: Lesion3D, factor: float) -> Lesion3D:
    a, b, c = lesion.semi_axes
    return Lesion3D(
        lesion.center, (a * factor, b * factor, max(c * factor, 3.0)), lesion.angle, lesion.hu, lesion.kind
    )


def _splits(patients: int, rng: np.random.Generator) -> list[Split]:
    """Patient-level split, about 70/15/15, every split present when there are 3 or more patients."""
    if patients < 3:
        return [Split.TRAIN, Split.TEST][:patients]
    n_val = max(1, round(patients * 0.15))
    n_test = max(1, round(patients * 0.15))
    splits = [Split.VAL] * n_val + [Split.TEST] * n_test + [Split.TRAIN] * (patients - n_val - n_test)
    order = rng.permutation(patients)
    return [splits[i] for i in order]


def plan_release(patients: int, seed: int, *, quirks: bool = False) -> list[PatientPlan]:
    """Decide every patient, study, series, lesion and written slice (no pixels yet)."""
    if patients < 1:
        raise UsageError("`patients` must be at least 1")
    split_rng = np.random.default_rng([seed, 0])
    splits = _splits(patients, split_rng)
    plans = []
    for p in range(patients):
        index = p + 1
        rng = np.random.default_rng([seed, index])
        body = random_body(rng)
        lesions = _patient_lesions(body, rng)
        sex = str(rng.choice(["M", "F"]))
        base_age = float(rng.integers(25, 86))
        n_studies = int(rng.choice([1, 2, 3], p=[0.2, 0.45, 0.35]))
        series_plans = []
        for s in range(n_studies):
            growth = 1.0 if s == 0 else float(rng.uniform(0.7, 1.3))
            interval = float(rng.choice(INTERVALS_MM, p=INTERVAL_WEIGHTS))
            series_plans.append(
                _series_plan(
                    index,
                    s + 1,
                    2 if rng.random() < 0.1 else 1,
                    body,
                    [_grown(x, growth) for x in lesions],
                    interval,
                    base_age + s * float(rng.uniform(0.2, 1.5)),
                    rng,
                )
            )
        plans.append(PatientPlan(index, body, sex, splits[p], series_plans, list(lesions)))
    if quirks:
        _plan_quirk_series(plans, seed)
    for plan in plans:
        plan.series = [s for s in plan.series if s.annotated]
        for series in plan.series:
            _plan_runs(series)
    return plans


def _series_plan(
    patient: int,
    study: int,
    series: int,
    body: Body,
    lesions: list[Lesion3D],
    interval: float,
    age: float,
    rng: np.random.Generator,
    *,
    size: int = 512,
    scan: str | None = None,
    spacing: float | None = None,
    z_first: float | None = None,
) -> SeriesPlan:
    scan = scan or str(rng.choice(["cap", "cap", "chest", "abdomen"]))
    length = body.length_mm
    z_start, z_end = {
        "cap": (-20.0, length + 20.0),
        "chest": (-30.0, 0.45 * length),
        "abdomen": (0.28 * length, length + 20.0),
    }[scan]
    if z_first is not None:
        z_start = z_first
    # the scanner's field of view fits the body: spacing 0.6-0.98 mm for a 512 px image
    if spacing is None:
        spacing = 2.0 * body.half_width_mm * float(rng.uniform(1.02, 1.15)) / size
        # field-of-view steps of 1 mm, written with 6 digits like the release (0.742188 = 380 mm / 512)
        spacing = round(float(np.clip(round(spacing * size) / size, 0.6, 0.98)), 6)
    geometry = SliceGeometry(size=size, spacing=spacing, outside_hu=float(rng.choice([-1024.0, -3024.0])))
    count = int((z_end - z_start) // interval) + 1
    inside = [i for i, x in enumerate(lesions) if z_start + 5.0 < x.center[2] < z_end - 5.0]
    annotated = [i for i in inside if rng.random() < 0.85] or inside[:1]
    return SeriesPlan(
        patient, study, series, geometry, interval, z_start, count, lesions, annotated, round(age)
    )


def _plan_quirk_series(plans: list[PatientPlan], seed: int) -> None:
    """Add the series that carry image-level quirks: a 768 px series, and a 1 mm whole-body series whose
    slice numbers pass 1000 with a soft-tissue lesion at the image edge (a body wider than the scan)."""
    rng = np.random.default_rng([seed, 999])
    first = plans[0]
    study = len(first.series) + 1
    body = first.body
    big = _series_plan(
        first.index, study, 1, body, list(first.series[0].lesions), 5.0, 60.0, rng, size=768, scan="cap"
    )
    big.annotated = list(range(len(big.lesions)))
    first.series.append(big)

    host = plans[min(1, len(plans) - 1)]
    body = host.body
    z = 0.5 * body.length_mm
    size, spacing = 512, round(max(0.95 * body.half_width_mm / 256, 0.6), 6)
    col = size - 1 - 4  # 4 px inside the right edge; the padded box must leave the image
    x_mm = (col - (size - 1) / 2.0) * spacing
    edge = Lesion3D((x_mm, 0.0, z), (5.0, 4.0, 5.0), 0.0, 40.0, "soft_tissue")
    lesions = [x for x in host.series[0].lesions if not _overlaps(edge, [x])] + [edge]
    wide = _series_plan(
        host.index,
        len(host.series) + 1,
        1,
        body,
        lesions,
        1.0,
        61.0,
        rng,
        scan="cap",
        spacing=spacing,
        z_first=-760.0,
    )
    wide.annotated = [len(lesions) - 1]
    host.series.append(wide)


def _plan_runs(series: SeriesPlan) -> None:
    """Key slice per annotated lesion, and the merged runs of about +-30 mm around them."""
    spans = []
    for i in series.annotated:
        lesion = series.lesions[i]
        key = min(max(series.slice_of(lesion.center[2]), 1), series.slice_count)
        series.key_slices[i] = key
        reach_mm = max(CONTEXT_MM, 1.2 * 2.0 * lesion.semi_axes[0])
        half = math.ceil(reach_mm / series.interval)
        spans.append((max(1, key - half), min(series.slice_count, key + half)))
    runs: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if runs and start <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    series.runs = runs


def _run_of(series: SeriesPlan, slice_number: int) -> tuple[int, int]:
    return next(r for r in series.runs if r[0] <= slice_number <= r[1])


@dataclass
class SynthResult:
    """What :func:`make_synthetic_release` wrote."""

    root: Path
    patients: int
    lesions: int
    key_slices: int
    slices: int
    bytes_written: int
    zips: list[str]
    quirks: list[dict[str, Any]]


def make_synthetic_release(
    out: str | os.PathLike[str],
    *,
    patients: int = 20,
    seed: int = 0,
    zips: bool = False,
    quirks: bool = False,
    force: bool = False,
    zip_target_bytes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Generate a synthetic release in the official layout.

    Parameters
    ----------
    out
        Output folder; refused when not empty unless ``force`` (then replaced once the new one is done).
    patients
        Number of patients (about 120 slices and 2-3 lesions each).
    seed
        Random seed: the same seed gives the same files.
    zips
        Also write ``Images_png_NN.zip`` archives (at least two) and ``MD5_checksums.txt``.
    quirks
        Plant the real oddities listed in :data:`QUIRKS`; each is recorded in ``synth-manifest.json``.
    zip_target_bytes
        Aim for archives of about this size (default: split the images into two or more equal parts).
    progress
        Called as ``progress(done, total)`` after each slice.

    Returns
    -------
    SynthResult
        Counts, the archive names and the planted quirks.
    """
    plans = plan_release(patients, seed, quirks=quirks)
    total = sum(end - start + 1 for p in plans for s in p.series for start, end in s.runs)
    with staged_dir(Path(out), force=force) as stage:
        records: list[Lesion] = []
        ages: list[str] = []
        lesion_ids: list[str] = []
        slices_written = 0
        for plan in plans:
            for series in plan.series:
                rows, count = _write_series(stage, plan, series, seed, progress, slices_written, total)
                slices_written += count
                for lesion, age, lesion_id in rows:
                    records.append(lesion)
                    ages.append(age)
                    lesion_ids.append(lesion_id)
        _mark_noisy(records, seed)
        planted = _plant_quirks(stage, plans, records, ages, seed) if quirks else []
        catalog = from_lesions(records, ages=ages)
        (stage / DEFAULT_FILE_NAME).write_text(dl_info_text(catalog), encoding="utf-8", newline="")
        archive_names = _write_zips(stage, zip_target_bytes) if zips else []
        manifest = {
            "generator": "deeplesion synth",
            "seed": seed,
            "patients": patients,
            "rows": len(records),
            "key_slices": catalog.num_key_slices,
            "slices": slices_written - sum(q["quirk"] == "missing-slice" for q in planted),
            "zips": archive_names,
            "quirks": planted,
            "lesion_ids": lesion_ids,
            "lesions": _lesion_truth(plans),
        }
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        size = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
    return SynthResult(
        Path(out),
        patients,
        len(records),
        catalog.num_key_slices,
        manifest["slices"],
        size,
        archive_names,
        planted,
    )


def _lesion_truth(plans: list[PatientPlan]) -> dict[str, dict[str, Any]]:
    """For each 3D lesion id: its type, and per study that draws it the true centre (x, y, z, mm, body
    coordinates: x to the patient's left, y to the back, z from the top of the body) and its three
    diameters (mm, the ellipsoid's full axes at that study)."""
    truth: dict[str, dict[str, Any]] = {}
    for plan in plans:
        for series in plan.series:
            for lesion in series.lesions:
                entry = truth.setdefault(plan.lesion_id(lesion), {"type": lesion.kind, "studies": {}})
                entry["studies"][str(series.study)] = {
                    "centre_mm": [round(v, 3) for v in lesion.center],
                    "diameters_mm": [round(2 * v, 3) for v in lesion.semi_axes],
                }
    return truth


def _write_series(
    root: Path,
    plan: PatientPlan,
    series: SeriesPlan,
    seed: int,
    progress: Callable[[int, int], None] | None,
    done: int,
    total: int,
) -> tuple[list[tuple[Lesion, str, str]], int]:
    """Render and write every slice of the series' runs; measure its key slices (each row with the
    identity of the 3D lesion it measures)."""
    rng = np.random.default_rng([seed, plan.index, series.study, series.series, 7])
    noise = NoiseBank(series.geometry.size, NOISE_SIGMA_HU, rng)
    folder = root / IMAGES_DIR / series.folder
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for start, end in series.runs:
        for number in range(start, end + 1):
            hu = render_slice(plan.body, series.geometry, series.z_of(number), series.lesions, noise, rng)
            (folder / f"{number:03d}.png").write_bytes(encode_slice(hu))
            count += 1
            if progress is not None:
                progress(done + count, total)
    rows = []
    for i in series.annotated:
        lesion = _measure(plan, series, i, rng)
        if lesion is not None:
            age = "NaN" if series.age is None else str(int(series.age))
            rows.append((lesion, age, plan.lesion_id(series.lesions[i])))
    rows.sort(key=lambda r: (r[0].key_slice, r[0].recist[0, 0]))
    return rows, count


def _measure(plan: PatientPlan, series: SeriesPlan, index: int, rng: np.random.Generator) -> Lesion | None:
    """The DL_info row of one lesion, measured on its mask on the key slice (None if it is too small)."""
    lesion3d = series.lesions[index]
    key = series.key_slices[index]
    geometry = series.geometry
    z = series.z_of(key)
    rows, cols, mask = lesion_mask(lesion3d, geometry, z)
    if mask.sum() < 4:
        log.debug("lesion %d of %s is too small on slice %d; not annotated", index, series.folder, key)
        return None
    recist = recist_from_mask(mask) + np.array([cols.start, rows.start], dtype=np.float64)
    # readers click between pixel centres: a little sub-pixel jitter, kept on the lesion's boundary pixel
    recist = np.round(recist + rng.uniform(-0.3, 0.3, recist.shape), 3)
    box = np.round(np.concatenate([recist.min(0) - BOX_PADDING_PX, recist.max(0) + BOX_PADDING_PX]), 3)
    diameters = (
        round(float(np.linalg.norm(recist[0] - recist[1])), 4),
        round(float(np.linalg.norm(recist[2] - recist[3])), 4),
    )
    bx, by = plan.body.outline(z)
    location = tuple(
        round(float(np.clip(v, 0.0, 1.0)), 6)
        for v in (
            (lesion3d.center[0] + bx) / (2 * bx),
            (lesion3d.center[1] + by) / (2 * by),
            z / plan.body.length_mm,
        )
    )
    kind = lesion3d.kind
    window = (-1500.0, 500.0) if kind == "lung" else (-175.0, 275.0)
    return Lesion(
        file_name=key_file_name(series.patient, series.study, series.series, key),
        patient=series.patient,
        study=series.study,
        series=series.series,
        key_slice=key,
        recist=recist,
        box=box,
        diameters_px=diameters,
        location=location,  # type: ignore[arg-type]
        lesion_type=LesionType.parse(kind) if plan.split is not Split.TRAIN else LesionType.UNKNOWN,
        noisy=False,
        slice_range=_run_of(series, key),
        spacing=(geometry.spacing, geometry.spacing, series.interval),
        image_size=(geometry.size, geometry.size),
        window=window,
        sex=plan.sex,
        age=series.age,
        split=plan.split,
        row=0,
        lesion_index=None,
    )


def _mark_noisy(records: list[Lesion], seed: int) -> None:
    """Flag about 1 in 60 rows as Possibly_noisy (at least one from 10 rows), as the release has a few."""
    if len(records) < 10:
        return
    rng = np.random.default_rng([seed, 77])
    count = max(1, round(len(records) / 60))
    for i in rng.choice(len(records), count, replace=False):
        records[int(i)] = _replace(records[int(i)], noisy=True)


def _replace(lesion: Lesion, **changes: Any) -> Lesion:
    from dataclasses import replace

    return replace(lesion, **changes)


def _plant_quirks(
    root: Path, plans: list[PatientPlan], records: list[Lesion], ages: list[str], seed: int
) -> list[dict[str, Any]]:
    """Plant the row-level and file-level quirks; return the manifest entries (line = CSV line)."""
    import cv2

    rng = np.random.default_rng([seed, 4242])
    planted: list[dict[str, Any]] = []
    csv = DEFAULT_FILE_NAME

    def entry(quirk: str, code: str, **where: Any) -> None:
        planted.append({"quirk": quirk, "code": code, **where})

    for i, lesion in enumerate(records):
        if lesion.image_size[0] == 768:
            entry(
                "size-768",
                "size-not-512",
                file=csv,
                line=i + 2,
                file_name=lesion.file_name,
                path=f"{IMAGES_DIR}/{lesion.folder}",
            )
            break
    for i, lesion in enumerate(records):
        if lesion.key_slice >= 1000:
            entry(
                "slice-number-1000",
                "slice-number-wide",
                file=csv,
                line=i + 2,
                file_name=lesion.file_name,
                path=f"{IMAGES_DIR}/{lesion.folder}",
            )
        if lesion.box[2] > lesion.image_size[0] - 1 or lesion.box[0] < 0:
            entry("box-past-edge", "box-outside-image", file=csv, line=i + 2, file_name=lesion.file_name)
    ordinary = [i for i, x in enumerate(records) if x.image_size[0] == 512 and x.key_slice < 1000]
    nan_row, window_row = int(ordinary[0]), int(ordinary[-1])
    ages[nan_row] = "NaN"
    records[nan_row] = _replace(records[nan_row], age=None)
    entry("nan-age", "age-missing", file=csv, line=nan_row + 2, file_name=records[nan_row].file_name)
    records[window_row] = _replace(records[window_row], window=(-177.5, 307.5))
    entry(
        "fractional-window",
        "window-fractional",
        file=csv,
        line=window_row + 2,
        file_name=records[window_row].file_name,
    )

    # file-level quirks on non-key slices strictly inside a run, in different series where possible
    keys = {(x.folder, x.key_slice) for x in records}
    candidates = []
    for plan in plans:
        for series in plan.series:
            if series.geometry.size != 512:
                continue
            for start, end in series.runs:
                inner = [n for n in range(start + 1, end) if (series.folder, n) not in keys]
                if inner:
                    candidates.append((series.folder, inner))
    if len(candidates) < 3:
        raise UsageError(
            "too few series to plant the file quirks; use `patients=3` or more with `quirks=True`"
        )
    picks = [candidates[int(i)] for i in rng.choice(len(candidates), 3, replace=False)]
    targets = [(folder, int(inner[len(inner) // 2])) for folder, inner in picks]
    (folder, number), (folder2, number2), (folder3, number3) = targets
    path = root / slice_path(folder, number)
    path.unlink()
    entry("missing-slice", "slice-missing", path=slice_path(folder, number))
    path = root / slice_path(folder2, number2)
    path.write_bytes(path.read_bytes()[:300])  # a download cut short
    entry("unreadable-png", "png-unreadable", path=slice_path(folder2, number2))
    path = root / slice_path(folder3, number3)
    hu = read_slice_hu(path).astype(np.float32)
    eight_bit = np.clip((hu + 1024) / 4095 * 255, 0, 255).astype(np.uint8)
    _, data = cv2.imencode(".png", eight_bit)
    path.write_bytes(bytes(data))
    entry("png-8bit", "png-bit-depth", path=slice_path(folder3, number3))
    return planted


def _write_zips(root: Path, target_bytes: int | None) -> list[str]:
    """Pack whole series folders into ``Images_png_NN.zip`` (sorted members, fixed timestamps)."""
    folders = sorted(p for p in (root / IMAGES_DIR).iterdir() if p.is_dir())
    sizes = [sum(f.stat().st_size for f in folder.iterdir()) for folder in folders]
    total = sum(sizes)
    parts = max(2, math.ceil(total / target_bytes)) if target_bytes else 2
    parts = min(parts, len(folders)) if len(folders) >= 2 else 1
    groups: list[list[Path]] = [[] for _ in range(parts)]
    running = 0
    for folder, size in zip(folders, sizes, strict=True):
        # contiguous groups of about equal size, as the release's archives hold consecutive patients
        groups[min(int(running * parts / max(total, 1)), parts - 1)].append(folder)
        running += size
    names = []
    for number, group in enumerate((g for g in groups if g), 1):
        name = f"Images_png_{number:02d}.zip"
        with zipfile.ZipFile(root / name, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for folder in group:
                for file in sorted(folder.iterdir()):
                    info = zipfile.ZipInfo(f"{IMAGES_DIR}/{folder.name}/{file.name}", date_time=ZIP_TIMESTAMP)
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, file.read_bytes())
        names.append(name)
    lines = [f"{file_digest(root / name, 'md5')}  {name}" for name in [*names, DEFAULT_FILE_NAME]]
    # the official list has no newline after its last line; neither does this one
    (root / CHECKSUMS_NAME).write_text("\n".join(lines), encoding="ascii")
    return names
