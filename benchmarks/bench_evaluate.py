"""Benchmark: ``deeplesion evaluate`` on ~101k detections over the 4,817 evaluated test images.

Run: ``.venv/bin/python benchmarks/bench_evaluate.py`` (needs ../shared/data). Writes a predictions CSV
(each lesion found with probability 0.8 by a jittered box, plus about 20 random boxes per image, distinct
scores) to a temporary folder, then times the whole command line (start-up, CSV reading, both
protocols), the library call alone, and a per-detection Python loop like the references' for comparison.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deeplesion.catalog import load_catalog
from deeplesion.evaluate import evaluate, read_predictions_csv
from machine import machine_header

TEST = Path(__file__).resolve().parents[1].parent / "shared/data/deeplesion/DL_info/DL_info_test.csv"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def write_predictions(path: Path, target: int = 101_000, seed: int = 0) -> int:
    catalog = load_catalog(TEST).filter(noisy=False)
    rng = np.random.default_rng(seed)
    names = np.unique(catalog.file_name.astype(str))
    rows = []
    for lesion in catalog:
        if rng.random() < 0.8:
            box = lesion.box + rng.normal(0, 3, 4)
            rows.append((lesion.file_name, box[0], box[1], max(box[0], box[2]), max(box[1], box[3])))
    per_image = (target - len(rows)) // len(names)
    for name in names:
        xy = rng.uniform(0, 450, (per_image, 2))
        wh = rng.uniform(5, 60, (per_image, 2))
        rows.extend((name, x, y, x + w, y + h) for (x, y), (w, h) in zip(xy, wh, strict=True))
    for name in rng.choice(names, target - len(rows), replace=False):  # top up to exactly `target`
        x, y = rng.uniform(0, 450, 2)
        rows.append((str(name), x, y, x + 30.0, y + 30.0))
    scores = rng.permutation(len(rows)) / len(rows)
    with path.open("w") as handle:
        handle.write("File_name,x1,y1,x2,y2,score\n")
        for (name, x1, y1, x2, y2), score in zip(rows, scores, strict=True):
            handle.write(f"{name},{x1:.2f},{y1:.2f},{x2:.2f},{y2:.2f},{score:.9f}\n")
    return len(rows)


def main() -> None:
    if not TEST.exists():
        sys.exit(f"{TEST} not found: this benchmark needs the real test split")
    print(machine_header())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "preds.csv"
        count = write_predictions(path)
        print(f"{count} detections over 4,817 images ({path.stat().st_size / 1e6:.1f} MB CSV)")
        print("| what | protocol | seconds |")
        print("|---|---|---:|")
        for protocol in ("mulan", "3dce"):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "deeplesion.cli.main",
                        "evaluate",
                        str(path),
                        "--annotations",
                        str(TEST),
                        "--protocol",
                        protocol,
                        "--json",
                    ],
                    check=True,
                    capture_output=True,
                )
                times.append(time.perf_counter() - start)
            what = "`deeplesion evaluate ... --json` (whole command, best of 3)"
            print(f"| {what} | {protocol} | {min(times):.2f} |")
        catalog = load_catalog(TEST)
        start = time.perf_counter()
        predictions = read_predictions_csv(path)
        read = time.perf_counter() - start
        start = time.perf_counter()
        evaluate(catalog, predictions)
        print(f"| read the CSV (library) | - | {read:.2f} |")
        print(f"| evaluate() (library) | mulan | {time.perf_counter() - start:.2f} |")
        start = time.perf_counter()
        evaluate(catalog, predictions, bootstrap=200, seed=0)
        print(f"| evaluate() with --bootstrap 200 | mulan | {time.perf_counter() - start:.2f} |")
        from froc_reference import froc

        names = sorted(set(catalog.filter(noisy=False).file_name.tolist()))
        index = {n: i for i, n in enumerate(names)}
        gts: list[list[np.ndarray]] = [[] for _ in names]
        for lesion in catalog.filter(noisy=False):
            gts[index[lesion.file_name]].append(lesion.box)
        boxes: list[list[list[float]]] = [[] for _ in names]
        for name, box, score in zip(predictions.file_name, predictions.boxes, predictions.score, strict=True):
            boxes[index[name]].append([*box, score])
        start = time.perf_counter()
        froc([np.array(b).reshape(-1, 5) for b in boxes], [np.array(g) for g in gts], 0.5)
        print(f"| reference-style loop (matching only) | - | {time.perf_counter() - start:.2f} |")


if __name__ == "__main__":
    main()
