"""The realistic synthetic release: anatomy and HU, lesions in their organs, real statistics, longitudinal
patients. Statistics are measured on 40-patient plans (no pixels: the same masks the annotations are
measured from); the image checks render single slices; the comparison with real slices needs ../shared.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from deeplesion.catalog import Catalog, load_catalog
from deeplesion.slices import read_slice_hu
from deeplesion.synth import plan_release
from deeplesion.synth.anatomy import Tissue, random_body, region_contains
from deeplesion.synth.lesions import compare_to_real, ks_statistic, real_stats
from deeplesion.synth.phantom import (
    SliceGeometry,
    StudyLook,
    make_series,
    render_labels,
    render_slice,
    sub_heights,
)
from deeplesion.synth.realism import noise_sigma, tissue_peaks
from deeplesion.synth.release import planned_rows

REAL_SLICES = Path(__file__).resolve().parents[2] / "shared/data/deeplesion/png16/Images_png"
PATIENTS = 40


def planned_stats(patients: int, seed: int) -> tuple[dict, dict[str, float]]:  # type: ignore[type-arg]
    """The comparison with the real rows of a release plan's rows, and its per-patient counts."""
    plans = plan_release(patients, seed)
    kinds, longs, locations = planned_rows(plans)
    counts = {
        "studies": sum(len(p.series) for p in plans) / patients,
        "rows": len(kinds) / patients,
    }
    return compare_to_real(kinds, longs, locations), counts


@pytest.fixture(scope="module")
def plans_stats() -> list[tuple[dict, dict]]:  # type: ignore[type-arg]
    return [planned_stats(PATIENTS, seed) for seed in (0, 1)]


def test_type_shares_sizes_and_locations_match_the_real_rows(plans_stats: list) -> None:  # type: ignore[type-arg]
    for comparison, _ in plans_stats:
        assert max(abs(v) for v in comparison["share_points"].values()) <= 5.0, comparison["share_points"]
        assert comparison["ks_long"] <= 0.1
        # every type, the small ones too (bone: 2-5 lesions in 40 patients), thanks to the location herd
        errors = comparison["location_error"]
        assert max(errors.values()) <= 0.05, errors


def test_longitudinal_counts_are_realistic(plans_stats: list) -> None:  # type: ignore[type-arg]
    for _, counts in plans_stats:
        assert 2.0 <= counts["studies"] <= 2.8  # real: 2.34 (shared rows), about 2.4 over the release
        assert 6.0 <= counts["rows"] <= 8.8  # real: 6.75 (shared rows), 7.39 over the release


def test_some_key_slices_carry_several_lesions() -> None:
    plans = plan_release(PATIENTS, 0)
    per_key_slice = Counter(
        (series.folder, series.key_slices[i])
        for plan in plans
        for series in plan.series
        for i in series.annotated
    )
    shared = sum(1 for n in per_key_slice.values() if n > 1)
    assert 0 < shared < 0.2 * len(per_key_slice), (shared, len(per_key_slice))


def test_ks_statistic_against_a_known_distribution() -> None:
    levels = [0.0, 50.0, 100.0]
    uniform = [0.0, 5.0, 10.0]
    assert ks_statistic(np.linspace(0.05, 9.95, 100), levels, uniform) < 0.01
    assert ks_statistic(np.full(10, 2.0), levels, uniform) == pytest.approx(0.8)


def test_every_lesion_lies_in_its_organ_and_keeps_its_place() -> None:
    plans = plan_release(12, 3)
    lesions = 0
    for plan in plans:
        for lesion_id, lesion in plan.lesions.items():
            assert region_contains(plan.body, lesion.kind, *lesion.center), (lesion_id, lesion.kind)
            lesions += 1
        seen: dict[str, tuple[float, float, float]] = {}
        for series in plan.series:
            for lesion_id, lesion in zip(series.lesion_ids, series.lesions, strict=True):
                # one anatomical position in every study; only its size changes
                assert seen.setdefault(lesion_id, lesion.center) == lesion.center
    assert lesions > 40
    kinds = {x.kind for p in plans for x in p.lesions.values()}
    assert kinds == set(real_stats()["types"])


def test_lesions_grow_shrink_appear_and_disappear() -> None:
    plans = plan_release(40, 0)
    changes, appear, vanish = [], 0, 0
    for plan in plans:
        present = [set(s.lesion_ids) for s in plan.series]
        for lesion_id in plan.lesions:
            studies = [i for i, ids in enumerate(present) if lesion_id in ids]
            if studies and studies[0] > 0:
                appear += 1
            if studies and studies[-1] < len(present) - 1:
                vanish += 1
        sizes: dict[str, list[float]] = {}
        for series in plan.series:
            for lesion_id, lesion in zip(series.lesion_ids, series.lesions, strict=True):
                sizes.setdefault(lesion_id, []).append(lesion.semi_axes[0])
        changes += [v[-1] / v[0] for v in sizes.values() if len(v) > 1]
    assert appear > 0 and vanish > 0
    assert min(changes) < 0.85 and max(changes) > 1.15  # shrinking and growing lesions
    poses = {s.geometry.pose for p in plans for s in p.series}
    assert len(poses) > 1 and max(np.hypot(p[1], p[2]) for p in poses) <= 20.0 + 1e-9
    assert max(abs(np.degrees(p[0])) for p in poses) <= 3.0 + 1e-9


@pytest.fixture(scope="module")
def abdomen_slice() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    body = random_body(rng)
    geometry = SliceGeometry(512, 0.78, -1024.0, (0.02, 6.0, -4.0))
    series = make_series(geometry, StudyLook(phase=2, noise_hu=10.0), 5.0, [], rng)
    z = 0.615 * body.height_mm
    return render_labels(body, geometry, z), render_slice(body, series, z, rng)


@pytest.mark.parametrize(
    ("tissue", "low", "high"),
    [
        (Tissue.FAT, -125.0, -75.0),
        (Tissue.MUSCLE, 35.0, 75.0),
        (Tissue.LIVER, 90.0, 135.0),  # portal-venous phase
        (Tissue.SPLEEN, 95.0, 135.0),
        (Tissue.KIDNEY, 130.0, 200.0),
        (Tissue.CORTICAL, 600.0, 1500.0),
        (Tissue.TRABECULAR, 150.0, 350.0),
    ],
)
def test_organ_hu_in_the_textbook_range(
    abdomen_slice: tuple[np.ndarray, np.ndarray], tissue: Tissue, low: float, high: float
) -> None:
    labels, hu = abdomen_slice
    import cv2

    # the core of each tissue (eroded): edges mix with neighbours through the blur and slice thickness
    core = cv2.erode((labels == tissue).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert core.sum() > 50, tissue.name
    assert low <= float(np.median(hu[core])) <= high, (tissue.name, float(np.median(hu[core])))


def test_tissue_has_texture_and_slices_average_their_thickness(
    abdomen_slice: tuple[np.ndarray, np.ndarray],
) -> None:
    labels, hu = abdomen_slice
    liver = hu[labels == Tissue.LIVER].astype(np.float64)
    assert liver.std() > 8.0  # noise and texture, not a flat value
    assert sub_heights(40.0, 5.0) == pytest.approx([38.75, 41.25])
    assert sub_heights(40.0, 1.0) == [40.0]


@pytest.fixture(scope="module")
def release_catalog(shared_release: Path) -> Catalog:
    return load_catalog(shared_release / "DL_info.csv")


@pytest.mark.skipif(not REAL_SLICES.is_dir(), reason="../shared/data/deeplesion/png16 is not present")
def test_tissue_peaks_and_noise_inside_the_real_range(shared_release: Path, release_catalog: Catalog) -> None:
    real = [read_slice_hu(p) for p in sorted(REAL_SLICES.rglob("*.png"))]
    synthetic = [
        read_slice_hu(shared_release / k) for k in sorted({x.key_slice_path for x in release_catalog})
    ]
    assert len(real) == 137 and len(synthetic) > 20

    def collect(images: list[np.ndarray], measure) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
        out: dict[str, list[float]] = {}
        for image in images:
            for key, value in measure(image).items():
                if value is not None:
                    out.setdefault(key, []).append(value)
        return {k: np.array(v) for k, v in out.items()}

    for measure in (tissue_peaks, noise_sigma):
        real_values, synth_values = collect(real, measure), collect(synthetic, measure)
        for key, values in real_values.items():
            low, high = np.percentile(values, [5, 95])
            median = float(np.median(synth_values[key]))
            assert low <= median <= high, (measure.__name__, key, median, (low, high))


def test_location_herd_takes_the_candidate_that_keeps_the_mean() -> None:
    from deeplesion.synth.lesions import RowHerd

    target = tuple(real_stats()["types"]["bone"]["location_mean"])
    herd = RowHerd({}, {})
    high = (target[0], target[1] + 0.2, target[2])
    low = (target[0], target[1] - 0.1, target[2])
    assert herd.choose("bone", [high, target], 1.0) == 1  # on target beats 0.2 off
    herd.add("bone", high, 1.0)  # a lesion gave a row more than expected, up there
    assert herd.choose("bone", [target, low], 1.0) == 1  # now the low one pulls the mean back
    assert herd.weights["bone"] == 3.0
    # bone now has 3 rows of 3: every other type is short of its share, bone is not dealt again
    rng = np.random.default_rng(0)
    assert {herd.next_type(1.0, rng) for _ in range(20)} <= set(real_stats()["types"]) - {"bone"}
