"""The FROC: hand-computed cases, properties, agreement with the reference implementations, inputs, CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deeplesion.boxes import to_coco
from deeplesion.catalog import Catalog, LesionType, dl_info_text, from_lesions, load_catalog
from deeplesion.errors import PredictionError
from deeplesion.evaluate import evaluate, read_predictions_coco, read_predictions_csv
from deeplesion.evaluate.predictions import Predictions
from deeplesion.names import coco_image_id, file_name_of_image_id

from .froc_reference import froc, mulan_levels, three_dce_levels
from .release_builder import lesion_row

LEVELS = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]


def make_catalog(lesions: dict[str, list[list[float]]], noisy: set[str] = frozenset()) -> Catalog:  # type: ignore[assignment]
    """Test-split rows: file name -> boxes (0-based). Folder (patient) from the name."""
    rows = []
    for name, boxes in lesions.items():
        patient, study, series, number = (int(p) for p in name[:-4].split("_"))
        for box in boxes:
            row = lesion_row((patient, study, series), number, number - 2, number + 2, 5.0)
            rows.append(dataclasses.replace(row, box=np.array(box, dtype=float), noisy=name in noisy))
    return from_lesions(rows)


def preds(rows: list[tuple[str, list[float], float]]) -> Predictions:
    return Predictions(
        np.array([r[0] for r in rows], dtype=object),
        np.array([r[1] for r in rows], dtype=float).reshape(-1, 4),
        np.array([r[2] for r in rows], dtype=float),
        np.arange(len(rows), dtype=np.int64) + 2,
        "test",
    )


A, B, C = "000001_01_01_010.png", "000002_01_01_010.png", "000003_01_01_010.png"
BOX = [0.0, 0.0, 9.0, 9.0]
FAR = [100.0, 100.0, 109.0, 109.0]


def test_hand_computed_flat_steps_duplicates_and_beyond_the_curve() -> None:
    catalog = make_catalog({A: [BOX], B: [BOX]})
    detections = preds([(A, BOX, 0.9), (B, FAR, 0.8), (B, BOX, 0.7), (A, BOX, 0.6), (A, FAR, 0.5)])
    # curve: (0, .5) hit, (.5, .5) FP, (.5, 1) hit, (.5, 1) duplicate: neither, (1, 1) FP
    mulan = evaluate(catalog, detections, fp_levels=[0.25, 0.5, 1, 2]).result
    assert mulan["sensitivity"] == {"0.25": 0.5, "0.5": 1.0, "1": 1.0, "2": 1.0}  # last point of a step
    assert mulan["max_fp_per_image"] == 1.0 and mulan["extrapolated"] == []
    three = evaluate(catalog, detections, fp_levels=[0.25, 0.5, 1, 2], protocol="3dce").result
    assert three["sensitivity"] == {"0.25": 0.5, "0.5": 0.5, "1": 1.0, "2": 1.0}  # first point of a step
    assert three["extrapolated"] == ["2"]
    assert mulan["images"] == 2 and mulan["lesions"] == 2 and mulan["predictions"] == 5
    assert mulan["mean_sensitivity_0.5_4"] == 1.0 and three["mean_sensitivity_0.5_4"] == pytest.approx(0.875)


def test_one_detection_spanning_two_lesions_finds_both() -> None:
    catalog = make_catalog({A: [[0, 0, 9, 9], [2, 0, 11, 9]], C: [BOX]})
    # IoU with each lesion: 90 / 110 = 0.818
    result = evaluate(catalog, preds([(A, [1, 0, 10, 9], 0.9), (C, FAR, 0.1)]), fp_levels=[0.5]).result
    assert result["sensitivity"] == {"0.5": pytest.approx(2 / 3)}


def test_empty_images_count_in_the_denominator() -> None:
    catalog = make_catalog({A: [BOX], B: [BOX], C: [BOX]})
    result = evaluate(catalog, preds([(A, FAR, 0.9), (A, BOX, 0.5)]), fp_levels=[1 / 3, 1]).result
    assert result["images"] == 3 and result["max_fp_per_image"] == pytest.approx(1 / 3)
    assert result["sensitivity"]["1"] == pytest.approx(1 / 3)


def test_defined_answers() -> None:
    catalog = make_catalog({A: [BOX], B: [BOX]})
    none = evaluate(catalog, preds([])).result
    assert set(none["sensitivity"].values()) == {0.0} and "no predictions" in " ".join(none["notes"])
    perfect = evaluate(catalog, preds([(A, BOX, 0.9), (B, BOX, 0.8)]), protocol="3dce").result
    assert set(perfect["sensitivity"].values()) == {1.0} and "no false positive" in " ".join(perfect["notes"])
    single = make_catalog({A: [BOX]})
    early = evaluate(
        single, preds([(A, FAR, 0.9), (A, BOX, 0.5)]), fp_levels=[0.5, 1], protocol="3dce"
    ).result
    # first point (1, 0): level 0.5 lies below it -> from (0, 0): 0; the reference would divide by zero
    assert early["sensitivity"] == {"0.5": 0.0, "1": 0.0}
    assert "below the first curve point" in " ".join(early["notes"])


def test_noisy_lesions_are_removed_and_hits_on_them_are_false_positives() -> None:
    catalog = make_catalog({A: [BOX], B: [BOX]}, noisy={B})
    result = evaluate(catalog, preds([(A, BOX, 0.9), (B, BOX, 0.8)]), fp_levels=[1]).result
    assert result["images"] == 1 and result["lesions"] == 1
    assert result["ignored_predictions"] == 1  # B is a slice of the split but not evaluated


def test_lesion_strata_keep_every_detection() -> None:
    small, large = [0.0, 0.0, 9.0, 9.0], [20.0, 20.0, 79.0, 79.0]
    rows = []
    for box, diameter in ((small, 8.0), (large, 60.0)):
        row = lesion_row((1, 1, 1), 10, 8, 12, 5.0)
        rows.append(dataclasses.replace(row, box=np.array(box), diameters_px=(diameter / 0.8, 1.0)))
    catalog = from_lesions(rows)
    detections = preds([(A, large, 0.9), (A, small, 0.8)])
    result = evaluate(catalog, detections, by="size", fp_levels=[1]).result
    strata = {s["name"]: s for s in result["strata"]}
    assert strata["<10 mm"]["lesions"] == 1 and strata[">30 mm"]["lesions"] == 1
    # in the small stratum the hit on the large lesion is a false positive (1 FP on 1 image)
    assert strata["<10 mm"]["max_fp_per_image"] == 1.0 and strata["<10 mm"]["sensitivity"]["1"] == 1.0
    assert strata["10-30 mm"]["lesions"] == 0 and strata["10-30 mm"]["sensitivity"]["1"] is None
    assert "false positive" in result["strata_rule"]


def random_problem(rng: np.random.Generator, images: int) -> tuple[Catalog, Predictions]:
    lesions: dict[str, list[list[float]]] = {}
    rows = []
    for i in range(images):
        name = f"{i + 1:06d}_01_01_010.png"
        lesions[name] = []
        for _ in range(int(rng.integers(1, 4))):
            x, y = rng.uniform(0, 200, 2)
            w, h = rng.uniform(5, 40, 2)
            lesions[name].append([x, y, x + w, y + h])
            if rng.random() < 0.7:
                jitter = rng.normal(0, 4, 4)
                box = np.array([x, y, x + w, y + h]) + jitter
                rows.append((name, [box[0], box[1], max(box[0], box[2]), max(box[1], box[3])], 0.0))
        for _ in range(int(rng.integers(1, 5))):  # at least one random box: the curve reaches past 0.5 FP
            x, y = rng.uniform(0, 200, 2)
            rows.append((name, [x, y, x + rng.uniform(5, 40), y + rng.uniform(5, 40)], 0.0))
    scores = rng.permutation(len(rows)) / max(len(rows), 1)  # distinct
    rows = [(n, b, float(s)) for (n, b, _), s in zip(rows, scores, strict=True)]
    return make_catalog(lesions), preds(rows)


def reference_levels(
    catalog: Catalog, detections: Predictions, protocol: str
) -> tuple[np.ndarray, np.ndarray]:
    names = sorted(set(catalog.file_name.tolist()))
    index = {n: i for i, n in enumerate(names)}
    gts = [np.zeros((0, 4)) for _ in names]
    for lesion in catalog:
        gts[index[lesion.file_name]] = np.vstack([gts[index[lesion.file_name]], lesion.box])
    boxes = [np.zeros((0, 5)) for _ in names]
    for name, box, score in zip(detections.file_name, detections.boxes, detections.score, strict=True):
        boxes[index[name]] = np.vstack([boxes[index[name]], [*box, score]])
    sens, fp = froc(boxes, gts, 0.5)
    values = mulan_levels(sens, fp, LEVELS) if protocol == "mulan" else three_dce_levels(sens, fp, LEVELS)
    return values, fp


@settings(deadline=None, max_examples=40)
@given(st.integers(0, 10_000), st.integers(2, 40))
def test_agrees_with_both_reference_implementations(seed: int, images: int) -> None:
    catalog, detections = random_problem(np.random.default_rng(seed), images)
    for protocol in ("mulan", "3dce"):
        ours = evaluate(catalog, detections, protocol=protocol, fp_levels=LEVELS).result  # type: ignore[arg-type]
        theirs, fp = reference_levels(catalog, detections, protocol)
        compared = 0
        for level, value in zip(LEVELS, theirs, strict=True):
            if fp[-1] == 0 or level < fp[0] or not np.isfinite(value):
                continue  # the defined answers, where the references fail or differ on purpose
            assert abs(ours["sensitivity"][format(level, "g")] - value) <= 1e-9, (protocol, level)
            compared += 1
        assume(compared >= 1)  # a problem that compares no level is discarded, never passed vacuously


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 10_000))
def test_properties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    catalog, detections = random_problem(rng, int(rng.integers(2, 25)))
    # ground truth as predictions: everything found, nothing false
    truth = preds([(x.file_name, x.box.tolist(), 1.0 - i * 1e-6) for i, x in enumerate(catalog)])
    perfect = evaluate(catalog, truth).result
    assert set(perfect["sensitivity"].values()) == {1.0} and perfect["max_fp_per_image"] == 0.0
    for protocol in ("mulan", "3dce"):
        base = evaluate(catalog, detections, protocol=protocol).result  # type: ignore[arg-type]
        order = rng.permutation(len(detections))
        shuffled = detections.take(np.ones(len(detections), bool))
        shuffled = Predictions(
            shuffled.file_name[order],
            shuffled.boxes[order],
            shuffled.score[order],
            shuffled.line[order],
            "shuffled",
        )
        assert evaluate(catalog, shuffled, protocol=protocol).result["sensitivity"] == base["sensitivity"]
        extra_name = str(catalog.file_name[0])
        lowest = float(detections.score.min()) - 1.0 if len(detections) else 0.0
        more = Predictions(
            np.append(detections.file_name, extra_name),
            np.vstack([detections.boxes, [300, 300, 320, 320]]),
            np.append(detections.score, lowest),
            np.append(detections.line, 0),
            "more",
        )
        after = evaluate(catalog, more, protocol=protocol).result  # type: ignore[arg-type]
        below = [level for level in LEVELS if level < base["max_fp_per_image"]]
        # a problem whose curve ends at the lowest level has nothing to compare: hypothesis discards it
        # (and fails as unsatisfiable if it had to discard them all), so the test is never vacuous
        assume(below)
        for level in below:
            key = format(level, "g")
            assert after["sensitivity"][key] == base["sensitivity"][key]


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("File_name,x1,y1,x2,y2,score\n" + "\n".join(rows) + "\n")
    return path


def test_bad_prediction_rows_are_named(tmp_path: Path) -> None:
    catalog = make_catalog({A: [BOX]})
    for row, message in [
        (f"{A},0,0,nan,9,0.5", "NaN or infinite"),
        (f"{A},5,0,1,9,0.5", "x2 < x1"),
        (f"{A},0,0,9,9,high", "not a number"),
        (f"{A},0,0,9", "cells"),
        ("scan.png,0,0,9,9,0.5", "not a slice name"),
    ]:
        with pytest.raises(PredictionError, match=message) as caught:
            read_predictions_csv(write_csv(tmp_path / "p.csv", [f"{A},0,0,9,9,0.9", row]))
        assert ":3:" in str(caught.value) or "p.csv:3" in str(caught.value)
    outside = read_predictions_csv(
        write_csv(tmp_path / "o.csv", [f"{A},0,0,9,9,0.9", "009999_01_01_001.png,0,0,9,9,0.5"])
    )
    with pytest.raises(
        PredictionError, match=r"o\.csv:3: 009999_01_01_001\.png is not a slice of the evaluated split"
    ):
        evaluate(catalog, outside)
    lenient = evaluate(catalog, outside, lenient=True).result
    assert lenient["skipped_predictions"] == 1 and lenient["sensitivity"]["1"] == 1.0
    negative = read_predictions_csv(write_csv(tmp_path / "n.csv", [f"{A},-3,-2,9,9,0.9"]))
    assert negative.boxes[0, 0] == -3.0  # boxes may extend past the image edge
    with pytest.raises(PredictionError, match="column"):
        (tmp_path / "h.csv").write_text("name,x1,y1,x2,y2,score\n")
        read_predictions_csv(tmp_path / "h.csv")


def test_csv_fast_path_equals_the_csv_module(tmp_path: Path) -> None:
    # the same rows machine-written, with CRLF ends, blank lines, extra columns in another order, and
    # quoted cells (which take the csv module's path): the same predictions and the same file lines
    rows = [f"{A},1.5,2,9,9.25,0.9", "", f"{A},0,0,19,19,0.125"]
    plain = read_predictions_csv(write_csv(tmp_path / "plain.csv", rows))
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes((tmp_path / "plain.csv").read_bytes().replace(b"\n", b"\r\n"))
    reordered = tmp_path / "reordered.csv"
    reordered.write_text(
        'score,File_name,note,x1,y1,x2,y2\n0.9,"' + A + '","a, b",1.5,2,9,9.25\n\n'
        "0.125," + A + ",c,0,0,19,19\n"
    )
    for other in (read_predictions_csv(crlf), read_predictions_csv(reordered)):
        assert other.file_name.tolist() == plain.file_name.tolist() == [A, A]
        np.testing.assert_array_equal(other.boxes, plain.boxes)
        np.testing.assert_array_equal(other.score, plain.score)
        assert other.line.tolist() == plain.line.tolist() == [2, 4]
    with pytest.raises(PredictionError, match=r"p\.csv:4: not a number"):
        read_predictions_csv(write_csv(tmp_path / "p.csv", [f"{A},0,0,9,9,0.9", "", f"{A},0,x,9,9,0.9"]))


def test_coco_results_give_the_same_numbers(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    catalog, detections = random_problem(rng, 12)
    assert file_name_of_image_id(coco_image_id("000676_01_01_1022.png")) == "000676_01_01_1022.png"
    triples = zip(detections.file_name, to_coco(detections.boxes), detections.score, strict=True)
    coco = [
        {"image_id": coco_image_id(n), "category_id": 1, "bbox": b.tolist(), "score": float(s)}
        for n, b, s in triples
    ]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(coco))
    from_coco = evaluate(catalog, read_predictions_coco(path)).result
    assert from_coco["sensitivity"] == evaluate(catalog, detections).result["sensitivity"]


def test_bootstrap_is_seeded() -> None:
    catalog, detections = random_problem(np.random.default_rng(5), 30)
    first = evaluate(catalog, detections, bootstrap=50, seed=3).result["confidence_intervals"]
    again = evaluate(catalog, detections, bootstrap=50, seed=3).result["confidence_intervals"]
    assert first == again and first["replicates"] == 50
    for low, high in first["sensitivity"].values():
        assert 0.0 <= low <= high <= 1.0


def test_bootstrap_equals_a_direct_resampling_of_patients() -> None:
    # each image of random_problem is its own patient: draw patients with replacement as the bootstrap
    # does (same generator, same calls), build each replicate as a real catalog with renamed copies,
    # evaluate it plainly, and take the same percentiles
    catalog, detections = random_problem(np.random.default_rng(11), 8)
    replicates, seed = 20, 7
    result = evaluate(catalog, detections, bootstrap=replicates, seed=seed).result["confidence_intervals"]
    names = sorted(set(catalog.file_name.tolist()))  # patient order = sorted patient ids = sorted names
    boxes_of = {n: [x.box.tolist() for x in catalog if x.file_name == n] for n in names}
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(replicates):
        drawn = np.bincount(rng.integers(0, len(names), len(names)), minlength=len(names))
        lesions: dict[str, list[list[float]]] = {}
        rows = []
        for name, copies in zip(names, drawn, strict=True):
            for copy in range(int(copies)):
                renamed = f"{name[:7]}{copy + 1:02d}{name[9:]}"  # the copy's own study: another image
                lesions[renamed] = boxes_of[name]
                rows += [
                    (renamed, box.tolist(), float(score))
                    for file_name, box, score in zip(
                        detections.file_name, detections.boxes, detections.score, strict=True
                    )
                    if file_name == name
                ]
        plain = evaluate(make_catalog(lesions), preds(rows)).result["sensitivity"]
        samples.append([plain[format(level, "g")] for level in LEVELS])
    low, high = np.percentile(np.array(samples), [2.5, 97.5], axis=0)
    for i, level in enumerate(LEVELS):
        assert result["sensitivity"][format(level, "g")] == pytest.approx([low[i], high[i]], abs=1e-12)
    assert len({tuple(s) for s in samples}) > 1  # the replicates differ: the check is not vacuous


def test_cli_json_and_plot(tmp_path: Path) -> None:
    catalog, detections = random_problem(np.random.default_rng(2), 10)
    annotations = tmp_path / "DL_info_test.csv"
    annotations.write_text(dl_info_text(catalog))
    rows = [
        f"{n},{b[0]},{b[1]},{b[2]},{b[3]},{s}"
        for n, b, s in zip(detections.file_name, detections.boxes, detections.score, strict=True)
    ]
    predictions = write_csv(tmp_path / "preds.csv", rows)
    plot = tmp_path / "froc.png"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deeplesion.cli.main",
            "evaluate",
            str(predictions),
            "-a",
            str(annotations),
            "--protocol",
            "3dce",
            "--by",
            "interval",
            "--plot",
            str(plot),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in (
        "protocol",
        "frame",
        "iou",
        "iobb",
        "tie_rule",
        "split",
        "images",
        "lesions",
        "predictions",
        "ignored_predictions",
        "sensitivity",
        "mean_sensitivity_0.5_4",
        "max_fp_per_image",
        "extrapolated",
        "notes",
        "inputs",
    ):
        assert key in result, key
    assert list(result["sensitivity"]) == ["0.5", "1", "2", "4", "8", "16"]
    assert result["frame"] == "original" and result["protocol"] == "3dce"
    assert len(result["inputs"]["predictions"]["sha256"]) == 64 and result["inputs"]["deeplesion_version"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = subprocess.run(
        [sys.executable, "-m", "deeplesion.cli.main", "evaluate", str(predictions), "-a", str(annotations)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert table.returncode == 0 and "mean0.5-4" in table.stdout


def test_real_test_split_ground_truth_as_predictions(dl_info_dir: Path) -> None:
    catalog = load_catalog(dl_info_dir / "DL_info_test.csv")
    clean = catalog.filter(noisy=False)
    truth = Predictions(
        clean.file_name, clean.box, 1.0 - np.arange(len(clean)) * 1e-6, np.arange(len(clean)), "truth"
    )
    result = evaluate(catalog, truth, by="type").result
    assert result["images"] == 4817 and result["lesions"] == 4912
    assert set(result["sensitivity"].values()) == {1.0}
    assert sum(s["lesions"] for s in result["strata"]) == 4912
    assert {s["name"] for s in result["strata"]} == {t.label for t in LesionType} - {"unknown"}
