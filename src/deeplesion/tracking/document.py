"""The tracking as one JSON-ready document, and as text for a terminal (``deeplesion track``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from deeplesion.catalog import LesionType
from deeplesion.findings import count_by_severity
from deeplesion.tracking.response import PatientResponse, recist_response
from deeplesion.tracking.tracks import Track, TrackingResult

HEADER_LINES = 1
"""Lines before the first data row of a DL_info.csv (rows are named by 1-based line, header = line 1)."""


def _row(result: TrackingResult, r: int) -> dict[str, Any]:
    c = result.catalog
    return {
        "line": int(c.row[r]) + HEADER_LINES + 1,
        "file_name": str(c.file_name[r]),
        "study": int(c.study[r]),
        "series": int(c.series[r]),
        "long_mm": round(float(c.long_diameter_mm[r]), 2),
        "short_mm": round(float(c.short_diameter_mm[r]), 2),
        "lesion_type": LesionType(int(c.lesion_type[r])).label,
        "location": [round(float(v), 4) for v in c.location[r]],
    }


def _track(result: TrackingResult, track: Track) -> dict[str, Any]:
    long_changes, short_changes = track.changes("long"), track.changes("short")
    diameters = []
    for m, long_change, short_change in zip(track.measurements, long_changes, short_changes, strict=True):
        diameters.append(
            {
                "study": m.study,
                "line": int(result.catalog.row[m.row]) + HEADER_LINES + 1,
                "long_mm": round(m.long_mm, 2),
                "short_mm": round(m.short_mm, 2),
                "long_change_from_baseline_pct": long_change["change_from_baseline_pct"],
                "long_change_from_nadir_pct": long_change["change_from_nadir_pct"],
                "short_change_from_baseline_pct": short_change["change_from_baseline_pct"],
                "short_change_from_nadir_pct": short_change["change_from_nadir_pct"],
            }
        )
    return {
        "id": track.id,
        "lesion_type": LesionType(track.lesion_type).label,
        "studies": len(track.measurements),
        "rows": [_row(result, r) for r in track.rows],
        "diameters": diameters,
    }


def response_counts(responses: dict[int, PatientResponse | None]) -> dict[str, int]:
    """How many follow-up studies got each RECIST verdict (CR, NE, PD, PR, SD; sorted by name)."""
    verdicts = Counter(f.response for r in responses.values() if r for f in r.follow_ups)
    return dict(sorted(verdicts.items()))


def patient_responses(result: TrackingResult) -> dict[int, PatientResponse | None]:
    """The RECIST response of every tracked patient (None for a patient without tracks)."""
    return {p: recist_response(result.tracks_of(p)) for p in result.patients}


def tracking_document(result: TrackingResult) -> dict[str, Any]:
    """Every patient's tracks (with their rows and diameters), links (with confidences) and responses.

    Rows are named by ``line`` (1-based line of the annotations file, the header is line 1) and
    ``file_name``. See ``docs/tracking.md`` for the fields.
    """
    c = result.catalog
    responses = patient_responses(result)
    line = c.row + HEADER_LINES + 1
    links_of: dict[int, list[dict[str, Any]]] = {}
    for link in result.links:
        links_of.setdefault(int(c.patient[link.source]), []).append(
            {
                "source_line": int(line[link.source]),
                "target_line": int(line[link.target]),
                "source": str(c.file_name[link.source]),
                "target": str(c.file_name[link.target]),
                "confidence": round(link.confidence, 4),
                "cost": round(link.cost, 4),
            }
        )
    patients = []
    for patient in result.patients:
        tracks = result.tracks_of(patient)
        response = responses[patient]
        patients.append(
            {
                "patient": patient,
                "studies": sorted({m.study for t in tracks for m in t.measurements}),
                "tracks": [_track(result, t) for t in tracks],
                "links": links_of.get(patient, []),
                "response": response.to_dict() if response else None,
            }
        )
    tracks = result.tracks
    return {
        "parameters": result.parameters.to_dict(),
        "counts": {
            "patients": len(result.patients),
            "rows": int(sum(len(t.rows) for t in tracks)),
            "tracks": len(tracks),
            "tracks_over_two_or_more_studies": sum(len(t.measurements) >= 2 for t in tracks),
            "links": len(result.links),
            "follow_up_responses": response_counts(responses),
        },
        "patients": patients,
        "findings": [f.to_dict() for f in result.findings],
        "findings_by_severity": count_by_severity(result.findings),
    }


def patient_text(result: TrackingResult, patient: int, response: PatientResponse | None) -> str:
    """A patient's tracks and responses as a few lines of text."""
    tracks = result.tracks_of(patient)
    studies = sorted({m.study for t in tracks for m in t.measurements})
    followed = sum(len(t.measurements) >= 2 for t in tracks)
    lines = [
        f"patient {patient}: {len(studies)} stud{'y' if len(studies) == 1 else 'ies'} "
        f"({', '.join(map(str, studies))}), {len(tracks)} lesion(s), {followed} followed over 2+ studies"
    ]
    targets = {t.track: t for t in response.targets} if response else {}
    for track in tracks:
        kind = LesionType(track.lesion_type).label if track.lesion_type > 0 else "untyped"
        cells = []
        for m in track.measurements:
            cells.append(f"S{m.study}: {m.long_mm:.1f}x{m.short_mm:.1f}")
        change = track.changes(targets[track.id].axis if track.id in targets else "long")[-1]
        trend = (
            f"  {change['change_from_baseline_pct']:+.0f}% since study {track.measurements[0].study}"
            if change["change_from_baseline_pct"] is not None
            else ""
        )
        mark = f" target ({targets[track.id].axis} axis)" if track.id in targets else ""
        lines.append(f"  {track.id} {kind:<11} {'  '.join(cells)} mm{trend}{mark}")
    if response is not None:
        for f in response.follow_ups:
            lines.append(f"  study {f.study}: {f.response}: {f.reason}")
    return "\n".join(lines)
