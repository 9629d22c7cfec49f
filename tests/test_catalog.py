"""The DL_info.csv reader: typing, coordinate frame, queries and robustness to malformed files."""

from __future__ import annotations

import csv
import gzip
import io
import logging
from pathlib import Path

import numpy as np
import pytest

from deeplesion.catalog import (
    COLUMNS,
    CSV_PIXEL_ORIGIN,
    Catalog,
    LesionType,
    Split,
    Strictness,
    concat,
    dl_info_text,
    git_blob_sha1,
    load_catalog,
    parse_dl_info,
    resolve_root,
)
from deeplesion.errors import AnnotationError, DataRootError, UsageError

HEADER = ",".join(COLUMNS)
ROW = (
    '000089_01_01_037.png,89,1,1,37,"154.273, 176.808, 143.903, 209.029, 160.939, 200.511, 137.977, 191.252",'
    '"132.977, 171.808, 165.939, 214.029","33.8477, 24.7578","0.282373, 0.333694, 0.546692",-1,0,"31, 43",'
    '"0.859375, 0.859375, 5","512, 512","-175, 275",F,71,1'
)


def test_first_sample_row_is_typed_in_the_project_frame(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    lesion = catalog[0]
    assert lesion.file_name == "000089_01_01_037.png"
    assert (lesion.patient, lesion.study, lesion.series, lesion.key_slice) == (89, 1, 1, 37)
    # CSV long axis starts at (154.273, 176.808); the project frame is 1 px less.
    np.testing.assert_allclose(lesion.recist[0], [153.273, 175.808])
    np.testing.assert_allclose(lesion.box, [131.977, 170.808, 164.939, 213.029])
    assert lesion.recist.shape == (4, 2) and lesion.recist.dtype == np.float64
    assert lesion.diameters_px == (33.8477, 24.7578)
    assert lesion.lesion_type is LesionType.UNKNOWN
    assert lesion.split is Split.TRAIN and lesion.split.label == "train"
    assert lesion.slice_range == (31, 43)
    assert lesion.spacing == (0.859375, 0.859375, 5.0)
    assert lesion.image_size == (512, 512)
    assert lesion.window == (-175.0, 275.0)
    assert (lesion.sex, lesion.age, lesion.noisy, lesion.row) == ("F", 71.0, False, 0)
    assert lesion.folder == "000089_01_01"
    assert lesion.key_slice_path == "Images_png/000089_01_01/037.png"
    assert lesion.long_diameter_mm == pytest.approx(33.8477 * 0.859375)
    assert lesion.box_area_px == pytest.approx((165.939 - 132.977) * (214.029 - 171.808))
    assert lesion.lesion_index is None  # the excerpt is not the official file
    assert not catalog.official


def test_records_are_frozen(sample_csv: Path) -> None:
    lesion = load_catalog(sample_csv)[0]
    with pytest.raises(AttributeError):
        lesion.patient = 3  # type: ignore[misc]
    with pytest.raises(ValueError):
        lesion.box[0] = 0.0


def test_columns_agree_with_records(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    np.testing.assert_array_equal(catalog.box, catalog.box_csv - CSV_PIXEL_ORIGIN)
    for i in (0, 57, len(catalog) - 1):
        np.testing.assert_array_equal(catalog.recist[i], catalog[i].recist)
        assert catalog.long_diameter_mm[i] == pytest.approx(catalog[i].long_diameter_mm)
    assert [lesion.row for lesion in catalog] == list(range(len(catalog)))


def test_filters(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    val = catalog.filter(split="val")
    assert len(val) == 18 and set(val.split.tolist()) == {2}
    assert len(catalog.filter(split=["val", Split.TEST])) == 18 + 35
    liver = catalog.filter(lesion_type="liver")
    assert len(liver) == 5 and all(x.lesion_type is LesionType.LIVER for x in liver)
    assert len(catalog.filter(lesion_type="soft tissue")) == 14
    big = catalog.filter(min_long_diameter_mm=50)
    assert len(big) == 22 and (big.long_diameter_mm >= 50).all()
    assert len(catalog.filter(min_slice_interval_mm=5, max_slice_interval_mm=5)) == 101
    assert set(catalog.filter(patient=[89, 90]).patient.tolist()) == {89, 90}
    assert len(catalog.filter(noisy=True)) == 0
    # a filter keeps rows' original line numbers, which findings and messages rely on
    assert val.row[0] == np.flatnonzero(catalog.split == 2)[0]
    with pytest.raises(UsageError, match="unknown lesion type"):
        catalog.filter(lesion_type="brain")
    with pytest.raises(UsageError, match="unknown split"):
        catalog.filter(split="training")


def test_key_slice_groups(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    groups = catalog.key_slice_groups()
    assert len(groups) == catalog.num_key_slices == 152
    assert sum(len(g) for g in groups.values()) == len(catalog)
    several = {name: rows for name, rows in groups.items() if len(rows) > 1}
    assert several, "the excerpt has slices with several lesions"
    name, rows = next(iter(several.items()))
    assert [x.file_name for x in catalog.lesions_on(name)] == [name] * len(rows)


def test_official_detection_uses_the_git_blob_id() -> None:
    # git hash-object of "hello\n" (a known value, independent of this code)
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    catalog = parse_dl_info(f"{HEADER}\n{ROW}\n{ROW.replace('037.png', '038.png')}\n", official=True)
    assert [x.lesion_index for x in catalog] == [0, 1]
    assert catalog.filter(file_names=["000089_01_01_038.png"])[0].lesion_index == 1


def test_bom_crlf_and_gzip_read_the_same(tmp_path: Path) -> None:
    text = f"{HEADER}\n{ROW}\n"
    plain = tmp_path / "plain.csv"
    plain.write_text(text)
    variants = {
        "bom.csv": ("\ufeff" + text).encode(),
        "crlf.csv": text.replace("\n", "\r\n").encode(),
        "gz.csv.gz": gzip.compress(text.encode()),
    }
    reference = dl_info_text(load_catalog(plain))
    assert reference == text
    for name, data in variants.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert dl_info_text(load_catalog(path)) == reference, name


def test_extra_columns_are_kept_with_a_note() -> None:
    text = f"{HEADER},comment\n{ROW},hello\n"
    catalog = parse_dl_info(text)
    assert catalog.extra_columns == ("comment",)
    assert [f.code for f in catalog.load_findings] == ["column-extra"]
    assert dl_info_text(catalog) == text


def test_columns_are_found_by_name_not_position() -> None:
    cells = next(csv.reader([ROW]))
    order = list(reversed(range(len(COLUMNS))))
    header = ",".join(COLUMNS[i] for i in order)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([[cells[i] for i in order]])
    catalog = parse_dl_info(f"{header}\n{buffer.getvalue()}")
    assert catalog[0].key_slice == 37 and catalog[0].spacing[2] == 5.0


def test_missing_column_is_named() -> None:
    header = HEADER.replace(",Spacing_mm_px_", "")
    with pytest.raises(AnnotationError, match="Spacing_mm_px_ missing"):
        parse_dl_info(f"{header}\n{ROW}\n", label="mine.csv")


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_empty_file_is_an_error(text: str) -> None:
    with pytest.raises(AnnotationError, match="empty"):
        parse_dl_info(text)


def test_wrong_value_count_names_line_and_column() -> None:
    bad = ROW.replace('"31, 43"', '"31"')
    with pytest.raises(AnnotationError, match=r"line 3: Slice_range needs 2"):
        parse_dl_info(f"{HEADER}\n{ROW}\n{bad}\n")


def test_compensating_value_counts_are_still_caught() -> None:
    # one value too many in one cell and one too few in the next: the total is right, the rows are not
    bad = ROW.replace('"31, 43","0.859375, 0.859375, 5"', '"31, 43, 44","0.859375, 0.859375"')
    with pytest.raises(AnnotationError, match="Slice_range needs 2"):
        parse_dl_info(f"{HEADER}\n{bad}\n")


def test_invalid_values_are_named() -> None:
    for old, new, column in [
        (",-1,0,", ",9,0,", "Coarse_lesion_type"),
        (",F,71,1", ",F,old,1", "Patient_age"),
        (",89,1,1,37,", ",89,1,1,x,", "Key_slice_index"),
    ]:
        with pytest.raises(AnnotationError, match=column):
            parse_dl_info(f"{HEADER}\n{ROW.replace(old, new)}\n")


def test_row_length_error() -> None:
    with pytest.raises(AnnotationError, match="row has 17 cells"):
        parse_dl_info(f"{HEADER}\n{ROW.rsplit(',', 1)[0]}\n")


def test_warn_and_ignore_skip_bad_rows(caplog: pytest.LogCaptureFixture) -> None:
    bad = ROW.replace('"31, 43"', '"31"')
    text = f"{HEADER}\n{ROW}\n{bad}\n{ROW.replace('037.png', '039.png')}\n"
    with caplog.at_level(logging.WARNING):
        catalog = parse_dl_info(text, strictness=Strictness.WARN)
    assert len(catalog) == 2 and catalog.row.tolist() == [0, 2]
    assert "row skipped" in caplog.text
    assert [f.line for f in catalog.load_findings] == [3]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        quiet = parse_dl_info(text, strictness="ignore")
    assert len(quiet) == 2 and caplog.text == ""


def test_age_empty_and_nan_are_none() -> None:
    rows = [
        ROW.replace(",F,71,1", ",F,NaN,1"),
        ROW.replace(",F,71,1", ",F,,1"),
        ROW.replace(",F,71,1", ",F,62.0,1"),
    ]
    text = HEADER + "\n" + "\n".join(rows) + "\n"
    catalog = parse_dl_info(text)
    assert [x.age for x in catalog] == [None, None, 62.0]
    assert dl_info_text(catalog) == text  # the raw age text is written back as it was


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="not found"):
        load_catalog(tmp_path / "nope.csv")
    with pytest.raises(AnnotationError, match="is a folder"):
        load_catalog(tmp_path)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(AnnotationError, match="not UTF-8"):
        load_catalog(tmp_path / "bin.csv")


def test_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPLESION_ROOT", raising=False)
    with pytest.raises(DataRootError, match="DEEPLESION_ROOT"):
        resolve_root()
    monkeypatch.setenv("DEEPLESION_ROOT", str(tmp_path))
    assert resolve_root() == tmp_path
    (tmp_path / "DL_info.csv").write_text(f"{HEADER}\n{ROW}\n")
    assert len(load_catalog()) == 1
    with pytest.raises(DataRootError, match="does not exist"):
        resolve_root(tmp_path / "missing")


def test_concat_keeps_order_and_rows(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    both = concat([catalog.filter(split="test"), catalog.filter(split="val")])
    assert len(both) == 53
    assert both.split[:35].tolist() == [3] * 35


def test_enum_parsing() -> None:
    assert LesionType.parse("Soft-Tissue") is LesionType.SOFT_TISSUE
    assert LesionType.parse(4) is LesionType.LIVER
    assert Split.parse("validation") is Split.VAL
    assert Split.parse(3) is Split.TEST


def test_one_bad_cell_spoils_only_its_row(sample_csv: Path, tmp_path: Path) -> None:
    # the last few characters cut off: only the last row is malformed, every other row loads
    text = sample_csv.read_text()
    cut = tmp_path / "cut.csv"
    cut.write_text(text[:-5])
    catalog = load_catalog(cut, strictness="ignore")
    assert len(catalog) == 157
    assert [(f.code, f.line) for f in catalog.load_findings] == [("row-length", 159)]
    # one bad cell in each kind of column, on known lines of a multi-row file (blank lines counted)
    rows = text.splitlines()
    body = [*rows[:5], "", rows[5].replace(",-1,0,", ",42,0,"), rows[6], rows[7]]
    body[2] = body[2].replace(f",{body[2].split(',')[4]},", ",x,", 1)  # Key_slice_index not an integer
    (tmp_path / "multi.csv").write_text("\n".join(body) + "\n")
    loaded = load_catalog(tmp_path / "multi.csv", strictness="ignore")
    found = {(f.code, f.line, f.column, f.value) for f in loaded.load_findings}
    assert found == {
        ("value-invalid", 3, "Key_slice_index", "x"),
        ("value-invalid", 7, "Coarse_lesion_type", "42"),
    }
    assert len(loaded) == 7 - 2


def test_slicing_gives_a_catalog(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    head = catalog[0:3]
    assert isinstance(head, Catalog) and len(head) == 3
    assert [x.file_name for x in head] == [catalog[i].file_name for i in range(3)]
    assert [x.file_name for x in catalog[-2:]] == [catalog[len(catalog) - 2].file_name, catalog[-1].file_name]
    assert [x.row for x in catalog[::50]] == [0, 50, 100, 150]
