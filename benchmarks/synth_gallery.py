"""Gallery and realism table: one synthetic key slice per lesion type beside a real slice of that region.

Run: ``.venv/bin/python benchmarks/synth_gallery.py [--root SYNTH_ROOT] [--patients 40] [--seed 0]``
(without ``--root`` a release is generated in a temporary folder). Writes
``docs/images/synth-gallery.png`` (left: synthetic, right: real, both in the same window with the
annotation drawn) and prints, for the synthetic key slices and the 137 real slices of
``../shared/data/deeplesion/png16``, the tissue peaks, the noise level and how much of the image width
the body spans and how flat its back lies (:mod:`deeplesion.synth.realism`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from deeplesion.catalog import Catalog, Lesion, concat, load_catalog
from deeplesion.slices import read_slice_hu
from deeplesion.synth import make_synthetic_release
from deeplesion.synth.anatomy import REGIONS
from deeplesion.synth.realism import back_flatness, body_width_fraction, noise_sigma, tissue_peaks
from deeplesion.viz import draw_lesions, write_png
from deeplesion.windowing import resolve_window

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared/data/deeplesion"
OUT = ROOT / "docs/images/synth-gallery.png"
TILE = 384


def window_for(kind: str) -> tuple[float, float]:
    return resolve_window("lung" if kind == "lung" else "soft_tissue")


def real_catalog() -> tuple[Catalog, Path]:
    catalog = concat([load_catalog(SHARED / f"DL_info/DL_info_{s}.csv") for s in ("val", "test")])
    images = SHARED / "png16"
    have = [i for i, x in enumerate(catalog) if (images / x.key_slice_path).is_file()]
    return catalog.take(have), images


def real_match(real: Catalog, kind: str, z: float) -> Lesion:
    """The real key slice of the same type, else the one nearest in normalized height."""
    same = [x for x in real if x.lesion_type.label == kind]
    pool = same or list(real)
    return min(pool, key=lambda x: abs(x.location[2] - z))


def tile(hu: np.ndarray, lesions: list[Lesion], kind: str, label: str) -> np.ndarray:
    import cv2

    rgb = draw_lesions(hu, lesions, window_for(kind), thickness=2)
    rgb = cv2.resize(rgb, (TILE, TILE), interpolation=cv2.INTER_AREA)
    cv2.putText(rgb, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 1, cv2.LINE_AA)
    return rgb


def stats_rows(name: str, images: list[np.ndarray]) -> None:
    peaks = [tissue_peaks(x) for x in images]
    noise = [noise_sigma(x) for x in images]
    cells = []
    for key in ("air", "lung", "fat", "soft_tissue", "bone"):
        values = [p[key] for p in peaks if p[key] is not None]
        cells.append(f"{np.median(values):7.1f} [{min(values):7.1f},{max(values):7.1f}]" if values else "-")
    for key in ("fat", "soft_tissue"):
        values = [n[key] for n in noise if n[key] is not None]
        cells.append(f"{np.median(values):5.1f} [{min(values):5.1f},{max(values):5.1f}]" if values else "-")
    widths = [body_width_fraction(x) for x in images]
    low, high = np.percentile(widths, [10, 90])
    cells.append(f"{np.median(widths):4.2f} [{low:4.2f},{high:4.2f}]")
    flatness = [back_flatness(x) for x in images]
    low, high = np.nanpercentile(flatness, [10, 90])
    cells.append(f"{np.nanmedian(flatness):4.2f} [{low:4.2f},{high:4.2f}]")
    print(f"| {name} ({len(images)}) | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "synth"
            make_synthetic_release(root, patients=args.patients, seed=args.seed)
        synthetic = load_catalog(root / "DL_info.csv").filter(split=["val", "test"])
        real, real_images = real_catalog()
        rows = []
        for kind in REGIONS:
            chosen = [x for x in synthetic if x.lesion_type.label == kind]
            if not chosen:
                print(f"no synthetic {kind} lesion in the val/test rows of this release")
                continue
            lesion = sorted(chosen, key=lambda x: x.long_diameter_mm)[len(chosen) // 2]  # a median-size one
            hu = read_slice_hu(root / lesion.key_slice_path)
            match = real_match(real, kind, lesion.location[2])
            real_hu = read_slice_hu(real_images / match.key_slice_path)
            rows.append(
                np.hstack(
                    [
                        tile(hu, [lesion], kind, f"synthetic {kind} {lesion.long_diameter_mm:.0f} mm"),
                        tile(
                            real_hu,
                            real.lesions_on(match.file_name),
                            kind,
                            f"real {match.lesion_type.label} z={match.location[2]:.2f}",
                        ),
                    ]
                )
            )
        OUT.parent.mkdir(parents=True, exist_ok=True)
        pairs = [
            np.hstack(rows[i : i + 2]) if i + 1 < len(rows) else np.hstack([rows[i], 0 * rows[i]])
            for i in range(0, len(rows), 2)
        ]
        write_png(OUT, np.vstack(pairs))
        print(f"wrote {OUT.relative_to(ROOT)}")
        print(
            "| slices | air | lung | fat | soft tissue | bone | noise fat | noise soft tissue "
            "| body width (10th-90th percentile) | back flatness (10th-90th percentile) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        keys = sorted({x.key_slice_path for x in synthetic})
        stats_rows("synthetic key slices", [read_slice_hu(root / k) for k in keys])
        real_paths = sorted((real_images / "Images_png").rglob("*.png"))
        stats_rows("real slices", [read_slice_hu(p) for p in real_paths])
        # 61 of the 137 come from one series: one slice per series weighs each patient and scan alike
        middles = [
            sorted(p for p in real_paths if p.parent == f) for f in sorted({p.parent for p in real_paths})
        ]
        stats_rows("real, middle slice per series", [read_slice_hu(s[len(s) // 2]) for s in middles])


if __name__ == "__main__":
    main()
