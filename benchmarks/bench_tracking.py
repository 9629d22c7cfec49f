"""Benchmark: tracking every lesion of the 29,280 shared real rows (val + test splits, 4,337 patients).

Run: ``.venv/bin/python benchmarks/bench_tracking.py`` (needs ../shared/data). Times the library call
(links between every two scans of every patient, tracks), the RECIST responses and the JSON document,
scoring the 906 DLT pairs, one timeline plot, and the whole ``deeplesion track --json`` command line.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from deeplesion.catalog import load_catalog
from deeplesion.tracking import resolve_pairs, score_pairs, track_lesions
from deeplesion.tracking.document import patient_responses, tracking_document
from deeplesion.tracking.plot import timeline_png
from machine import machine_header

SHARED = Path(__file__).resolve().parents[1].parent / "shared/data"
UNION = SHARED / "deeplesion/DL_info/DL_info_union.csv"
PAIRS = SHARED / "dlt/valid.json"
REPEATS = 3


def best_of(function, repeats: int = REPEATS):  # type: ignore[no-untyped-def]
    times, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> int:
    if not UNION.is_file():
        print(f"needs {UNION} (../shared/data)", file=sys.stderr)
        return 2
    catalog = load_catalog(UNION)
    print(machine_header(f"{len(catalog)} rows, {len(set(catalog.patient.tolist()))} patients"))
    print()
    print("| step | seconds (best of 3) | result |")
    print("|---|---|---|")
    seconds, result = best_of(lambda: track_lesions(catalog))
    followed = sum(len(t.measurements) >= 2 for t in result.tracks)
    print(
        f"| track_lesions (all patients) | {seconds:.2f} | {len(result.tracks)} tracks "
        f"({followed} over 2+ studies), {len(result.links)} links |"
    )
    seconds, responses = best_of(lambda: patient_responses(result))
    verdicts = sum(len(r.follow_ups) for r in responses.values() if r)
    print(f"| RECIST responses | {seconds:.2f} | {verdicts} follow-up studies |")
    seconds, document = best_of(lambda: tracking_document(result))
    print(f"| JSON document | {seconds:.2f} | {len(document['patients'])} patients |")
    if PAIRS.is_file():
        seconds, scores = best_of(lambda: score_pairs(result, resolve_pairs(catalog, PAIRS)))
        print(
            f"| resolve + score the DLT pairs | {seconds:.2f} | accuracy {scores['accuracy']} (in-sample) |"
        )
    busiest = max(result.patients, key=lambda p: len(result.tracks_of(p)))
    seconds, _ = best_of(lambda: timeline_png(result.tracks_of(busiest), responses[busiest]))
    print(
        f"| one timeline (patient {busiest}, {len(result.tracks_of(busiest))} tracks) | {seconds:.2f} | PNG |"
    )
    command = [str(Path(sys.executable).with_name("deeplesion")), "track", "-a", str(UNION), "--json"]
    start = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, check=True)
    print(
        f"| `deeplesion track --json` (whole command) | {time.perf_counter() - start:.2f} | "
        f"{len(completed.stdout) / 1e6:.1f} MB of JSON |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
