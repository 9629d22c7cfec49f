"""``deeplesion track``: follow each lesion across a patient's studies; RECIST response; scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deeplesion.cli.common import JsonOption, ProgressOption, RootOption, handle_errors, print_json

MAX_PATIENTS_IN_TEXT = 5


@handle_errors
def track(
    annotations: Annotated[
        Path | None,
        typer.Option("--annotations", "-a", help="DL_info.csv (or a split file). Default: under --root."),
    ] = None,
    root: RootOption = None,
    patient: Annotated[
        list[int] | None,
        typer.Option("--patient", "-p", help="Patient_index to track (repeat for several). Default: all."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Write a timeline PNG per patient (with --patient: those; else every patient "
            "with two or more studies) into this folder."
        ),
    ] = None,
    score_pairs: Annotated[
        Path | None,
        typer.Option(
            "--score-pairs",
            help="Score the links against lesion pairs: the Deep Lesion Tracker's JSON (valid.json), or a "
            "synthetic release's synth-manifest.json (its lesion identities).",
        ),
    ] = None,
    progress: ProgressOption = None,
    json: JsonOption = False,
) -> None:
    """Link each lesion across a patient's studies into tracks; diameters over time; RECIST response."""
    from deeplesion.catalog import DEFAULT_FILE_NAME, load_catalog, resolve_root
    from deeplesion.cli.progress import progress_bar
    from deeplesion.io import file_digest
    from deeplesion.tracking import track_lesions

    annotations_path = annotations if annotations is not None else resolve_root(root) / DEFAULT_FILE_NAME
    catalog = load_catalog(annotations_path)
    with progress_bar("tracking patients", progress) as update:
        result = track_lesions(catalog, patients=patient, progress=update)
    inputs = {
        "annotations": {"path": str(annotations_path), "sha256": file_digest(annotations_path, "sha256")}
    }
    if score_pairs is not None:
        document = _score(result, score_pairs)
        document["inputs"] = {**inputs, "pairs": {"path": str(score_pairs), "sha256": document.pop("sha256")}}
        if json:
            print_json(document)
        else:
            print(_score_text(document))
        return
    from deeplesion.tracking.document import (
        patient_responses,
        patient_text,
        response_counts,
        tracking_document,
    )

    plots = _plots(result, plot, patient is not None, progress) if plot is not None else []
    if json:
        document = tracking_document(result)
        document["inputs"] = inputs
        document["plots"] = plots
        print_json(document)
        return
    responses = patient_responses(result)
    for p in result.patients[:MAX_PATIENTS_IN_TEXT] if patient is None else result.patients:
        print(patient_text(result, p, responses[p]))
    tracks = result.tracks
    followed = sum(len(t.measurements) >= 2 for t in tracks)
    shown = ", ".join(f"{k} {v}" for k, v in response_counts(responses).items()) or "none"
    if patient is None and len(result.patients) > MAX_PATIENTS_IN_TEXT:
        print(
            f"... ({len(result.patients) - MAX_PATIENTS_IN_TEXT} more patients: --patient N to see one, "
            "--json for all)"
        )
    print(
        f"{len(result.patients)} patients, {len(tracks)} lesions ({followed} followed over 2+ studies), "
        f"{len(result.links)} links; follow-up responses: {shown}"
    )
    for finding in result.findings:
        print(finding.line_text())
    if plots:
        print(f"{len(plots)} timeline(s) in {plot}")


def _plots(result: Any, folder: Path, named: bool, progress: bool | None) -> list[str]:
    from deeplesion.cli.progress import progress_bar
    from deeplesion.tracking.document import patient_responses
    from deeplesion.tracking.plot import save_timeline

    folder.mkdir(parents=True, exist_ok=True)
    responses = patient_responses(result)
    chosen = [
        p
        for p in result.patients
        if named or len({m.study for t in result.tracks_of(p) for m in t.measurements}) >= 2
    ]
    written = []
    with progress_bar("drawing timelines", progress) as update:
        for k, p in enumerate(chosen, start=1):
            written.append(
                str(save_timeline(folder / f"patient_{p:06d}.png", result.tracks_of(p), responses[p]))
            )
            update(k, len(chosen))
    return written


def _score(result: Any, path: Path) -> dict[str, Any]:
    from deeplesion.tracking import load_pairs, score_pairs
    from deeplesion.tracking.matching import FITTED_ON_SHA256

    notes = []
    pairs = load_pairs(result.catalog, path)
    scores = score_pairs(result, pairs)
    if pairs.sha256 == FITTED_ON_SHA256:
        notes.append(
            "in-sample: the default parameters were fitted on these pairs; see docs/tracking.md for the "
            "patient-grouped cross-validated accuracy"
        )
    return {
        "pairs_kind": pairs.kind,
        **scores,
        "notes": notes,
        "findings": [f.to_dict() for f in pairs.findings],
        "sha256": pairs.sha256,
    }


def _score_text(document: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    ci = document["ci95"]
    lines = [
        f"{document['pairs_kind']}: {document['scored']} pairs scored, {document['absent']} absent, "
        f"{document['malformed']} malformed",
        f"  links          {pct(document['accuracy'])}"
        + (f"  (95% CI {pct(ci[0])}-{pct(ci[1])}, patient bootstrap)" if ci else ""),
        f"  tracks         {pct(document['track_accuracy'])}",
        f"  baseline       {pct(document['baseline_accuracy'])}  (nearest normalized position)",
        f"  {document['multi_candidate_pairs']} pairs with more than one candidate: links "
        f"{pct(document['multi_candidate_accuracy'])}, "
        f"baseline {pct(document['baseline_multi_candidate_accuracy'])}",
        f"  unlinked {document['unlinked']}; wrong answers on another series of the target study that are "
        f"probably the same lesion: {document['other_series_answers']}",
    ]
    lines.extend(f"note: {n}" for n in document["notes"])
    findings = document["findings"]
    for finding in findings[:10]:
        lines.append(f"{finding['severity']}: [{finding['code']}] {finding['message']}")
    if len(findings) > 10:
        lines.append(f"... {len(findings) - 10} more findings (--json lists all)")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``track`` to ``app``."""
    app.command()(track)
