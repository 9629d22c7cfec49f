"""Score the links against lesion pairs of known identity: the Deep Lesion Tracker pairs, or the
identities a synthetic release records.

A DLT pair (``valid.json`` of the Deep Lesion Tracker, Cai et al. 2021) names the same lesion in two
scans by its RECIST slice (``"000004_02_01/013.png"``) and RECIST coordinates (8 numbers, 0-based pixels,
rounded to 0.1 px). Each end is resolved to the row of that slice whose RECIST endpoints (the toolkit's
0-based frame: the CSV's coordinates minus 1) equal the pair's within 0.06 px. A pair is scored when
both ends resolve; otherwise it is counted as ``absent``, never guessed.

For a scored pair (source row ``s``, target row ``t``), the candidates are all rows of ``t``'s patient
and study. The method's answer is the row of the target study with the most evidence of being ``s``:
its direct link to ``s`` and, weighted by ``TrackingParameters.path_weight``, the links through rows of
the patient's other studies (with ``path_weight`` 0, the row linked to ``s`` with the highest confidence;
no evidence: wrong). The baseline answers the candidate nearest to ``s`` in
normalized body position; as in the issue's definition, ``s`` itself is a candidate when both ends lie in
one study (two series), which the baseline then picks.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import Catalog
from deeplesion.errors import DeepLesionError
from deeplesion.findings import Finding, make_finding
from deeplesion.tracking.matching import PATH_COST_SCALE, Link
from deeplesion.tracking.tracks import TrackingResult

MATCH_TOLERANCE_PX = 0.06
"""How far (px) a pair's RECIST coordinates may lie from a row's: the pairs are rounded to 0.1 px."""

BOOTSTRAP_REPLICATES = 2000

_SLICE = re.compile(r"^(\d{6}_\d{2}_\d{2})/(\d{3,4})\.png$")


@dataclass
class ResolvedPairs:
    """Lesion pairs resolved to catalog rows.

    Attributes
    ----------
    keys
        (P,) the pairs' names (the JSON keys, or ``id -> id`` for identities).
    source, target
        (P,) int64 catalog positions; -1 where that end is absent from the annotations.
    malformed
        Number of entries that could not be read (each has a ``pair-malformed`` finding).
    findings
        ``pair-malformed`` and ``pair-unresolved`` findings.
    sha256
        SHA-256 of the pairs file (None for pairs built in memory).
    kind
        What the pairs are, for a person: Deep Lesion Tracker pairs or synthetic lesion identities.
    """

    keys: list[str]
    source: npt.NDArray[np.int64]
    target: npt.NDArray[np.int64]
    malformed: int = 0
    findings: list[Finding] = field(default_factory=list)
    sha256: str | None = None
    kind: str = "lesion pairs"


def _resolve_end(
    catalog: Catalog, index: dict[str, npt.NDArray[np.int64]], slice_name: Any, coordinates: Any
) -> int | str:
    """The row of one pair end, -1 when absent, or a message saying what is malformed."""
    match = _SLICE.match(slice_name) if isinstance(slice_name, str) else None
    if match is None:
        return f"RECIST slice {slice_name!r} is not FOLDER/NNN.png (like 000004_02_01/013.png)"
    try:
        points = np.asarray(coordinates, dtype=np.float64).reshape(4, 2)
    except (TypeError, ValueError):
        return f"RECIST coordinate {coordinates!r} is not 8 numbers"
    if not np.all(np.isfinite(points)):
        return f"RECIST coordinate {coordinates!r} has a value that is not finite"
    for row in index.get(f"{match.group(1)}_{match.group(2)}.png", ()):
        if np.abs(catalog.recist[row] - points).max() <= MATCH_TOLERANCE_PX:
            return int(row)
    return -1


def load_pairs(catalog: Catalog, path: str | Path) -> ResolvedPairs:
    """Read a pairs file of either kind: a synthetic release's ``synth-manifest.json`` (its
    ``lesion_ids``, :func:`identity_pairs`) or Deep Lesion Tracker pairs (:func:`resolve_pairs`).

    Raises
    ------
    DeepLesionError
        When the file is not JSON, or is neither kind.
    """
    path = Path(path)
    data, document = _read_json(path)
    if isinstance(document, dict) and "lesion_ids" in document:
        ids = document["lesion_ids"]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise DeepLesionError(f"{path}: 'lesion_ids' must be a list of strings, one per DL_info.csv row")
        pairs = identity_pairs(catalog, ids)
    else:
        pairs = _resolve_document(catalog, document, path)
    pairs.sha256 = hashlib.sha256(data).hexdigest()
    return pairs


def resolve_pairs(catalog: Catalog, path: str | Path) -> ResolvedPairs:
    """Read a pairs file in the Deep Lesion Tracker format and find each end among the catalog's rows.

    Parameters
    ----------
    catalog
        The annotations the pairs are scored against.
    path
        A JSON object ``{name: {"source recist slice": ..., "source recist coordinate": [8 numbers],
        "target recist slice": ..., "target recist coordinate": [...]}, ...}`` (other fields ignored).

    Returns
    -------
    ResolvedPairs
        Rows of both ends; malformed entries become findings, never a crash.

    Raises
    ------
    DeepLesionError
        When the file is not JSON or not an object of pairs.
    """
    path = Path(path)
    data, document = _read_json(path)
    pairs = _resolve_document(catalog, document, path)
    pairs.sha256 = hashlib.sha256(data).hexdigest()
    return pairs


def _read_json(path: Path) -> tuple[bytes, Any]:
    """The bytes of ``path`` (for its SHA-256) and their parsed JSON; a one-line error when not JSON."""
    data = path.read_bytes()
    try:
        return data, json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DeepLesionError(f"{path}: not a JSON document ({exc})") from None


def _resolve_document(catalog: Catalog, document: Any, path: Path) -> ResolvedPairs:
    """:func:`resolve_pairs` on the parsed JSON of ``path`` (named in the messages)."""
    if not isinstance(document, dict):
        raise DeepLesionError(
            f"{path}: expected a JSON object of lesion pairs (name -> pair), as the Deep Lesion Tracker's "
            f"valid.json, not a {type(document).__name__}"
        )
    index = catalog.key_slice_groups()
    keys, sources, targets, findings = [], [], [], []
    malformed = 0
    for key, pair in document.items():
        ends: list[int] = []
        problem = None
        if not isinstance(pair, dict):
            problem = "is not an object"
        else:
            for end in ("source", "target"):
                fields = (f"{end} recist slice", f"{end} recist coordinate")
                absent = [f for f in fields if f not in pair]
                if absent:
                    problem = f"lacks {', '.join(repr(f) for f in absent)}"
                    break
                row = _resolve_end(catalog, index, pair[fields[0]], pair[fields[1]])
                if isinstance(row, str):
                    problem = row
                    break
                ends.append(row)
        if problem is not None:
            malformed += 1
            findings.append(
                make_finding("pair-malformed", f"{path}: pair {key!r} {problem}", file=str(path), value=key)
            )
            continue
        keys.append(str(key))
        sources.append(ends[0])
        targets.append(ends[1])
        if -1 in ends:
            which = " and ".join(e for e, r in zip(("source", "target"), ends, strict=True) if r == -1)
            findings.append(
                make_finding(
                    "pair-unresolved",
                    f"{path}: pair {key!r}: the {which} lesion is not among the annotations' rows "
                    f"(no row of its RECIST slice has its coordinates within {MATCH_TOLERANCE_PX} px); "
                    "counted as absent",
                    file=str(path),
                    value=key,
                )
            )
    return ResolvedPairs(
        keys=keys,
        source=np.asarray(sources, dtype=np.int64),
        target=np.asarray(targets, dtype=np.int64),
        malformed=malformed,
        findings=findings,
        kind="Deep Lesion Tracker pairs",
    )


def identity_pairs(catalog: Catalog, lesion_ids: Sequence[str]) -> ResolvedPairs:
    """Pairs from known lesion identities (a synthetic release's ``synth-manifest.json``).

    Every two rows with the same id in two different scans give two pairs (each way, as the DLT pairs
    come). ``lesion_ids`` has one string per catalog row, in file order.
    """
    if len(lesion_ids) != len(catalog):
        raise DeepLesionError(
            f"the manifest names {len(lesion_ids)} lesion ids but the annotations have {len(catalog)} rows; "
            "give the DL_info.csv of the same synthetic release"
        )
    ids = [lesion_ids[int(r)] for r in catalog.row]
    rows_of: dict[str, list[int]] = {}
    for i, lesion_id in enumerate(ids):
        rows_of.setdefault(lesion_id, []).append(i)
    keys, sources, targets = [], [], []
    scan = np.column_stack([catalog.patient, catalog.study, catalog.series])
    for lesion_id, rows in rows_of.items():
        for a in rows:
            for b in rows:
                if a != b and np.any(scan[a] != scan[b]):
                    keys.append(f"{lesion_id}: {catalog.file_name[a]} -> {catalog.file_name[b]}")
                    sources.append(a)
                    targets.append(b)
    return ResolvedPairs(
        keys, np.asarray(sources, np.int64), np.asarray(targets, np.int64), kind="synthetic lesion identities"
    )


def pair_answers(result: TrackingResult, pairs: ResolvedPairs) -> dict[str, npt.NDArray[Any]]:
    """Each pair's answers (both ends must be resolved).

    Returns
    -------
    dict
        (P,) arrays: ``method`` (int64 row the best link gives, -1 when none; where that row has twins,
        the one ``twin_rule`` names), ``confidence`` (float64, of the best link; 0 when none), ``track``
        (row read off the source's track, -1 when none), ``baseline`` (nearest normalized position) and
        ``candidates`` (int64 rows of the target's patient and study).
    """
    catalog = result.catalog
    location = result.features.location
    method, confidence, track, baseline, candidates = [], [], [], [], []
    for s, t in zip(pairs.source.tolist(), pairs.target.tolist(), strict=True):
        key = (int(catalog.patient[t]), int(catalog.study[t]))
        rows = result.rows_of_study(t)
        candidates.append(len(rows))
        distance = np.linalg.norm(location[rows] - location[s], axis=1)
        baseline.append(rows[int(np.argmin(distance))])
        best, best_confidence = -1, -1.0
        confidence_to: dict[int, float] = {}
        for link in result.links_from(s):
            other = link.other(s)
            confidence_to[other] = link.confidence
            if (
                int(catalog.patient[other]),
                int(catalog.study[other]),
            ) == key and link.confidence > best_confidence:
                best, best_confidence = other, link.confidence
        if result.parameters.path_weight > 0.0:
            same_patient = int(catalog.patient[s]) == key[0]  # links never join two patients
            best = _path_answer(result, s, key[1], result.parameters.path_weight) if same_patient else -1
            best_confidence = confidence_to.get(best, 0.0)
        if best >= 0 and result.parameters.twin_rule:
            best = _named_twin(result, s, best, result.parameters.twin_rule)  # the confidence stays
        method.append(best)
        confidence.append(max(best_confidence, 0.0))
        index = result.track_of_row[s]
        members = (
            [
                r
                for r in result.tracks[index].rows
                if r != s and (int(catalog.patient[r]), int(catalog.study[r])) == key
            ]
            if index >= 0
            else []
        )
        track.append(max(members, key=lambda r: confidence_to.get(r, 0.0)) if members else -1)
    return {
        "method": np.asarray(method, np.int64),
        "confidence": np.asarray(confidence, np.float64),
        "track": np.asarray(track, np.int64),
        "baseline": np.asarray(baseline, np.int64),
        "candidates": np.asarray(candidates, np.int64),
    }


def _path_answer(result: TrackingResult, source: int, target_study: int, path_weight: float) -> int:
    """The row of study ``target_study`` (of the source's patient) with the most evidence of being
    ``source``: the weight of its direct link plus ``path_weight`` times the weights through each row of
    another study linked to both (:attr:`~deeplesion.tracking.TrackingParameters.path_weight`); -1 when
    none has any. Links join rows of one patient, so the study number alone names the study."""
    study = result.catalog.study

    def weight(link: Link) -> float:
        return math.exp(-link.cost / PATH_COST_SCALE)

    own_study = int(study[source])
    score: dict[int, float] = {}
    for link in result.links_from(source):
        other = link.other(source)
        if int(study[other]) == target_study:
            score[other] = score.get(other, 0.0) + weight(link)
        elif int(study[other]) != own_study:
            for onward in result.links_from(other):
                end = onward.other(other)
                # back to the source itself: it is never its own answer (a pair within one study asks
                # for the lesion on the other series)
                if int(study[end]) == target_study and end != source:
                    score[end] = score.get(end, 0.0) + path_weight * weight(link) * weight(onward)
    return max(score, key=lambda row: score[row]) if score else -1


def _named_twin(result: TrackingResult, source: int, answer: int, rule: int) -> int:
    """The row a pair names among ``answer`` and its twins on other series of its study (one lesion
    bookmarked on several series; :func:`_twin_rows`), by ``TrackingParameters.twin_rule``: with rule 1
    the series next to ``source`` in volume order (study, then series number), with -1 the farthest. An
    answer in the source's own study, or without a twin, stays."""
    catalog = result.catalog
    if catalog.study[answer] == catalog.study[source]:
        return answer
    rows = [answer, *_twin_rows(result, answer, source)]
    # from an earlier study the nearest volume is the follow-up's first series, from a later one its last
    nearest_first = (catalog.study[answer] > catalog.study[source]) == (rule > 0)
    series = [int(catalog.series[r]) for r in rows]
    return int(rows[int(np.argmin(series)) if nearest_first else int(np.argmax(series))])


def _patient_bootstrap(correct: npt.NDArray[np.bool_], patient: npt.NDArray[np.int64]) -> list[float]:
    """95% percentile interval of the accuracy, resampling patients (pairs of a patient are not
    independent: DLT lists each pair both ways)."""
    if len(correct) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(0)
    patients, group = np.unique(patient, return_inverse=True)
    hits = np.bincount(group, weights=correct.astype(np.float64), minlength=len(patients))
    totals = np.bincount(group, minlength=len(patients)).astype(np.float64)
    draws = rng.integers(0, len(patients), size=(BOOTSTRAP_REPLICATES, len(patients)))
    accuracy = hits[draws].sum(axis=1) / totals[draws].sum(axis=1)
    low, high = np.percentile(accuracy, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def score_pairs(result: TrackingResult, pairs: ResolvedPairs) -> dict[str, Any]:
    """How often the links find the paired lesion, next to the nearest-position baseline.

    Parameters
    ----------
    result
        Tracking of (at least) every patient the pairs name.
    pairs
        From :func:`resolve_pairs` or :func:`identity_pairs`.

    Returns
    -------
    dict
        ``accuracy``, ``ci95`` (patient bootstrap), ``scored``, ``absent``, ``malformed``,
        ``multi_candidate_accuracy`` (pairs with more than one candidate), ``multi_candidate_pairs``,
        ``baseline_accuracy``, ``baseline_multi_candidate_accuracy``, ``track_accuracy`` (answer read off
        the chained tracks instead of the direct link), ``unlinked`` (pairs whose source has no link into
        the target study), ``other_series_answers`` (wrong answers that lie on another series of the
        target study within 0.02 in normalized position and 20% in long diameter of the target: most
        likely the same lesion bookmarked on both series, of which the pair names one),
        ``single_series_pairs`` and ``single_series_accuracy`` (the pairs whose target lesion has no such
        twin, where the pair's answer is unambiguous).
    """
    catalog = result.catalog
    present = (pairs.source >= 0) & (pairs.target >= 0)
    source, target = pairs.source[present], pairs.target[present]
    tracked = set(result.patients)
    outside = [int(p) for p in catalog.patient[source] if int(p) not in tracked]
    if outside:
        raise DeepLesionError(
            f"the pairs name patient {outside[0]}, which this tracking did not include; track all patients"
        )
    scored = ResolvedPairs(pairs.keys, source, target)
    answers = (
        pair_answers(result, scored)
        if len(source)
        else {k: np.zeros(0, np.int64) for k in ("method", "confidence", "track", "baseline", "candidates")}
    )
    correct = answers["method"] == target
    multi = answers["candidates"] > 1
    wrong = ~correct & (answers["method"] >= 0)
    other_series = _twins(result, answers["method"][wrong], target[wrong])
    single = ~twin_on_other_series(result, source, target)

    def share(values: npt.NDArray[np.bool_]) -> float | None:
        return round(float(values.mean()), 4) if len(values) else None

    return {
        "accuracy": share(correct),
        "ci95": _patient_bootstrap(correct, catalog.patient[source]) if len(source) else None,
        "scored": len(source),
        "absent": int((~present).sum()),
        "malformed": pairs.malformed,
        "multi_candidate_accuracy": share(correct[multi]),
        "multi_candidate_pairs": int(multi.sum()),
        "baseline_accuracy": share(answers["baseline"] == target),
        "baseline_multi_candidate_accuracy": share((answers["baseline"] == target)[multi]),
        "track_accuracy": share(answers["track"] == target),
        "unlinked": int((answers["method"] < 0).sum()),
        "other_series_answers": int(other_series.sum()),
        "single_series_pairs": int(single.sum()),
        "single_series_accuracy": share(correct[single]),
    }


def _twins(
    result: TrackingResult, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Whether rows ``a`` and ``b`` are most likely one lesion bookmarked on two series of one study:
    same study, other series, within 0.02 in normalized position and 20% in long diameter."""
    c = result.catalog
    close = np.linalg.norm(result.features.location[a] - result.features.location[b], axis=1) < 0.02
    similar = np.abs(c.long_diameter_mm[a] / c.long_diameter_mm[b] - 1) < 0.2
    same: npt.NDArray[np.bool_] = (
        (c.patient[a] == c.patient[b])
        & (c.study[a] == c.study[b])
        & (c.series[a] != c.series[b])
        & close
        & similar
    )
    return same


def _twin_rows(result: TrackingResult, row: int, source: int) -> list[int]:
    """The rows of ``row``'s study, other than ``source``, that are twins of ``row`` (:func:`_twins`)."""
    others = np.array([r for r in result.rows_of_study(row) if r not in (source, row)], dtype=np.int64)
    if not len(others):
        return []
    twins: list[int] = others[_twins(result, others, np.full(len(others), row))].tolist()
    return twins


def twin_on_other_series(
    result: TrackingResult, source: npt.NDArray[np.int64], target: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """(P,) whether each pair's target lesion also has a row on another series of its study (a *twin*,
    by :func:`_twins`; the source row excluded). The pair then names one of two rows of one lesion."""
    return np.array(
        [bool(_twin_rows(result, t, s)) for s, t in zip(source.tolist(), target.tolist(), strict=True)],
        dtype=bool,
    )
