"""Counts on the real val and test splits must match the published ones (facts sheet, section 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeplesion.catalog import load_catalog
from deeplesion.summary import summarize


def test_validation_split_counts(dl_info_dir: Path) -> None:
    summary = summarize(load_catalog(dl_info_dir / "DL_info_val.csv"))
    assert summary["splits"]["val"] == {
        "key_slices": 4793,
        "lesions": 4889,
        "key_slices_without_noisy": 4791,
        "lesions_without_noisy": 4887,
    }


def test_test_split_counts(dl_info_dir: Path) -> None:
    summary = summarize(load_catalog(dl_info_dir / "DL_info_test.csv"))
    assert summary["splits"]["test"] == {
        "key_slices": 4831,
        "lesions": 4927,
        "key_slices_without_noisy": 4817,
        "lesions_without_noisy": 4912,
    }
    assert not summary["official"]


def test_union_quirks_are_typed_not_fatal(dl_info_dir: Path) -> None:
    catalog = load_catalog(dl_info_dir / "DL_info_union.csv")
    assert len(catalog) == 29280
    missing_age = [x for x in catalog if x.age is None]
    assert [x.file_name for x in missing_age] == ["000014_01_01_104.png"]
    assert sorted(set(catalog.image_size[:, 0].tolist())) == [512, 768, 1024]
    assert catalog.slice_interval_mm.min() == 0.25 and catalog.slice_interval_mm.max() == 22.5
    # boxes are never clipped: two become negative in the 0-based frame
    assert int((catalog.box[:, :2] < 0).any(axis=1).sum()) == 2
    # box = RECIST extent padded by 5 px, on every real row (an independent check of the frame handling)
    recist = catalog.recist
    extent = np.concatenate([recist.min(axis=1) - 5, recist.max(axis=1) + 5], axis=1)
    assert np.abs(extent - catalog.box).max() < 0.01
