"""The writer reproduces the official cell formats: parse then write is byte-identical."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deeplesion.catalog import (
    COLUMNS,
    Lesion,
    LesionType,
    Split,
    dl_info_text,
    format_number,
    from_lesions,
    load_catalog,
    parse_dl_info,
    write_dl_info,
)
from deeplesion.errors import OutputExistsError


def test_number_format_matches_the_release() -> None:
    assert [format_number(v) for v in (5.0, 512, 0.859375, -177.5, 0.59998, 1e-5, -3.0)] == [
        "5",
        "512",
        "0.859375",
        "-177.5",
        "0.59998",
        "1e-05",
        "-3",
    ]


def test_packaged_sample_round_trips(sample_csv: Path) -> None:
    assert dl_info_text(load_catalog(sample_csv)).encode() == sample_csv.read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "DL_info_val.csv",
        "DL_info_test.csv",
        "DL_info_union.csv",
        "DL_info_excerpt_patients089-100.csv",
        "Kaggle_DL_info.csv",
    ],
)
def test_every_shared_real_file_round_trips_byte_identically(dl_info_dir: Path, name: str) -> None:
    path = dl_info_dir / name
    assert dl_info_text(load_catalog(path)).encode() == path.read_bytes()


def test_the_project_frame_loses_only_the_rounding_of_x_plus_1() -> None:
    from .test_catalog import HEADER, ROW

    tiny = ROW.replace('"132.977, 171.808', '"1.00000000000000001, 171.808')
    parsed = parse_dl_info(f"{HEADER}\n{tiny}\n")
    assert parsed.box_csv[0, 0] == 1.0 and parsed[0].box[0] == 0.0
    lesion = dataclasses.replace(parsed[0], box=np.array([1e-17, 0.5, 10.25, 20.0]))
    back = parse_dl_info(dl_info_text(from_lesions([lesion])))[0]
    assert back.box.tolist() == [0.0, 0.5, 10.25, 20.0]  # 1e-17 + 1 == 1.0 in float64


def test_project_frame_is_one_pixel_less(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    rows = list(csv.DictReader(io.StringIO(dl_info_text(catalog, frame="project"))))
    first = np.array(rows[0]["Bounding_boxes"].split(","), dtype=float)
    np.testing.assert_allclose(first, catalog.box_csv[0] - 1)
    assert rows[0]["Spacing_mm_px_"] == "0.859375, 0.859375, 5"  # only pixel coordinates move


def test_write_refuses_to_overwrite(tmp_path: Path, sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    target = tmp_path / "DL_info.csv"
    write_dl_info(catalog, target)
    with pytest.raises(OutputExistsError, match="force=True"):
        write_dl_info(catalog, target)
    write_dl_info(catalog.filter(split="val"), target, force=True)
    assert len(load_catalog(target)) == 18
    assert [p.name for p in tmp_path.iterdir()] == ["DL_info.csv"]  # no temporary file left behind


coordinate = st.floats(min_value=-20, max_value=1100, allow_nan=False, width=64)
positive = st.floats(min_value=0.01, max_value=50, allow_nan=False)


@st.composite
def lesions(draw: st.DrawFn) -> Lesion:
    patient, study, series = draw(st.integers(1, 4427)), draw(st.integers(1, 30)), draw(st.integers(1, 9))
    first = draw(st.integers(1, 1200))
    last = draw(st.integers(first, first + 200))
    key = draw(st.integers(first, last))
    recist = np.array(draw(st.lists(coordinate, min_size=8, max_size=8))).reshape(4, 2)
    box = np.array(draw(st.lists(coordinate, min_size=4, max_size=4)))
    split = draw(st.sampled_from(list(Split)))
    return Lesion(
        file_name=f"{patient:06d}_{study:02d}_{series:02d}_{key:03d}.png",
        patient=patient,
        study=study,
        series=series,
        key_slice=key,
        recist=recist,
        box=box,
        diameters_px=(draw(positive), draw(positive)),
        location=tuple(draw(st.lists(st.floats(0, 1), min_size=3, max_size=3))),  # type: ignore[arg-type]
        lesion_type=draw(st.sampled_from(list(LesionType))),
        noisy=draw(st.booleans()),
        slice_range=(first, last),
        spacing=(draw(positive), draw(positive), draw(positive)),
        image_size=(draw(st.sampled_from([512, 768, 1024])),) * 2,  # type: ignore[arg-type]
        window=(draw(st.floats(-2000, 0)), draw(st.floats(1, 3000))),
        sex=draw(st.sampled_from(["M", "F"])),
        age=draw(st.one_of(st.none(), st.floats(0, 110))),
        split=split,
        row=0,
        lesion_index=None,
    )


@settings(deadline=None, max_examples=60)
@given(st.lists(lesions(), min_size=0, max_size=6))
def test_any_catalog_survives_write_then_read(records: list[Lesion]) -> None:
    catalog = from_lesions(records)
    text = dl_info_text(catalog)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    again = parse_dl_info(text)
    assert dl_info_text(again) == text
    # every float of the file survives exactly (shortest round-trip text): the CSV frame is what is stored
    for column in ("recist_csv", "box_csv", "diameters_px", "location", "spacing", "window"):
        np.testing.assert_array_equal(getattr(again, column), getattr(catalog, column))
    for original, parsed in zip(records, again, strict=True):
        # the project frame is the CSV frame - 1, so a coordinate comes back as (x + 1) - 1: exact for
        # most values, within the rounding of x + 1 for the others (1e-17 becomes 0.0)
        tolerance = np.spacing(np.abs(original.box) + 1.0)
        assert (np.abs(parsed.box - original.box) <= tolerance).all()
        assert parsed.spacing == original.spacing and parsed.window == original.window
        assert parsed.age == original.age and parsed.lesion_type is original.lesion_type
        assert parsed.file_name == original.file_name and parsed.slice_range == original.slice_range
