"""Lesion tracking: links between scans, tracks, the RECIST response, and scoring against known pairs
(the Deep Lesion Tracker's valid.json in ../shared, a synthetic release's lesion identities)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deeplesion.catalog import Lesion, LesionType, dl_info_text, from_lesions, load_catalog
from deeplesion.cli.main import app
from deeplesion.tracking import (
    FITTED,
    LesionFeatures,
    Measurement,
    Track,
    identity_pairs,
    match_scans,
    resolve_pairs,
    score_pairs,
    track_lesions,
)
from deeplesion.tracking.response import recist_response, select_targets
from tests.release_builder import lesion_row

SHARED = Path(__file__).resolve().parents[2] / "shared/data"
UNION = SHARED / "deeplesion/DL_info/DL_info_union.csv"
DLT_PAIRS = SHARED / "dlt/valid.json"
needs_shared = pytest.mark.skipif(
    not (UNION.is_file() and DLT_PAIRS.is_file()),
    reason="../shared/data (DL_info_union.csv and dlt/valid.json) is not present",
)
runner = CliRunner()


def lesion(
    patient: int,
    study: int,
    location: tuple[float, float, float],
    long_mm: float,
    *,
    series: int = 1,
    kind: LesionType = LesionType.LIVER,
    key: int = 10,
    short_mm: float | None = None,
) -> Lesion:
    """A row with a consistent RECIST cross (1 mm pixels) centred at the image point of ``location``."""
    short_mm = long_mm / 2 if short_mm is None else short_mm
    cx, cy = 50 + 400 * location[0], 50 + 400 * location[1]
    recist = np.array(
        [[cx - long_mm / 2, cy], [cx + long_mm / 2, cy], [cx, cy - short_mm / 2], [cx, cy + short_mm / 2]]
    )
    return dataclasses.replace(
        lesion_row((patient, study, series), key, key - 5, key + 5, 5.0, size=512),
        recist=recist,
        box=np.concatenate([recist.min(0) - 5, recist.max(0) + 5]),
        diameters_px=(long_mm, short_mm),
        location=location,
        lesion_type=kind,
        spacing=(1.0, 1.0, 5.0),
    )


def catalog_of(rows: list[Lesion], tmp_path: Path | None = None):  # type: ignore[no-untyped-def]
    catalog = from_lesions(rows)
    if tmp_path is None:
        return catalog
    path = tmp_path / "DL_info.csv"
    path.write_text(dl_info_text(catalog))
    return path


# --- links and tracks ----------------------------------------------------------------------------------


def test_links_follow_each_lesion_and_leave_a_vanished_one_unlinked() -> None:
    baseline = [(0.30, 0.40, 0.50), (0.70, 0.40, 0.52), (0.50, 0.70, 0.80)]
    follow_up = [(x + 0.01, y - 0.01, z + 0.005) for x, y, z in baseline[:2]]  # the third is gone
    rows = [lesion(1, 1, loc, 20.0) for loc in baseline]
    rows += [lesion(1, 2, loc, 24.0) for loc in reversed(follow_up)]  # listed in another order
    catalog = catalog_of(rows)
    features = LesionFeatures.from_catalog(catalog)
    scans = features.scans()
    links = match_scans(features, scans[(1, 1, 1)], scans[(1, 2, 1)])
    names = {(catalog.location[k.source][0].round(2), catalog.location[k.target][0].round(2)) for k in links}
    assert names == {(0.30, 0.31), (0.70, 0.71)}
    assert all(0.5 < k.confidence <= 1.0 for k in links)
    result = track_lesions(catalog)
    assert len(result.tracks) == 3
    assert sorted(len(t.measurements) for t in result.tracks) == [1, 2, 2]
    changes = result.tracks[0].changes("long")
    assert changes[1]["change_from_baseline_pct"] == pytest.approx(20.0)


def test_a_track_never_holds_two_rows_of_one_scan() -> None:
    # two close lesions in study 1, one between them in study 2: only one of them can be its past
    rows = [lesion(1, 1, (0.50, 0.50, 0.5), 20.0), lesion(1, 1, (0.52, 0.50, 0.5), 20.0)]
    rows += [lesion(1, 2, (0.51, 0.50, 0.5), 20.0), lesion(1, 3, (0.51, 0.50, 0.5), 20.0)]
    result = track_lesions(catalog_of(rows))
    for track in result.tracks:
        scans = [(result.catalog.study[r], result.catalog.series[r]) for r in track.rows]
        assert len(scans) == len(set(scans))
    assert len(result.tracks) == 2


def test_a_link_between_rows_far_apart_in_height_does_not_join_their_tracks() -> None:
    """Each study bookmarks one lesion, and not the same one: the assignment links the only two rows
    (about 0.20 apart, under max_cost), but no real pair of valid.json is more than 0.058 apart in height,
    so the two stay separate tracks (one lesion's diameter is not reported as the other's)."""
    rows = [lesion(1, 1, (0.45, 0.50, 0.42), 15.0), lesion(1, 2, (0.47, 0.48, 0.57), 16.0)]
    result = track_lesions(catalog_of(rows))
    assert len(result.links) == 1 and result.links[0].cost < FITTED.max_cost
    assert len(result.tracks) == 2
    joined = track_lesions(catalog_of(rows), parameters=dataclasses.replace(FITTED, track_height_gap=0.0))
    assert len(joined.tracks) == 1


def test_a_lesion_bookmarked_in_one_scan_only_does_not_drag_the_millimetre_offset() -> None:
    """Two lesions per scan, one of each bookmarked in that scan only (synthetic release of version 22,
    patient 38): the assignment pairs the two unmatched ones (0.12 apart in height, under max_cost), whose
    offset in scanner mm (-140) disagrees with the true pair's (+10). The median of the two offsets is
    their mean, 75 mm off for both, and leaves both unlinked at max_cost 0.25; the cheaper pair's offset
    (``millimetre_disagreement`` 100 mm, which the fit on all real pairs does not choose) keeps the true
    link."""
    rows = [lesion(1, 1, (0.50, 0.52, 0.400), 10.0, key=22), lesion(1, 1, (0.45, 0.60, 0.518), 26.0, key=45)]
    rows += [lesion(1, 2, (0.49, 0.50, 0.385), 12.0, key=24), lesion(1, 2, (0.36, 0.60, 0.635), 27.0, key=17)]
    catalog = catalog_of(rows)
    features = LesionFeatures.from_catalog(catalog)
    scans = features.scans()
    for disagreement, linked in ((100.0, {(0.400, 0.385)}), (0.0, set())):
        parameters = dataclasses.replace(FITTED, millimetre_disagreement=disagreement, max_cost=0.25)
        links = match_scans(features, scans[(1, 1, 1)], scans[(1, 2, 1)], parameters)
        heights = {(catalog.location[k.source][2], catalog.location[k.target][2]) for k in links}
        assert heights == linked, disagreement


def test_the_same_lesion_on_two_series_of_one_study_is_linked() -> None:
    rows = [
        lesion(1, 1, (0.30, 0.40, 0.5), 20.0, series=1),
        lesion(1, 1, (0.60, 0.45, 0.6), 30.0, series=1),
        lesion(1, 1, (0.302, 0.401, 0.5), 20.5, series=2),
        lesion(1, 1, (0.601, 0.452, 0.6), 29.0, series=2),
    ]
    result = track_lesions(catalog_of(rows))
    assert len(result.tracks) == 2
    assert all(len(t.rows) == 2 and len(t.measurements) == 1 for t in result.tracks)


def test_a_pair_names_the_twin_on_the_volume_next_to_the_source() -> None:
    """One lesion bookmarked on two series of study 2: both rows are linked to it, and the pair's answer is
    the series next to the source in volume order (from study 1 the first series, from study 3 the last),
    or the other way with twin_rule -1."""
    from deeplesion.tracking import ResolvedPairs
    from deeplesion.tracking.pairs import pair_answers

    rows = [lesion(1, 1, (0.30, 0.40, 0.5), 20.0), lesion(1, 3, (0.30, 0.40, 0.5), 20.0)]
    rows += [lesion(1, 2, (0.301, 0.40, 0.5), 20.2, series=s) for s in (1, 2)]
    catalog = catalog_of(rows)
    by_scan = {(int(catalog.study[r]), int(catalog.series[r])): r for r in range(len(catalog))}
    first, last = by_scan[(2, 1)], by_scan[(2, 2)]
    pairs = ResolvedPairs(
        ["from 1", "from 3"], np.array([by_scan[(1, 1)], by_scan[(3, 1)]]), np.array([first, last])
    )
    for rule, expected in ((1, [first, last]), (-1, [last, first])):
        result = track_lesions(catalog, parameters=dataclasses.replace(FITTED, twin_rule=rule))
        assert pair_answers(result, pairs)["method"].tolist() == expected
    assert FITTED.twin_rule == 1


def test_a_pair_is_answered_through_a_third_study_when_the_direct_link_went_elsewhere() -> None:
    """Lesion A vanishes after study 2 and B drifts toward A's old place: matched directly, study 1's A
    takes study 3's only lesion, and B is left unlinked; through study 2 (B is linked to B', and B' to
    study 3's lesion) the path evidence names it."""
    from deeplesion.tracking import ResolvedPairs
    from deeplesion.tracking.pairs import pair_answers

    rows = [lesion(1, 1, (0.50, 0.50, 0.5), 20.0), lesion(1, 1, (0.53, 0.50, 0.5), 20.0)]
    rows += [lesion(1, 2, (0.50, 0.50, 0.5), 20.0), lesion(1, 2, (0.52, 0.50, 0.5), 20.0)]
    rows += [lesion(1, 3, (0.512, 0.50, 0.5), 20.0)]
    catalog = catalog_of(rows)
    b, b_last = 1, 4
    assert catalog.location[b][0] == pytest.approx(0.53) and catalog.study[b_last] == 3
    pairs = ResolvedPairs(["B"], np.array([b]), np.array([b_last]))
    direct = track_lesions(catalog, parameters=dataclasses.replace(FITTED, path_weight=0.0))
    assert pair_answers(direct, pairs)["method"].tolist() == [-1]
    through = track_lesions(catalog, parameters=dataclasses.replace(FITTED, path_weight=0.05))
    answers = pair_answers(through, pairs)
    assert answers["method"].tolist() == [b_last]
    assert answers["confidence"].tolist() == [0.0]  # no direct link: the answer carries no link confidence


def test_a_pair_within_one_study_is_never_answered_with_its_own_source() -> None:
    """The path evidence runs from the source through another study and back into the target study,
    which for a pair within one study (the lesion on its other series) is the source's own study: the
    walk came back to the source itself and named it (patient 569 of valid.json, until 2026-12-07)."""
    from deeplesion.tracking import ResolvedPairs
    from deeplesion.tracking.pairs import pair_answers

    rows = [lesion(1, 1, (0.50, 0.50, 0.5), 20.0)]
    rows += [lesion(1, 2, (0.50, 0.50, 0.5), 20.0), lesion(1, 2, (0.95, 0.50, 0.5), 20.0, series=2)]
    catalog = catalog_of(rows)
    source, target = 1, 2
    assert catalog.study[source] == catalog.study[target] and catalog.series[target] == 2
    result = track_lesions(catalog, parameters=dataclasses.replace(FITTED, path_weight=0.05))
    # the far row is linked to nothing, so there is no answer; the source must not answer for it
    assert pair_answers(result, ResolvedPairs(["B"], np.array([source]), np.array([target])))[
        "method"
    ].tolist() == [-1]


def test_unknown_patient_and_input_findings() -> None:
    rows = [lesion(1, 1, (0.3, 0.4, 0.5), 20.0, kind=LesionType.UNKNOWN), lesion(2, 1, (0.3, 0.4, 0.5), 20.0)]
    rows.append(lesion(2, 2, (0.3, 0.4, 0.5), 20.0))
    catalog = catalog_of(rows)
    from deeplesion.errors import UsageError

    with pytest.raises(UsageError, match="patient 7 has no row"):
        track_lesions(catalog, patients=[7])
    codes = {f.code: f for f in track_lesions(catalog).findings}
    assert codes["tracking-one-study"].value == "1"
    assert codes["tracking-type-unknown"].value == "1"


# --- the RECIST response -------------------------------------------------------------------------------


def track(
    number: int, kind: LesionType, sizes: dict[int, float], short: dict[int, float] | None = None
) -> Track:
    measurements = tuple(
        Measurement(
            study, row=number * 100 + study, long_mm=size, short_mm=(short or {}).get(study, size / 2)
        )
        for study, size in sorted(sizes.items())
    )
    return Track(f"000001-{number:02d}", 1, tuple(m.row for m in measurements), int(kind), measurements)


def test_recist_partial_response_progression_and_stable_disease() -> None:
    tracks = [
        track(1, LesionType.LIVER, {1: 40.0, 2: 26.0, 3: 27.0, 4: 33.0}),
        track(2, LesionType.LUNG, {1: 20.0, 2: 12.0, 3: 12.0, 4: 16.0}),
    ]
    response = recist_response(tracks)
    assert response is not None and response.baseline_study == 1
    verdicts = {f.study: f for f in response.follow_ups}
    assert verdicts[2].response == "PR"  # 60 -> 38: -36.7%
    assert verdicts[2].change_from_baseline_pct == pytest.approx(-36.67, abs=0.01)
    assert verdicts[3].response == "PR"  # 39: still 35% below the baseline, +1 mm over the nadir
    assert verdicts[4].response == "PD"  # 49: +28.9% and +11 mm over the nadir 38
    assert verdicts[4].nadir_sum_mm == pytest.approx(38.0)
    stable = recist_response([track(1, LesionType.LIVER, {1: 40.0, 2: 44.0})])
    assert stable is not None and stable.follow_ups[0].response == "SD"  # +10%
    small_rise = recist_response([track(1, LesionType.LIVER, {1: 12.0, 2: 15.0})])
    assert small_rise is not None and small_rise.follow_ups[0].response == "SD"  # +25% but only 3 mm


def test_recist_new_lesion_nodes_missing_targets_and_target_choice() -> None:
    node = track(1, LesionType.MEDIASTINUM, {1: 25.0, 2: 14.0}, short={1: 18.0, 2: 8.0})
    assert recist_response([node]).follow_ups[0].response == "CR"  # type: ignore[union-attr]
    new = recist_response(
        [track(1, LesionType.LIVER, {1: 40.0, 2: 40.0}), track(2, LesionType.LUNG, {2: 5.0})]
    )
    assert new is not None and new.follow_ups[0].response == "PD"
    assert new.follow_ups[0].sum_response == "SD"  # the sums alone: no change
    assert new.follow_ups[0].new_lesions == ["000001-02"]
    missing = recist_response(
        [track(1, LesionType.LIVER, {1: 40.0, 2: 20.0}), track(2, LesionType.LUNG, {1: 30.0})]
    )
    assert missing is not None
    follow_up = missing.follow_ups[0]
    assert (follow_up.response, follow_up.complete, follow_up.missing) == ("PR", False, ["000001-02"])
    assert follow_up.baseline_sum_mm == pytest.approx(40.0)  # the same subset of targets
    # five targets at most, two per organ, the largest first; small nodes and small lesions not measurable
    many = [track(k, LesionType.LIVER, {1: 50.0 - k}) for k in range(1, 4)]
    many += [track(k, LesionType.LUNG, {1: 30.0 - k}) for k in range(4, 8)]
    many += [
        track(8, LesionType.MEDIASTINUM, {1: 30.0}, short={1: 14.0}),
        track(9, LesionType.BONE, {1: 9.0}),
    ]
    chosen = select_targets(many, 1)
    assert [t.track[-2:] for t in chosen] == ["01", "02", "04", "05"]
    assert recist_response([track(1, LesionType.LIVER, {1: 8.0, 2: 9.0})]).follow_ups[0].response == "NE"  # type: ignore[union-attr]


# --- scoring against the real pairs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_scores() -> dict:  # type: ignore[type-arg]
    catalog = load_catalog(UNION)
    pairs = resolve_pairs(catalog, DLT_PAIRS)
    return score_pairs(track_lesions(catalog), pairs)


@needs_shared
def test_dlt_pairs_resolve_and_the_baseline_matches_the_published_figure(real_scores: dict) -> None:  # type: ignore[type-arg]
    assert (real_scores["scored"], real_scores["absent"], real_scores["malformed"]) == (906, 0, 0)
    # the numbers for the nearest-normalized-position baseline: 85.9%, 82.3% on multi-candidate pairs
    assert real_scores["baseline_accuracy"] == pytest.approx(0.859, abs=0.0005)
    assert real_scores["baseline_multi_candidate_accuracy"] == pytest.approx(0.823, abs=0.0005)
    assert real_scores["multi_candidate_pairs"] == 723


@needs_shared
def test_links_beat_the_baseline_on_the_real_pairs(real_scores: dict) -> None:  # type: ignore[type-arg]
    # in-sample (the defaults were fitted on these pairs); the cross-validated figure is in docs/tracking.md
    assert real_scores["accuracy"] >= real_scores["baseline_accuracy"] + 0.05
    assert real_scores["multi_candidate_accuracy"] >= real_scores["baseline_multi_candidate_accuracy"] + 0.05
    low, high = real_scores["ci95"]
    assert low < real_scores["accuracy"] < high


def test_pairs_file_problems_are_findings(tmp_path: Path) -> None:
    rows = [lesion(1, 1, (0.3, 0.4, 0.5), 20.0), lesion(1, 2, (0.31, 0.4, 0.5), 22.0)]
    catalog = catalog_of(rows)

    def end(r: int) -> dict[str, object]:
        folder, number = catalog.file_name[r].rsplit("_", 1)
        return {"slice": f"{folder}/{number}", "coordinate": catalog.recist[r].ravel().round(1).tolist()}

    def pair(a: dict[str, object], b: dict[str, object]) -> dict[str, object]:
        return {
            "source recist slice": a["slice"],
            "source recist coordinate": a["coordinate"],
            "target recist slice": b["slice"],
            "target recist coordinate": b["coordinate"],
        }

    unknown = {"slice": "000009_01_01/010.png", "coordinate": [1, 2, 3, 4, 5, 6, 7, 8]}
    document = {
        "good": pair(end(0), end(1)),
        "back": pair(end(1), end(0)),
        "unknown": pair(end(0), unknown),
        "short": {**pair(end(0), end(1)), "target recist coordinate": [1, 2, 3]},
        "no-target": {
            "source recist slice": end(0)["slice"],
            "source recist coordinate": end(0)["coordinate"],
        },
        "bad-name": pair({"slice": "../../etc/passwd", "coordinate": [0] * 8}, end(1)),
    }
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(document))
    resolved = resolve_pairs(catalog, path)
    assert resolved.malformed == 3
    codes = sorted(f.code for f in resolved.findings)
    assert codes == ["pair-malformed"] * 3 + ["pair-unresolved"]
    scores = score_pairs(track_lesions(catalog), resolved)
    assert (scores["scored"], scores["absent"], scores["accuracy"]) == (2, 1, 1.0)
    (tmp_path / "broken.json").write_text("{not json")
    from deeplesion.errors import DeepLesionError

    with pytest.raises(DeepLesionError, match="not a JSON document"):
        resolve_pairs(catalog, tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DeepLesionError, match="expected a JSON object of lesion pairs"):
        resolve_pairs(catalog, tmp_path / "list.json")


# --- the command ----------------------------------------------------------------------------------------


def test_track_command_json_plots_and_errors(tmp_path: Path) -> None:
    rows = [lesion(1, s, (0.3, 0.4, 0.5), size) for s, size in ((1, 40.0), (2, 24.0), (3, 35.0))]
    rows += [
        lesion(1, s, (0.7, 0.45, 0.6), size, kind=LesionType.LUNG)
        for s, size in ((1, 22.0), (2, 14.0), (3, 20.0))
    ]
    rows += [lesion(2, 1, (0.5, 0.5, 0.5), 15.0)]  # sums 62, 38 (-39%: PR), 55 (+45% over the nadir: PD)
    path = catalog_of(rows, tmp_path)
    out = runner.invoke(app, ["track", "-a", str(path), "--json", "--plot", str(tmp_path / "plots")])
    assert out.exit_code == 0, out.output
    document = json.loads(out.stdout)
    assert document["counts"]["patients"] == 2 and document["counts"]["tracks"] == 3
    patient = document["patients"][0]
    assert [len(t["rows"]) for t in patient["tracks"]] == [3, 3]
    assert patient["tracks"][0]["rows"][0]["line"] == 2  # the first data row is line 2
    assert {k for k in patient["links"][0]} >= {"source_line", "target_line", "confidence"}
    assert [f["response"] for f in patient["response"]["follow_ups"]] == ["PR", "PD"]
    assert document["plots"] == [str(tmp_path / "plots" / "patient_000001.png")]  # patient 2: one study
    png = (tmp_path / "plots" / "patient_000001.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    text = runner.invoke(app, ["track", "-a", str(path), "--patient", "1"])
    assert text.exit_code == 0 and "study 2: PR" in text.stdout and "study 3: PD" in text.stdout
    unknown = runner.invoke(app, ["track", "-a", str(path), "--patient", "5"])
    assert unknown.exit_code == 2 and "patient 5 has no row" in unknown.output
    (tmp_path / "pairs.json").write_text("{not json")
    broken = runner.invoke(app, ["track", "-a", str(path), "--score-pairs", str(tmp_path / "pairs.json")])
    assert broken.exit_code == 1 and "not a JSON document" in broken.output
    assert "Traceback" not in broken.output


@needs_shared
def test_score_pairs_command_names_its_fields_and_says_in_sample() -> None:
    out = runner.invoke(app, ["track", "-a", str(UNION), "--score-pairs", str(DLT_PAIRS), "--json"])
    assert out.exit_code == 0, out.output
    document = json.loads(out.stdout)
    for name in ("accuracy", "ci95", "scored", "absent", "multi_candidate_accuracy", "baseline_accuracy"):
        assert name in document
    assert any("in-sample" in n for n in document["notes"])


# --- the synthetic release -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deeplesion.synth import make_synthetic_release

    out = tmp_path_factory.mktemp("tracking") / "release"
    # seed 6: 8 patients whose lesions give 134 identity pairs (seed 3's gave 48 after version 24
    # drew the plans anew; the tests want at least 50 to score)
    make_synthetic_release(out, patients=8, seed=6)
    return out


def test_tracks_follow_the_synthetic_lesion_identities(synthetic: Path) -> None:
    catalog = load_catalog(synthetic / "DL_info.csv")
    ids = json.loads((synthetic / "synth-manifest.json").read_text())["lesion_ids"]
    result = track_lesions(catalog)
    scores = score_pairs(result, identity_pairs(catalog, ids))
    assert scores["scored"] >= 50
    assert scores["accuracy"] >= 0.9 and scores["track_accuracy"] >= 0.9
    # a track holds one lesion: nearly every track's rows carry one identity
    identity = [ids[int(r)] for r in catalog.row]
    pure = [len({identity[r] for r in t.rows}) == 1 for t in result.tracks]
    assert np.mean(pure) >= 0.95
    # and the command scores a manifest the same way
    out = runner.invoke(
        app,
        [
            "track",
            "--root",
            str(synthetic),
            "--score-pairs",
            str(synthetic / "synth-manifest.json"),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["accuracy"] == scores["accuracy"]


def test_synthetic_locations_carry_the_real_noise(synthetic: Path) -> None:
    catalog = load_catalog(synthetic / "DL_info.csv")
    ids = json.loads((synthetic / "synth-manifest.json").read_text())["lesion_ids"]
    pairs = identity_pairs(catalog, ids)
    across = catalog.study[pairs.source] < catalog.study[pairs.target]
    difference = catalog.location[pairs.target[across]] - catalog.location[pairs.source[across]]
    sd = difference.std(axis=0)
    # the real cross-study differences: sd 0.032, 0.037, 0.011 (x, y, z); 0 would make tracking trivial
    assert np.all(sd > [0.015, 0.015, 0.004]) and np.all(sd < [0.06, 0.06, 0.03]), sd


def test_parameters_are_plain_data() -> None:
    assert dataclasses.replace(FITTED, size_weight=0.1).size_weight == 0.1
    assert set(FITTED.to_dict()) >= {"size_weight", "max_cost", "temperature"}
