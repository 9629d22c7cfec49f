"""Fit the tracking parameters on the Deep Lesion Tracker pairs and report their cross-validated accuracy.

Run: ``.venv/bin/python benchmarks/fit_tracking.py`` (needs ../shared/data: DL_info_union.csv and
dlt/valid.json). Not part of the tests.

Fitting: coordinate descent from position only (``START``) over a grid per parameter (two sweeps),
maximizing the share of pairs whose source the links take to the paired target; ties go to the earlier
grid value (the simpler model). The temperature of the confidence is fitted afterwards, by the log loss
of "the answer is right" against the answer's confidence; it does not change any answer.

Scoring: patient-grouped 5-fold cross-validation (a patient's pairs are all in one fold: DLT lists each
pair both ways, and a patient's lesions share a frame). Each fold is scored with parameters fitted on the
other four folds only, so the pooled held-out accuracy is what the method gets on pairs it never saw.
The final parameters are then fitted on all pairs (that fit's accuracy on the same pairs is in-sample).
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import load_catalog
from deeplesion.tracking import FITTED, ResolvedPairs, TrackingParameters, resolve_pairs, track_lesions
from deeplesion.tracking.pairs import pair_answers, twin_on_other_series
from machine import machine_header

SHARED = Path(__file__).resolve().parents[1].parent / "shared/data"
UNION = SHARED / "deeplesion/DL_info/DL_info_union.csv"
PAIRS = SHARED / "dlt/valid.json"
FOLDS = 5
GRID: dict[str, tuple[float, ...]] = {
    "size_weight": (0.0, 0.02, 0.05, 0.1, 0.2),
    "short_weight": (0.0, 0.02, 0.05, 0.1),
    "type_weight": (0.0, 0.02, 0.05, 0.2),
    "interval_weight": (0.0, 0.005, 0.01, 0.02),
    "millimetre_weight": (0.0, 1 / 1000, 1 / 600, 1 / 300, 1 / 150, 1 / 75),
    "millimetre_disagreement": (0.0, 25.0, 50.0, 100.0, 150.0),
    "max_shift": (0.0, 0.04, 0.08, 0.15),
    "max_cost": (0.15, 0.25, 0.35, 0.5, 1.0),
    "path_weight": (0.0, 0.05, 0.1, 0.2, 0.3),
    "twin_rule": (0, 1, -1),
}
TEMPERATURES = (0.005, 0.01, 0.02, 0.04, 0.08)
START = TrackingParameters(
    size_weight=0.0,
    short_weight=0.0,
    type_weight=0.0,
    interval_weight=0.0,
    millimetre_weight=0.0,
    millimetre_disagreement=0.0,
    max_shift=0.0,
    max_cost=1.0,
    path_weight=0.0,
    twin_rule=0,
)
"""Where every fit starts: position only, nothing fitted (a start taken from an earlier fit on all pairs
would leak the held-out folds into the cross-validation)."""


class Scorer:
    """Per-pair correctness of a parameter set, for the patients the pairs name (cached per set)."""

    def __init__(self, catalog, pairs: ResolvedPairs) -> None:  # type: ignore[no-untyped-def]
        self.catalog = catalog
        self.pairs = pairs
        self.patients = sorted({int(p) for p in catalog.patient[pairs.source]})
        self.cache: dict[TrackingParameters, tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]] = {}

    def correct(
        self, parameters: TrackingParameters
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
        if parameters not in self.cache:
            result = track_lesions(self.catalog, patients=self.patients, parameters=parameters)
            answers = pair_answers(result, self.pairs)
            self.cache[parameters] = (answers["method"] == self.pairs.target, answers["confidence"])
        return self.cache[parameters]


def fit(scorer: Scorer, chosen: npt.NDArray[np.bool_], start: TrackingParameters) -> TrackingParameters:
    """Coordinate descent on the pairs where ``chosen`` is True."""
    best = start
    best_score = scorer.correct(best)[0][chosen].mean()
    for _ in range(2):
        for name, values in GRID.items():
            for value in values:
                candidate = dataclasses.replace(best, **{name: value})
                score = scorer.correct(candidate)[0][chosen].mean()
                if score > best_score + 1e-12:
                    best, best_score = candidate, score
    return best


def fit_temperature(scorer: Scorer, parameters: TrackingParameters, chosen: npt.NDArray[np.bool_]) -> float:
    losses = []
    for t in TEMPERATURES:
        right, confidence = scorer.correct(dataclasses.replace(parameters, temperature=t))
        p = np.clip(confidence[chosen], 1e-6, 1 - 1e-6)
        y = right[chosen]
        losses.append(float(-(y * np.log(p) + (~y) * np.log(1 - p)).mean()))
    return TEMPERATURES[int(np.argmin(losses))]


def main() -> int:
    if not (UNION.is_file() and PAIRS.is_file()):
        print(f"needs {UNION} and {PAIRS} (../shared/data)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    catalog = load_catalog(UNION)
    pairs = resolve_pairs(catalog, PAIRS)
    keep = (pairs.source >= 0) & (pairs.target >= 0)
    pairs = ResolvedPairs(
        [k for k, m in zip(pairs.keys, keep, strict=True) if m], pairs.source[keep], pairs.target[keep]
    )
    scorer = Scorer(catalog, pairs)
    patient = catalog.patient[pairs.source]
    rng = np.random.default_rng(0)
    unique = rng.permutation(np.unique(patient))
    fold_of_patient = {int(p): i % FOLDS for i, p in enumerate(unique)}
    fold = np.array([fold_of_patient[int(p)] for p in patient])
    print(machine_header(f"{len(pairs.keys)} pairs, {len(unique)} patients, {FOLDS} patient-grouped folds"))
    print()
    print("| fold | pairs | fitted on the other folds | held-out accuracy |")
    print("|---|---|---|---|")
    held_out = np.zeros(len(fold), dtype=bool)
    for k in range(FOLDS):
        parameters = fit(scorer, fold != k, START)
        held_out[fold == k] = scorer.correct(parameters)[0][fold == k]
        changed = {
            f.name: round(getattr(parameters, f.name), 5)
            for f in dataclasses.fields(parameters)
            if f.name in GRID
        }
        print(f"| {k} | {int((fold == k).sum())} | {changed} | {held_out[fold == k].mean():.4f} |")
    final = fit(scorer, np.ones(len(fold), dtype=bool), START)
    final = dataclasses.replace(
        final, temperature=fit_temperature(scorer, final, np.ones(len(fold), dtype=bool))
    )
    right, confidence = scorer.correct(final)
    print()
    print(
        "cross-validated accuracy (pooled held-out folds): "
        f"{held_out.mean():.4f} ({held_out.sum()}/{len(held_out)})"
    )
    single = ~twin_on_other_series(
        track_lesions(catalog, patients=scorer.patients), pairs.source, pairs.target
    )
    print(
        f"  on the {single.sum()} pairs whose target lesion has no twin row on another series of its study: "
        f"{held_out[single].mean():.4f}; on the {(~single).sum()} with one: {held_out[~single].mean():.4f}"
    )
    print(f"in-sample accuracy of the final fit: {right.mean():.4f}")
    print(f"current defaults (FITTED) in-sample: {scorer.correct(FITTED)[0].mean():.4f}")
    print(f"final parameters: {final}")
    print()
    print("| confidence | pairs | accuracy |")
    print("|---|---|---|")
    edges = (0.0, 0.5, 0.8, 0.95, 1.0001)
    for low, high in itertools.pairwise(edges):
        inside = (confidence >= low) & (confidence < high)
        if inside.any():
            print(f"| {low:.2f}-{min(high, 1):.2f} | {int(inside.sum())} | {right[inside].mean():.4f} |")
    print(f"\n{len(scorer.cache)} parameter sets scored in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
