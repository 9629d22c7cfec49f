"""``check_catalog``: planted problems are found with the right code and line; real quirks are not errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from deeplesion.catalog import load_catalog, parse_dl_info
from deeplesion.checks import check_catalog
from deeplesion.findings import CODES, has_errors

from .test_catalog import HEADER, ROW


def codes_of(text: str) -> list[tuple[str, int | None]]:
    return [(f.code, f.line) for f in check_catalog(parse_dl_info(text, strictness="ignore"))]


def test_packaged_sample_has_only_fractional_window_notes(sample_csv: Path) -> None:
    findings = check_catalog(load_catalog(sample_csv))
    assert [(f.code, f.line) for f in findings][:1] == [("window-fractional", 57)]
    assert {f.code for f in findings} == {"window-fractional"} and len(findings) == 7


@pytest.mark.parametrize(
    ("old", "new", "code"),
    [
        ("000089_01_01_037.png,89", "000089_01_01_038.png,89", "file-name-mismatch"),
        ('"31, 43"', '"38, 43"', "key-outside-range"),
        ('"132.977, 171.808', '"130.977, 171.808', "box-not-recist-extent"),
        ('"33.8477, 24.7578"', '"33.8477, 20"', "diameter-mismatch"),
        ('"0.859375, 0.859375, 5"', '"0.859375, 0, 5"', "spacing-invalid"),
        ('"0.859375, 0.859375, 5"', '"0.859375, 0.8, 5"', "spacing-anisotropic"),
        ('"0.859375, 0.859375, 5"', '"0.859375, 0.859375, 22.5"', "interval-unusual"),
        ('"-175, 275"', '"275, -175"', "window-invalid"),
        ('"-175, 275"', '"-177.5, 307.5"', "window-fractional"),
        ('"512, 512"', '"768, 768"', "size-not-512"),
        ('"512, 512"', '"160, 160"', "box-outside-image"),
        ('"0.282373, 0.333694, 0.546692"', '"1.282373, 0.333694, 0.546692"', "location-out-of-range"),
        (",F,71,1", ",F,NaN,1", "age-missing"),
        (",F,71,1", ",F,157,1", "age-unusual"),
        (",F,71,1", ",X,71,1", "sex-unknown"),
        (",-1,0,", ",4,0,", "type-on-train-row"),
        (",F,71,1", ",F,71,2", "type-unknown-in-eval-split"),
    ],
)
def test_planted_problem_is_reported_on_its_line(old: str, new: str, code: str) -> None:
    assert old in ROW
    found = codes_of(f"{HEADER}\n{ROW}\n{ROW.replace(old, new)}\n")
    assert (code, 3) in found
    assert all(line == 3 for _, line in found), found  # the untouched row stays clean


@pytest.mark.parametrize("value", ["1e308", "inf", "-5000"])
def test_absurd_coordinates_are_one_finding_without_numpy_warnings(value: str) -> None:
    import warnings

    assert '"132.977, 171.808' in ROW
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would fail the test
        bad = ROW.replace('"132.977, 171.808', '"' + value + ", 171.808")
        found = codes_of(f"{HEADER}\n{bad}\n")
    assert found == [("coordinate-absurd", 2)]


def test_cross_row_problems() -> None:
    assert ("duplicate-row", 3) in codes_of(f"{HEADER}\n{ROW}\n{ROW}\n")
    other = ROW.replace("_037.png", "_040.png").replace(",37,", ",40,").replace(",F,71,1", ",F,71,3")
    assert ("patient-in-two-splits", 3) in codes_of(f"{HEADER}\n{ROW}\n{other}\n")
    inconsistent = (
        ROW.replace("_037.png", "_040.png")
        .replace(",37,", ",40,")
        .replace('"0.859375, 0.859375, 5"', '"0.7, 0.7, 5"')
    )
    assert ("series-inconsistent", 3) in codes_of(f"{HEADER}\n{ROW}\n{inconsistent}\n")


def test_malformed_rows_become_findings() -> None:
    bad = ROW.replace('"31, 43"', '"31"')
    found = codes_of(f"{HEADER}\n{ROW}\n{bad}\n")
    assert found == [("value-count", 3)]


def test_real_union_has_warnings_and_notes_but_no_errors(dl_info_dir: Path) -> None:
    findings = check_catalog(load_catalog(dl_info_dir / "DL_info_union.csv"))
    assert not has_errors(findings)
    counts = Counter(f.code for f in findings)
    assert counts["box-outside-image"] == 8  # facts sheet: 8 real boxes extend past the image
    assert counts["size-not-512"] == 32  # 27 rows at 768 px and 5 at 1024 px
    assert counts["age-missing"] == 1
    assert counts["interval-unusual"] > 0


def test_every_code_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "findings.md").read_text()
    for code, (severity, _) in CODES.items():
        assert f"| `{code}` | {severity} |" in doc, f"docs/findings.md lacks {code}"
