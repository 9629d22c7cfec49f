"""One findings model for every checking command (annotation checks now, inventory and downloads later).

A :class:`Finding` names a stable ``code`` (documented in :data:`CODES` and in ``docs/findings.md``), a
severity, and where the problem is: a file, a 1-based line (the CSV header is line 1), a column and the
offending value. Codes never change meaning once released; new problems get new codes.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


class Severity(enum.StrEnum):
    """How bad a finding is. Only errors make a checking command exit with status 1."""

    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


# code -> (default severity, what it means). Keep in sync with docs/findings.md (a test checks it).
CODES: dict[str, tuple[Severity, str]] = {
    # reading DL_info.csv
    "file-empty": (Severity.ERROR, "the annotation file has no header line"),
    "column-missing": (Severity.ERROR, "a required DL_info.csv column is absent from the header"),
    "column-extra": (Severity.NOTE, "a column that DL_info.csv does not define; kept and written back"),
    "row-length": (Severity.ERROR, "a row has a different number of cells than the header"),
    "value-count": (Severity.ERROR, "a multi-value cell has the wrong number of values"),
    "value-invalid": (Severity.ERROR, "a cell does not parse as the type its column needs"),
    # one row's internal consistency
    "file-name-mismatch": (Severity.ERROR, "File_name disagrees with the patient/study/series/slice columns"),
    "key-outside-range": (Severity.ERROR, "Key_slice_index lies outside Slice_range"),
    "coordinate-absurd": (
        Severity.ERROR,
        "a RECIST or box coordinate is not finite or lies more than one image size outside the image",
    ),
    "box-not-recist-extent": (Severity.ERROR, "Bounding_boxes is not the RECIST extent padded by 5 px"),
    "diameter-mismatch": (Severity.ERROR, "Lesion_diameters_Pixel_ disagrees with the RECIST endpoints"),
    "spacing-invalid": (Severity.ERROR, "a spacing value is not positive"),
    "spacing-anisotropic": (Severity.WARNING, "the in-plane spacing differs between x and y"),
    "interval-unusual": (
        Severity.WARNING,
        "slice interval outside 0.5-10 mm (real rows reach 0.25 and 22.5)",
    ),
    "window-invalid": (Severity.ERROR, "DICOM window low is not below high"),
    "window-fractional": (Severity.NOTE, "DICOM window with fractional HU values (occurs in the release)"),
    "size-not-512": (Severity.NOTE, "image size other than 512x512 (27 real rows are 768, 5 are 1024)"),
    "box-outside-image": (Severity.WARNING, "the box extends past the image edge (8 real rows do)"),
    "location-out-of-range": (Severity.WARNING, "a normalized location value outside [0, 1]"),
    "type-unknown-in-eval-split": (Severity.WARNING, "a validation or test row without a lesion type"),
    "type-on-train-row": (Severity.NOTE, "a training row carries a lesion type (the release has none)"),
    "age-missing": (Severity.NOTE, "Patient_age is empty or NaN"),
    "age-unusual": (Severity.WARNING, "Patient_age outside 0-120 years"),
    "sex-unknown": (Severity.WARNING, "Patient_gender is neither M nor F"),
    # across rows
    "duplicate-row": (Severity.ERROR, "the same lesion (file name and RECIST endpoints) appears twice"),
    "patient-in-two-splits": (Severity.ERROR, "one patient has rows in more than one split"),
    "series-inconsistent": (Severity.WARNING, "rows of one run disagree on spacing or image size"),
    # images on disk against the annotations (the inventory)
    "key-slice-missing": (Severity.ERROR, "the key slice of an annotated lesion is not on disk"),
    "slice-missing": (Severity.ERROR, "a context slice inside a Slice_range is not on disk"),
    "run-differs": (Severity.WARNING, "a run on disk differs from the Slice_range of its rows"),
    "png-unreadable": (Severity.ERROR, "a slice PNG cannot be decoded"),
    "png-bit-depth": (Severity.ERROR, "a slice PNG is not 16-bit grey (8-bit, RGB or palette)"),
    "image-size-mismatch": (Severity.ERROR, "a slice's width and height differ from Image_size"),
    "slice-numbers-invalid": (Severity.ERROR, "duplicate or non-numeric slice file names in a folder"),
    "series-mixed-intervals": (Severity.NOTE, "runs of one series folder have different slice intervals"),
    "slice-number-wide": (Severity.NOTE, "slice numbers of 1000 or more (4-digit names; %03d, not 3 digits)"),
    "folder-unannotated": (Severity.NOTE, "a series folder with no row in DL_info.csv"),
    "not-requested": (Severity.NOTE, "absent on disk, but not requested by the partial download"),
    # archives and extracted files against the file list (deeplesion verify)
    "archive-missing": (Severity.ERROR, "an archive of the file list is neither on disk nor extracted"),
    "archive-size-mismatch": (Severity.ERROR, "an archive's size differs from the file list"),
    "archive-hash-mismatch": (Severity.ERROR, "an archive's MD5 or SHA-256 differs from the file list"),
    "archive-unverified": (Severity.NOTE, "no hash is known for a file, so only its size was checked"),
    "member-missing": (Severity.ERROR, "a file extracted from an archive is no longer on disk"),
    "member-crc-mismatch": (Severity.ERROR, "an extracted file's CRC-32 differs from the archive's record"),
    # the decoded cache (deeplesion cache info)
    "cache-stale": (Severity.WARNING, "a cached run's PNGs changed since it was built; the PNGs are read"),
    "cache-partial": (Severity.WARNING, "a cache record is unreadable or its array is missing"),
    "cache-corrupt": (Severity.ERROR, "a cached array's CRC-32 differs from its record"),
    # following lesions across studies (deeplesion track)
    "tracking-one-study": (Severity.NOTE, "a patient has a single study: nothing to follow"),
    "tracking-type-unknown": (Severity.NOTE, "rows without a lesion type: links use position and size only"),
    "pair-malformed": (Severity.ERROR, "a lesion pair lacks a field or has a value of the wrong form"),
    "pair-unresolved": (Severity.WARNING, "a lesion pair names a lesion absent from the annotations"),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem found in the data.

    Parameters
    ----------
    code
        A stable identifier from :data:`CODES`, for example ``"age-missing"``.
    severity
        ``error``, ``warning`` or ``note``.
    file
        The file the problem is in (a path as given by the user, or a release-relative path).
    line
        1-based line in ``file`` (the header is line 1, the first data row line 2), or None.
    column
        The column (or field) concerned, or None.
    value
        The offending value as text, or None.
    message
        A sentence for a person: what is wrong and, where possible, how to fix it.
    """

    code: str
    severity: Severity
    file: str | None
    line: int | None
    column: str | None
    value: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the fields above (severity as its string)."""
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data

    def line_text(self) -> str:
        """``file:line: severity: [code] message`` for a terminal (the message without a repeated path)."""
        message = self.message
        if self.file and message.startswith(f"{self.file}: "):
            message = message[len(self.file) + 2 :]
        return f"{self.where()}: {self.severity}: [{self.code}] {message}"

    def where(self) -> str:
        """``file:line`` (or what is known of it), for messages."""
        parts = [self.file or "?"]
        if self.line is not None:
            parts.append(str(self.line))
        return ":".join(parts)


def make_finding(
    code: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    column: str | None = None,
    value: object = None,
    severity: Severity | None = None,
) -> Finding:
    """Build a finding with the code's default severity (raises ``KeyError`` for an unknown code)."""
    default, _ = CODES[code]
    return Finding(
        code=code,
        severity=severity or default,
        file=file,
        line=line,
        column=column,
        value=None if value is None else str(value),
        message=message,
    )


def count_by_severity(findings: Iterable[Finding]) -> dict[str, int]:
    """Number of findings per severity, with every severity present (0 when none)."""
    counts = Counter(str(f.severity) for f in findings)
    return {str(s): counts.get(str(s), 0) for s in Severity}


def has_errors(findings: Iterable[Finding]) -> bool:
    """Whether any finding is an error (what makes a checking command exit with status 1)."""
    return any(f.severity is Severity.ERROR for f in findings)


def findings_to_json(findings: Iterable[Finding]) -> str:
    """The findings as a JSON array (one object per finding)."""
    return json.dumps([f.to_dict() for f in findings], indent=1)
