"""Internal-consistency checks of ``DL_info.csv`` rows, reported as :class:`~deeplesion.findings.Finding`.

Every check is vectorised over the whole catalog (the 29k-row union checks in well under a second) and
tolerant: real quirks (a NaN age, 768/1024 px images, a 22.5 mm slice interval, boxes past the image
edge) are notes or warnings, never crashes. Lines are 1-based file lines (the header is line 1).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import numpy.typing as npt

from deeplesion.boxes import outside_image
from deeplesion.catalog import BOX_PADDING_PX, Catalog, Split
from deeplesion.findings import Finding, make_finding
from deeplesion.names import folder_of, key_file_name

TOLERANCE_PX = 0.01
"""Allowed disagreement, in pixels, between a box or diameter and the RECIST endpoints."""

USUAL_INTERVAL_MM = (0.5, 10.0)
"""Slice intervals outside this range (inclusive) are reported as ``interval-unusual``."""

USUAL_AGE_YEARS = (0.0, 120.0)


def check_catalog(catalog: Catalog) -> list[Finding]:
    """Check every row of ``catalog`` and the rows against each other.

    Returns
    -------
    list of Finding
        The load findings of the catalog (extra columns, skipped rows) followed by one finding per
        problem, ordered by line.
    """
    findings = list(catalog.load_findings)
    row_findings = _row_checks(catalog) + _cross_row_checks(catalog)
    row_findings.sort(key=lambda f: (f.file or "", f.line or 0, f.code))
    return findings + row_findings


def _row_checks(cat: Catalog) -> list[Finding]:
    out: list[Finding] = []
    file = cat.source
    names = cat.file_name
    lines = cat.row + 2

    def emit(mask: npt.NDArray[np.bool_], code: str, column: str, describe: object) -> None:
        for i in np.flatnonzero(mask):
            message, value = describe(int(i))  # type: ignore[operator]
            out.append(
                make_finding(
                    code, f"{names[i]}: {message}", file=file, line=int(lines[i]), column=column, value=value
                )
            )

    expected = np.array(
        [
            key_file_name(int(p), int(s), int(r), int(k))
            for p, s, r, k in zip(cat.patient, cat.study, cat.series, cat.key_slice, strict=True)
        ],
        dtype=object,
    )
    emit(
        expected != names,
        "file-name-mismatch",
        "File_name",
        lambda i: (f"the index columns give {expected[i]}", names[i]),
    )

    first, last = cat.slice_range[:, 0], cat.slice_range[:, 1]
    emit(
        (cat.key_slice < first) | (cat.key_slice > last),
        "key-outside-range",
        "Key_slice_index",
        lambda i: (
            f"key slice {cat.key_slice[i]} is outside Slice_range {first[i]}-{last[i]}",
            str(cat.key_slice[i]),
        ),
    )

    # coordinates a file cut or garbled can hold (1e308, inf): one finding, and out of the geometric
    # checks below, whose arithmetic would overflow on them
    coordinates = np.concatenate([cat.recist_csv, cat.box_csv], axis=1)
    size = np.tile(cat.image_size.astype(np.float64), coordinates.shape[1] // 2)
    absurd = ~(np.isfinite(coordinates) & (coordinates >= -size) & (coordinates <= 2 * size)).all(axis=1)
    emit(
        absurd,
        "coordinate-absurd",
        "Measurement_coordinates",
        lambda i: (
            f"coordinates outside any {cat.image_size[i, 0]}x{cat.image_size[i, 1]} px image "
            f"(RECIST {', '.join(f'{v:.6g}' for v in cat.recist_csv[i])}; "
            f"box {', '.join(f'{v:.6g}' for v in cat.box_csv[i])})",
            ", ".join(f"{v:.6g}" for v in cat.recist_csv[i]),
        ),
    )
    sane = ~absurd

    recist = np.where(sane[:, None], cat.recist_csv, 0.0).reshape(-1, 4, 2)
    boxes = np.where(sane[:, None], cat.box_csv, 0.0)
    extent = np.concatenate([recist.min(axis=1) - BOX_PADDING_PX, recist.max(axis=1) + BOX_PADDING_PX], 1)
    box_error = np.abs(boxes - extent).max(axis=1)
    emit(
        sane & (box_error > TOLERANCE_PX),
        "box-not-recist-extent",
        "Bounding_boxes",
        lambda i: (
            f"box differs from the RECIST extent +{BOX_PADDING_PX:g} px by {box_error[i]:.3f} px "
            f"(expected {', '.join(f'{v:g}' for v in extent[i])})",
            ", ".join(f"{v:g}" for v in cat.box_csv[i]),
        ),
    )

    measured = np.stack(
        [
            np.linalg.norm(recist[:, 0] - recist[:, 1], axis=1),
            np.linalg.norm(recist[:, 2] - recist[:, 3], axis=1),
        ],
        axis=1,
    )
    with np.errstate(over="ignore", invalid="ignore"):  # an absurd diameter cell: reported as a mismatch
        diameter_error = np.abs(cat.diameters_px - measured).max(axis=1)
    emit(
        sane & ~(diameter_error <= TOLERANCE_PX),
        "diameter-mismatch",
        "Lesion_diameters_Pixel_",
        lambda i: (
            f"diameters differ from the endpoint distances ({measured[i, 0]:.3f}, "
            f"{measured[i, 1]:.3f} px) by {diameter_error[i]:.3f} px",
            ", ".join(f"{v:g}" for v in cat.diameters_px[i]),
        ),
    )

    spacing = cat.spacing
    emit(
        ~np.isfinite(spacing).all(axis=1) | (spacing <= 0).any(axis=1),
        "spacing-invalid",
        "Spacing_mm_px_",
        lambda i: ("spacing values must be positive mm", ", ".join(f"{v:g}" for v in spacing[i])),
    )
    emit(
        ~np.isclose(spacing[:, 0], spacing[:, 1], rtol=1e-6, atol=0),
        "spacing-anisotropic",
        "Spacing_mm_px_",
        lambda i: (
            f"x spacing {spacing[i, 0]:g} mm differs from y {spacing[i, 1]:g} mm",
            ", ".join(f"{v:g}" for v in spacing[i]),
        ),
    )
    low_mm, high_mm = USUAL_INTERVAL_MM
    interval = spacing[:, 2]
    emit(
        (interval > 0) & ((interval < low_mm) | (interval > high_mm)),
        "interval-unusual",
        "Spacing_mm_px_",
        lambda i: (
            f"slice interval {interval[i]:g} mm is outside the usual {low_mm:g}-{high_mm:g} mm",
            f"{interval[i]:g}",
        ),
    )

    window = cat.window
    emit(
        window[:, 0] >= window[:, 1],
        "window-invalid",
        "DICOM_windows",
        lambda i: (
            f"window low {window[i, 0]:g} HU is not below high {window[i, 1]:g} HU",
            f"{window[i, 0]:g}, {window[i, 1]:g}",
        ),
    )
    emit(
        (window % 1 != 0).any(axis=1),
        "window-fractional",
        "DICOM_windows",
        lambda i: ("window with fractional HU", f"{window[i, 0]:g}, {window[i, 1]:g}"),
    )

    size = cat.image_size
    emit(
        (size != 512).any(axis=1),
        "size-not-512",
        "Image_size",
        lambda i: (f"image is {size[i, 0]}x{size[i, 1]} px", f"{size[i, 0]}, {size[i, 1]}"),
    )
    box = cat.box
    outside = outside_image(box, size)
    emit(
        sane & outside,
        "box-outside-image",
        "Bounding_boxes",
        lambda i: (
            f"box (0-based {', '.join(f'{v:.1f}' for v in box[i])}) extends past the "
            f"{size[i, 0]}x{size[i, 1]} image; kept unclipped",
            ", ".join(f"{v:g}" for v in cat.box_csv[i]),
        ),
    )

    location = cat.location
    emit(
        np.asarray(((location < 0) | (location > 1)).any(axis=1)),
        "location-out-of-range",
        "Normalized_lesion_location",
        lambda i: ("normalized location outside [0, 1]", ", ".join(f"{v:g}" for v in location[i])),
    )

    evaluated = np.isin(cat.split, [int(Split.VAL), int(Split.TEST)])
    emit(
        evaluated & (cat.lesion_type == -1),
        "type-unknown-in-eval-split",
        "Coarse_lesion_type",
        lambda i: (f"{Split(int(cat.split[i])).label} row without a lesion type", "-1"),
    )
    emit(
        (cat.split == int(Split.TRAIN)) & (cat.lesion_type != -1),
        "type-on-train-row",
        "Coarse_lesion_type",
        lambda i: ("training row with a lesion type", str(cat.lesion_type[i])),
    )

    age = cat.age
    emit(np.isnan(age), "age-missing", "Patient_age", lambda i: ("age is missing", cat.age_text[i]))
    low_age, high_age = USUAL_AGE_YEARS
    emit(
        (age < low_age) | (age > high_age),
        "age-unusual",
        "Patient_age",
        lambda i: (f"age {age[i]:g} years is outside {low_age:g}-{high_age:g}", cat.age_text[i]),
    )
    emit(
        ~np.isin(cat.sex, ["M", "F"]),
        "sex-unknown",
        "Patient_gender",
        lambda i: ("Patient_gender is neither M nor F", cat.sex[i]),
    )
    return out


def _cross_row_checks(cat: Catalog) -> list[Finding]:
    out: list[Finding] = []
    file = cat.source
    names = cat.file_name.tolist()
    lines = (cat.row + 2).tolist()

    seen: dict[tuple[str, bytes], int] = {}
    for i, name in enumerate(names):
        key = (name, cat.recist_csv[i].tobytes())
        if key in seen:
            out.append(
                make_finding(
                    "duplicate-row",
                    f"{name}: same lesion as line {lines[seen[key]]}",
                    file=file,
                    line=lines[i],
                    column="Measurement_coordinates",
                )
            )
        else:
            seen[key] = i

    splits_of: dict[int, dict[int, int]] = defaultdict(dict)
    for i, (patient, split) in enumerate(zip(cat.patient.tolist(), cat.split.tolist(), strict=True)):
        splits_of[patient].setdefault(split, i)
    for patient, first_rows in splits_of.items():
        if len(first_rows) > 1:
            ordered = sorted(first_rows.items(), key=lambda kv: kv[1])
            where = ", ".join(f"{Split(s).label} (line {lines[r]})" for s, r in ordered)
            i = ordered[1][1]
            out.append(
                make_finding(
                    "patient-in-two-splits",
                    f"patient {patient} has rows in several splits: {where}",
                    file=file,
                    line=lines[i],
                    column="Train_Val_Test",
                    value=str(cat.split[i]),
                )
            )

    # Rows of one run (folder and Slice_range) must share the spacing and image size of that run.
    first_of_run: dict[tuple[str, int, int], int] = {}
    for i, name in enumerate(names):
        run = (folder_of(name), int(cat.slice_range[i, 0]), int(cat.slice_range[i, 1]))
        j = first_of_run.setdefault(run, i)
        if j != i and (
            not np.array_equal(cat.spacing[i], cat.spacing[j])
            or not np.array_equal(cat.image_size[i], cat.image_size[j])
        ):
            out.append(
                make_finding(
                    "series-inconsistent",
                    f"{name}: spacing or image size differs from line {lines[j]} of the same run "
                    f"({run[0]} slices {run[1]}-{run[2]})",
                    file=file,
                    line=lines[i],
                    column="Spacing_mm_px_",
                )
            )
    return out
