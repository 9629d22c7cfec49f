"""How the synthetic rows compare with the real val+test rows, over several seeds (plans only: the
annotation masks the rows are measured from, without rendering pixels).

Run: ``.venv/bin/python benchmarks/synth_stats.py [--patients 40 100] [--seeds 6]``. Prints one line per
release size: the range over the seeds of studies and rows per patient, the largest type-share gap
(percentage points), the KS statistic of the long diameters, and the largest per-axis gap of a type's mean
normalized location (for all types and for the three small ones: bone, kidney, soft tissue), and the
seeds whose release is within all of the issue's limits (type shares within 5 points, KS at most 0.1,
every type's mean location within 0.05), naming the others.
"""

from __future__ import annotations

import argparse

from deeplesion.synth import plan_release
from deeplesion.synth.lesions import compare_to_real
from deeplesion.synth.release import planned_rows
from machine import machine_header

SMALL = ("bone", "kidney", "soft_tissue")


def span(values: list[float], digits: int) -> str:
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[40, 100])
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    print(machine_header())
    print(
        "| patients | seeds | studies/patient | rows/patient | largest type-share gap | KS of long diameters "
        "| mean location gap, large types | the same, bone/kidney/soft tissue | seeds within the limits |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for patients in args.patients:
        studies, rows, shares, ks, large, small, outside = [], [], [], [], [], [], []
        for seed in range(args.seeds):
            plans = plan_release(patients, seed)
            kinds, longs, locations = planned_rows(plans)
            comparison = compare_to_real(kinds, longs, locations)
            studies.append(sum(len(p.series) for p in plans) / patients)
            rows.append(len(kinds) / patients)
            shares.append(max(abs(v) for v in comparison["share_points"].values()))
            ks.append(comparison["ks_long"])
            errors = comparison["location_error"]
            large.append(max(v for k, v in errors.items() if k not in SMALL))
            small.append(max(v for k, v in errors.items() if k in SMALL))
            if shares[-1] > 5.0 or ks[-1] > 0.1 or max(errors.values()) > 0.05:
                outside.append(str(seed))
        within = f"{args.seeds - len(outside)} of {args.seeds}"
        if outside:
            within += f" (not {', '.join(outside)})"
        print(
            f"| {patients} | {args.seeds} | {span(studies, 2)} | {span(rows, 1)} | {span(shares, 1)} points "
            f"| {span(ks, 3)} | {span(large, 3)} | {span(small, 3)} | {within} |"
        )


if __name__ == "__main__":
    main()
