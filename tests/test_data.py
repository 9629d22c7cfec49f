"""deeplesion.data: the PyTorch dataset's contract, round trip, errors, workers and sampling."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="deeplesion.data needs the torch extra (make test installs it)")

import deeplesion  # noqa: E402
from deeplesion.catalog import load_catalog  # noqa: E402
from deeplesion.data import KeySliceDataset, collate, data_loader, lesions_to_dataset  # noqa: E402
from deeplesion.data import dataset as dataset_module  # noqa: E402
from deeplesion.errors import ImageError, UsageError  # noqa: E402
from deeplesion.evaluate import evaluate  # noqa: E402
from deeplesion.evaluate.predictions import Predictions  # noqa: E402
from deeplesion.transforms import MULAN_TRAIN  # noqa: E402

from .conftest import DL_INFO_DIR, require  # noqa: E402


@pytest.fixture(scope="module")
def release(shared_release: Path) -> deeplesion.Release:
    return deeplesion.open(shared_release)


def test_items_follow_torchvisions_detection_contract(release: deeplesion.Release) -> None:
    dataset = KeySliceDataset(release, split="test", slices=9, masks=True, on_missing="skip")
    assert len(dataset) > 0
    image, target = dataset[0]
    assert image.dtype == torch.float32 and image.ndim == 3 and image.shape[0] == 9
    height, width = image.shape[1:]
    k = len(dataset.lesions(0))
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (k, 4)
    assert target["labels"].dtype == torch.int64 and (target["labels"] == 1).all()
    assert target["recist"].shape == (k, 4, 2) and target["masks"].shape == (k, height, width)
    boxes = target["boxes"]
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= width).all() and (boxes[:, 1] < boxes[:, 3]).all()
    # the weak mask covers the lesion's RECIST endpoints' middle and lies inside its box
    mask = target["masks"][0].numpy().astype(bool)
    rows, cols = np.nonzero(mask)
    x1, y1, x2, y2 = boxes[0].tolist()
    assert mask.sum() > 4 and cols.min() >= x1 - 1 and cols.max() <= x2 and rows.min() >= y1 - 1
    assert rows.max() <= y2
    assert target["spacing_mm"] == pytest.approx(0.8, rel=1e-6)  # the reference 0.8 mm pixel
    assert target["file_name"] == dataset.file_names[0]
    typed = KeySliceDataset(release, split="test", labels="type", on_missing="skip")
    assert {int(t) for _, tg in (typed[i] for i in range(len(typed))) for t in tg["labels"]} <= set(
        range(1, 9)
    )
    multi = KeySliceDataset(
        release, split="test", slices=3, windows=["soft_tissue", "lung"], on_missing="skip"
    )
    assert multi[0][0].shape[0] == 6


def test_targets_map_back_and_score_a_perfect_froc(release: deeplesion.Release) -> None:
    # ground truth -> dataset targets (augmented) -> back to the catalog frame -> the official FROC
    dataset = KeySliceDataset(release, split="train", transform=MULAN_TRAIN, seed=5, on_missing="skip")
    names, boxes = [], []
    broken = 0
    past_edge = set()
    for index in range(len(dataset)):
        try:
            _, target = dataset[index]
        except ImageError:  # the planted 8-bit and truncated slices: an error that names the file
            broken += 1
            continue
        back = dataset.to_original(index, target["boxes"].numpy())
        width, height = dataset.lesions(index)[0].image_size
        for lesion, box in zip(dataset.lesions(index), back, strict=True):
            inside = lesion.box[0] >= 0 and lesion.box[1] >= 0 and lesion.box[2] < width - 1
            if inside and lesion.box[3] < height - 1:  # clipping only moves boxes past the edge
                np.testing.assert_allclose(box, lesion.box, atol=1e-4)
            else:  # cut to the image and the body crop, it may no longer overlap its lesion by half
                past_edge.add(lesion.file_name)
            names.append(lesion.file_name)
            boxes.append(box)
    chosen = [i for i, name in enumerate(names) if name not in past_edge]
    names, boxes = [names[i] for i in chosen], [boxes[i] for i in chosen]
    predictions = Predictions(
        np.array(names, dtype=str),
        np.array(boxes),
        np.linspace(1, 0.5, len(names)),
        np.arange(len(names)) + 2,
        "t",
    )
    assert broken <= 2 and len(names) > 10
    kept = dataset.rows.filter(file_names=set(names))
    result = evaluate(kept, predictions, split="train").result
    assert set(result["sensitivity"].values()) == {1.0} and result["max_fp_per_image"] == 0.0


def test_the_real_test_split_counts_as_the_evaluation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    catalog = load_catalog(require(DL_INFO_DIR / "DL_info_test.csv"))
    monkeypatch.setattr(dataset_module, "_on_disk", lambda release, lesion: True)  # no images needed
    release = deeplesion.open(tmp_path, catalog=catalog)
    assert len(KeySliceDataset(release, split="test")) == 4817
    assert len(KeySliceDataset(release, split="test", exclude_noisy=False)) == 4831


def test_clear_errors(release: deeplesion.Release, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="val and test rows only"):
        KeySliceDataset(release, split="train", labels="type", on_missing="skip")
    empty = deeplesion.open(release.root, catalog=release.catalog.filter(split="test").filter(split="train"))
    with pytest.raises(UsageError, match="no non-noisy rows"):
        KeySliceDataset(empty, split="train")
    with pytest.raises(ImageError, match=r"key slice not on disk .*on_missing='skip'"):
        KeySliceDataset(deeplesion.open(tmp_path, catalog=release.catalog), split="train")
    with pytest.raises(UsageError, match="no cache there"):
        KeySliceDataset(release, cache=tmp_path / "nowhere", on_missing="skip")


def test_loaders_give_the_same_batches_at_any_worker_count(release: deeplesion.Release) -> None:
    dataset = KeySliceDataset(
        release, split="train", slices=3, transform=MULAN_TRAIN, seed=1, on_missing="skip"
    )
    assert len(pickle.dumps(dataset)) < 20_000  # the release travels as its paths, the rows as positions

    def batches(workers: int) -> list[tuple[list[torch.Tensor], list[dict]]]:
        loader = data_loader(dataset, batch_size=3, shuffle=True, num_workers=workers, seed=7)
        return [batch for _, batch in zip(range(3), loader, strict=False)]

    serial, parallel = batches(0), batches(2)
    for (images_a, targets_a), (images_b, targets_b) in zip(serial, parallel, strict=True):
        assert [t["file_name"] for t in targets_a] == [t["file_name"] for t in targets_b]
        for a, b in zip(images_a, images_b, strict=True):
            assert torch.equal(a, b)
    images, targets = collate([dataset[0], dataset[1]])
    assert len(images) == len(targets) == 2


def test_distributed_sampler_splits_the_items(release: deeplesion.Release) -> None:
    from torch.utils.data.distributed import DistributedSampler

    dataset = KeySliceDataset(release, split="train", slices=3, on_missing="skip")
    seen = []
    for rank in (0, 1):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        seen.append(list(sampler))
    assert not set(seen[0]) & set(seen[1]) or len(dataset) % 2  # disjoint (one repeat when odd)
    assert set(seen[0]) | set(seen[1]) == set(range(len(dataset)))


def test_own_rows_and_import_isolation(release: deeplesion.Release) -> None:
    rows = [x for x in release.catalog if x.split.label == "val"][:2]
    own = lesions_to_dataset(release, rows, slices=3, on_missing="skip")
    assert 1 <= len(own) <= 2
    assert own[0][1]["file_name"] in {x.file_name for x in rows}
    assert len(pickle.loads(pickle.dumps(own))) == len(own)


def test_the_cache_gives_the_same_items(release: deeplesion.Release, tmp_path: Path) -> None:
    from deeplesion.cache import build_cache

    build_cache(release.root, release.catalog, cache_dir=tmp_path / "cache", split="test", context_mm=8.0)
    plain = KeySliceDataset(release, split="test", on_missing="skip")
    cached = KeySliceDataset(release, split="test", on_missing="skip", cache=tmp_path / "cache")
    assert cached.release.cache is not None and len(plain) == len(cached)
    for index in range(len(plain)):
        (a, ta), (b, tb) = plain[index], cached[index]
        assert torch.equal(a, b) and torch.equal(ta["boxes"], tb["boxes"])
