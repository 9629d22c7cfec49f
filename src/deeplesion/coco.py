"""COCO conventions shared by the COCO export and the evaluation of COCO-format predictions.

Image ids are derived from the slice name, so they are the same in every export, whatever subset it
holds: ``000001_01_01_109.png`` -> ``1_01_01_00109`` -> ``1010100109`` (patient, then 2 digits of study,
2 of series, 5 of slice number; at most about 4.4e12, exact in JSON and JavaScript).

Boxes: COCO's ``[x, y, w, h]`` is written from the project's 0-based ``x1, y1, x2, y2`` as
``[x1, y1, x2 - x1, y2 - y1]`` and read back as ``x2 = x + w``, so a round trip is exact.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from deeplesion.boxes import to_coco
from deeplesion.catalog import CSV_PIXEL_ORIGIN, Catalog, LesionType, Split
from deeplesion.errors import UsageError
from deeplesion.names import coco_image_id

# --- export -------------------------------------------------------------------------------------------

COCO_TYPE_CATEGORIES = ("bone", "abdomen", "mediastinum", "liver", "lung", "kidney", "soft_tissue", "pelvis")


def coco_document(
    catalog: Catalog,
    *,
    split: str | Split | None = None,
    frame: str = "project",
    categories: str = "lesion",
    exclude_noisy: bool = False,
) -> dict[str, Any]:
    """The catalog's key slices and lesions as a COCO detection dataset.

    Parameters
    ----------
    split
        Only this split (default: all rows).
    frame
        ``project`` (0-based pixels, default) or ``csv`` (the release's 1-based frame) for bbox and RECIST.
    categories
        ``lesion`` (one category) or ``type`` (the 8 coarse types; rows of unknown type are an error).
    exclude_noisy
        Leave out possibly-noisy rows (otherwise they carry ``"noisy": 1``).

    Returns
    -------
    dict
        ``info``, ``images`` (file name ``<series>/<NNN>.png``, width, height, slice_no, spacing,
        slice_intv, z_position, windows), ``annotations`` (bbox ``[x, y, w, h]`` with ``w = x2 - x1``, area
        ``w * h``, id = row + 1, recist, diameters_mm, row, noisy, lesion_type) and ``categories``.
        Image ids are :func:`coco_image_id` of the slice (never 0, the same in every export).
    """
    from deeplesion import __version__

    if frame not in ("project", "csv"):
        raise UsageError(f"`frame={frame!r}`: use project or csv")
    if categories not in ("lesion", "type"):
        raise UsageError(f"`categories={categories!r}`: use lesion or type")
    rows = catalog.filter(split=split) if split is not None else catalog
    if exclude_noisy:
        rows = rows.filter(noisy=False)
    if categories == "type" and (rows.lesion_type == int(LesionType.UNKNOWN)).any():
        first = int(np.flatnonzero(rows.lesion_type == int(LesionType.UNKNOWN))[0])
        raise UsageError(
            f"`categories='type'`: {int((rows.lesion_type == -1).sum())} row(s) have no lesion type "
            f"(for example {rows.file_name[first]}, line {int(rows.row[first]) + 2}); types exist on val and "
            "test rows only: add `split='val'` or `split='test'`"
        )
    shift = 0.0 if frame == "project" else CSV_PIXEL_ORIGIN
    xywh = to_coco(rows.box + shift)
    recist = rows.recist.reshape(-1, 8) + shift
    images: dict[str, dict[str, Any]] = {}
    annotations = []
    for i, lesion in enumerate(rows):
        image_id = coco_image_id(lesion.file_name)
        if lesion.file_name not in images:
            images[lesion.file_name] = {
                "id": image_id,
                "file_name": f"{lesion.folder}/{lesion.key_slice:03d}.png",
                "width": lesion.image_size[0],
                "height": lesion.image_size[1],
                "slice_no": lesion.key_slice,
                "spacing": lesion.spacing[0],
                "slice_intv": lesion.slice_interval_mm,
                "z_position": lesion.location[2],
                "windows": list(lesion.window),
            }
        x1, y1, w, h = (float(v) for v in xywh[i])
        annotations.append(
            {
                "id": lesion.row + 1,
                "image_id": image_id,
                "category_id": 1 if categories == "lesion" else int(lesion.lesion_type),
                "bbox": [x1, y1, w, h],
                "area": w * h,
                "iscrowd": 0,
                "segmentation": [],
                "noisy": int(lesion.noisy),
                "recist": [float(v) for v in recist[i]],
                "diameters_mm": [round(lesion.long_diameter_mm, 4), round(lesion.short_diameter_mm, 4)],
                "lesion_type": lesion.lesion_type.label,
                "row": lesion.row,
            }
        )
    if categories == "lesion":
        category_list = [{"id": 1, "name": "lesion", "supercategory": "lesion"}]
    else:
        category_list = [
            {"id": int(LesionType.parse(name)), "name": name, "supercategory": "lesion"}
            for name in COCO_TYPE_CATEGORIES
        ]
    return {
        "info": {
            "description": "DeepLesion (NIH Clinical Center) key slices, exported by deeplesion",
            "version": __version__,
            "source": catalog.source,
            "split": None if split is None else Split.parse(split).label,
            "frame": frame,
            "image_ids": "derived from the slice name: 000001_01_01_109.png -> 1010100109",
            "bbox": "[x, y, w, h] with w = x2 - x1, h = y2 - y1",
        },
        "images": sorted(images.values(), key=lambda im: im["id"]),
        "annotations": annotations,
        "categories": category_list,
    }


def write_key_slice_images(
    root: str | os.PathLike[str],
    catalog: Catalog,
    images_dir: str | os.PathLike[str],
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """8-bit 3-channel PNGs of the key slices for tools that cannot read 16-bit.

    The channels, in RGB order, are the key slice 2 mm above, the key slice and 2 mm below (interpolated
    as :mod:`deeplesion.context` does), windowed to [-1024, 3071] HU. Files go to
    ``images_dir/<series>/<NNN>.png``, the ``file_name`` of the COCO images. Returns the number written.
    """
    from deeplesion.release import open_release
    from deeplesion.viz import write_png
    from deeplesion.windowing import apply_window

    release = open_release(root, catalog=catalog)
    groups = catalog.key_slice_groups()
    written = 0
    for done, positions in enumerate(groups.values(), 1):
        lesion = catalog[int(positions[0])]
        target = Path(images_dir) / lesion.folder / f"{lesion.key_slice:03d}.png"
        if target.exists() and not force:
            continue
        stack = release.context(lesion, slices=3, interval_mm=2.0)
        rgb = apply_window(stack.hu, "model", scale="uint8")
        write_png(target, np.transpose(rgb, (1, 2, 0)))  # channels (key - 2 mm, key, key + 2 mm) as RGB
        written += 1
        if progress:
            progress(done, len(groups))
    return written
