"""What fills the upper abdomen: synthetic key slices beside the real ones of the same height.

Run: ``.venv/bin/python benchmarks/synth_abdomen.py [--root SYNTH_ROOT] [--patients 15] [--seed 1]``
(without ``--root`` a release is generated in a temporary folder; the real slices come from
``../shared/data/deeplesion/png16``). For every distinct key slice whose normalized height lies in
0.58-0.68 (liver and kidneys), :func:`deeplesion.synth.realism.deep_tissue_shares` (pixels deeper than 45
mm from the skin) is measured; the first table gives the median and the 10th-90th percentile of each
share, the second the median fat share per band of height (the fat share rises toward the pelvis, and the
synthetic key slices lie lower on average than the real ones, so the overall medians mix heights).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from deeplesion.catalog import Catalog, concat, load_catalog
from deeplesion.slices import read_slice_hu
from deeplesion.synth import make_synthetic_release
from deeplesion.synth.realism import deep_tissue_shares
from machine import machine_header

SHARED = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion"
HEIGHTS = (0.58, 0.68)
BAND = 0.025
BANDS = (0.58, 0.605, 0.63, 0.655)


def measure(catalog: Catalog, images: Path) -> list[dict[str, float]]:
    seen: set[str] = set()
    shares = []
    for lesion in catalog:
        path = images / lesion.key_slice_path
        if lesion.key_slice_path in seen or not path.is_file():
            continue
        if not HEIGHTS[0] <= lesion.location[2] <= HEIGHTS[1]:
            continue
        seen.add(lesion.key_slice_path)
        value = deep_tissue_shares(read_slice_hu(path), lesion.spacing[0])
        if value is not None:
            shares.append({**value, "height": lesion.location[2]})
    return shares


def fat_by_height(name: str, shares: list[dict[str, float]]) -> str:
    cells = []
    for low in BANDS:
        fat = [s["fat"] for s in shares if low <= s["height"] < low + BAND]
        cells.append(f"{np.median(fat):.3f} ({len(fat)})" if fat else "-")
    return f"| {name} | " + " | ".join(cells) + " |"


def row(name: str, shares: list[dict[str, float]]) -> str:
    cells = []
    for tissue in ("fat", "gas", "soft_tissue"):
        values = np.array([s[tissue] for s in shares])
        low, middle, high = np.percentile(values, [10, 50, 90])
        cells.append(f"{middle:.3f} [{low:.3f}, {high:.3f}]")
    return f"| {name} ({len(shares)}) | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path)
    parser.add_argument("--patients", type=int, default=15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    real = concat([load_catalog(SHARED / f"DL_info/DL_info_{s}.csv") for s in ("val", "test")])
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "synth"
            make_synthetic_release(root, patients=args.patients, seed=args.seed)
        synthetic = measure(load_catalog(root / "DL_info.csv"), root)
    print(machine_header(f"key slices at normalized height {HEIGHTS[0]}-{HEIGHTS[1]}, deeper than 45 mm"))
    print()
    print("| key slices | fat | gas | soft tissue |")
    print("|---|---|---|---|")
    print(row("synthetic", synthetic))
    real_shares = measure(real, SHARED / "png16")
    print(row("real", real_shares))
    print()
    bands = " | ".join(f"{low:.3f}-{low + BAND:.3f}" for low in BANDS)
    print(f"| deep fat by height (key slices) | {bands} |")
    print("|---|" + "---|" * len(BANDS))
    print(fat_by_height("synthetic", synthetic))
    print(fat_by_height("real", real_shares))


if __name__ == "__main__":
    main()
