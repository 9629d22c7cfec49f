"""A tiny hand-made release for exact image tests: every pixel of slice N holds ``10 * N`` HU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeplesion.catalog import Lesion, LesionType, Split, dl_info_text, from_lesions
from deeplesion.names import key_file_name
from deeplesion.slices import encode_slice


def constant_slice(number: int, size: int = 64) -> np.ndarray:
    return np.full((size, size), 10 * number, dtype=np.int16)


def lesion_row(
    folder: tuple[int, int, int], key: int, first: int, last: int, interval: float, size: int = 64
) -> Lesion:
    recist = np.array([[20.0, 30.0], [40.0, 30.0], [30.0, 25.0], [30.0, 35.0]])
    return Lesion(
        file_name=key_file_name(*folder, key),
        patient=folder[0],
        study=folder[1],
        series=folder[2],
        key_slice=key,
        recist=recist,
        box=np.array([15.0, 20.0, 45.0, 40.0]),
        diameters_px=(20.0, 10.0),
        location=(0.5, 0.5, 0.5),
        lesion_type=LesionType.LIVER,
        noisy=False,
        slice_range=(first, last),
        spacing=(0.8, 0.8, interval),
        image_size=(size, size),
        window=(-175.0, 275.0),
        sex="F",
        age=50.0,
        split=Split.TEST,
        row=0,
        lesion_index=None,
    )


def build(root: Path, rows: list[Lesion], slices: dict[str, list[int]], size: int = 64) -> Path:
    """Write ``DL_info.csv`` with ``rows`` and, per folder, the listed slice numbers."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "DL_info.csv").write_text(dl_info_text(from_lesions(rows)))
    for folder, numbers in slices.items():
        directory = root / "Images_png" / folder
        directory.mkdir(parents=True, exist_ok=True)
        for number in numbers:
            (directory / f"{number:03d}.png").write_bytes(encode_slice(constant_slice(number, size)))
    return root
