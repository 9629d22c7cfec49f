"""``KeySliceDataset``: one item per key slice, a 2.5D stack and its lesions in torchvision's contract."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch

from deeplesion import boxes as box_convention
from deeplesion.catalog import Catalog, Lesion, LesionType, Split, from_lesions
from deeplesion.context import Mode
from deeplesion.errors import ImageError, UsageError
from deeplesion.geometry import Transform
from deeplesion.measure import mask_from_recist
from deeplesion.names import coco_image_id
from deeplesion.release import Release
from deeplesion.transforms import REFERENCE, MultiWindow, Pipeline, Record, Window

log = logging.getLogger(__name__)

Target = dict[str, Any]


class KeySliceDataset(torch.utils.data.Dataset[tuple[torch.Tensor, Target]]):
    """Key slices of a release as model inputs: one item per key slice, with all its lesions.

    Parameters
    ----------
    release
        The release (``deeplesion.open(root)``).
    split
        ``train``, ``val``, ``test`` (or several); None: every row.
    slices, interval_mm, mode
        The 2.5D stack: ``slices`` channels ``interval_mm`` apart (see :meth:`Release.context`).
    windows
        None: the pipeline's own window (one, ``model`` by default). Several windows (names or
        ``(low, high)``): each is applied to the whole stack and stacked as channels, window by window
        (MVP-Net's multi-window input); then ``C = len(windows) * slices``.
    transform
        The preprocessing :class:`~deeplesion.transforms.Pipeline` (default the reference one).
    labels
        ``lesion`` (every lesion is class 1) or ``type`` (1-8 = ``Coarse_lesion_type``; val and test
        rows only).
    exclude_noisy
        Leave out the possibly-noisy lesions (the official evaluation does), and the key slices that
        have no other lesion: the real test split then gives 4,817 items.
    masks
        Add ``masks``: (K, H, W) uint8 weak masks from the RECIST axes (MULAN's four quarter ellipses).
    cache
        A decoded cache folder (``deeplesion cache build``): slices are read from it where it is valid,
        bit for bit what the PNGs give; elsewhere the PNGs are read.
    seed
        Random steps draw from ``(seed, epoch, index)``, so an item is the same at any ``num_workers``.
    on_missing
        ``raise`` (default): a key slice not on disk is an error naming the file; ``skip``: leave it out.

    Items
    -----
    ``(image, target)``: ``image`` (C, H, W) float32; ``target`` with ``boxes`` (K, 4) float32 in
    torchvision's continuous ``xyxy`` in the network frame, clipped to the image
    (:func:`deeplesion.boxes.to_torchvision`); ``labels`` (K,) int64; ``image_id`` int64 (the COCO id of
    the key slice); ``recist`` (K, 4, 2) float32 in the network frame (catalog convention: pixel centres);
    ``spacing_mm`` float (the network pixel); ``file_name`` str; ``masks`` when asked.
    """

    def __init__(
        self,
        release: Release,
        *,
        split: str | Split | Sequence[str | Split] | None = "train",
        slices: int = 9,
        interval_mm: float = 2.0,
        mode: Mode = "correct",
        windows: Sequence[str | tuple[float, float]] | None = None,
        transform: Pipeline = REFERENCE,
        labels: Literal["lesion", "type"] = "lesion",
        exclude_noisy: bool = True,
        masks: bool = False,
        cache: str | os.PathLike[str] | None = None,
        seed: int = 0,
        on_missing: Literal["raise", "skip"] = "raise",
    ) -> None:
        if labels not in ("lesion", "type"):
            raise UsageError(f"`labels={labels!r}`: use lesion or type")
        if on_missing not in ("raise", "skip"):
            raise UsageError(f"`on_missing={on_missing!r}`: use raise or skip")
        rows = release.catalog if split is None else release.catalog.filter(split=split)
        if exclude_noisy:
            rows = rows.filter(noisy=False)
        if len(rows) == 0:
            raise UsageError(
                f"{release.annotations}: no {'non-noisy ' if exclude_noisy else ''}rows in split {split!r}"
            )
        if labels == "type" and (rows.lesion_type == int(LesionType.UNKNOWN)).any():
            raise UsageError(
                "lesion types are annotated on val and test rows only; use `labels='lesion'` for train rows"
            )
        if cache is not None:
            release = Release(
                release.root, annotations=release.annotations, catalog=release._given_catalog, cache=cache
            )
        self.release = release
        self.rows = rows
        self.slices, self.interval_mm, self.mode = slices, interval_mm, mode
        self.transform = _with_windows(transform, windows)
        self.labels, self.masks, self.seed = labels, masks, seed
        self.epoch = 0
        names = list(dict.fromkeys(rows.file_name.tolist()))
        present = [n for n in names if _on_disk(release, rows.lesions_on(n)[0])]
        if len(present) < len(names):
            missing = [n for n in names if n not in set(present)]
            if on_missing == "raise":
                first = release.path_of(missing[0])
                raise ImageError(
                    f"{first}: key slice not on disk ({len(missing)} of {len(names)} key slices missing); "
                    "download them, or pass `on_missing='skip'`"
                )
            log.warning("%d of %d key slices are not on disk and are skipped", len(missing), len(names))
        self.file_names = present

    def __len__(self) -> int:
        return len(self.file_names)

    def __repr__(self) -> str:
        return (
            f"KeySliceDataset({len(self)} key slices from {self.release.root}, {self.slices} slices at "
            f"{self.interval_mm:g} mm, pipeline {self.transform.name!r})"
        )

    def set_epoch(self, epoch: int) -> None:
        """Change the random draws of the augmentations (call it each epoch, as for a sampler)."""
        self.epoch = epoch

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def lesions(self, index: int) -> list[Lesion]:
        """The lesions of item ``index`` (in the order of its target's rows)."""
        return self.rows.lesions_on(self.file_names[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Target]:
        lesions = self.lesions(index)
        sample = self.release.sample(
            lesions[0],
            slices=self.slices,
            interval_mm=self.interval_mm,
            mode=self.mode,
            pipeline=self.transform,
            seed=self._rng(index),
        )
        return self._item(sample.image, sample.transform, lesions)

    def _item(
        self, image: npt.NDArray[np.float32], transform: Transform, lesions: list[Lesion]
    ) -> tuple[torch.Tensor, Target]:
        height, width = image.shape[1:]
        catalog_boxes = transform.boxes(np.array([x.box for x in lesions]))
        network = box_convention.clip_torchvision(box_convention.to_torchvision(catalog_boxes), width, height)
        recist = transform.points(np.array([x.recist for x in lesions]))
        kinds = [1 if self.labels == "lesion" else int(x.lesion_type) for x in lesions]
        target: Target = {
            "boxes": torch.as_tensor(network, dtype=torch.float32),
            "labels": torch.as_tensor(kinds, dtype=torch.int64),
            "image_id": torch.tensor(coco_image_id(lesions[0].file_name), dtype=torch.int64),
            "recist": torch.as_tensor(recist, dtype=torch.float32),
            "spacing_mm": float(lesions[0].spacing[0] / transform.scale_x),
            "file_name": lesions[0].file_name,
        }
        if self.masks:
            stacked = np.stack([mask_from_recist(r, height, width) for r in recist])
            target["masks"] = torch.as_tensor(stacked, dtype=torch.uint8)
        # positive strides (the resize's channels-last view) go to torch as they are, without a copy
        usable = image if all(stride > 0 for stride in image.strides) else np.ascontiguousarray(image)
        return torch.from_numpy(usable), target

    def geometry(self, index: int) -> Transform:
        """The transform of item ``index`` from its key slice's pixels to the network's (at this epoch):
        the pipeline run on the key slice alone, with the item's own random draws."""
        lesion = self.lesions(index)[0]
        key = self.release.key_slice(lesion)
        record = Record(
            key[None].astype(np.float32),
            lesion.spacing[0],
            rule="reference" if self.mode == "reference" else "centres",
            key_hu=key,
        )
        return self.transform(record, self._rng(index)).transform

    def to_original(self, index: int, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(N, 4) torchvision boxes predicted on item ``index`` -> (N, 4) boxes in the catalog's frame of
        its key slice (0-based pixels, as ``deeplesion evaluate`` reads them)."""
        network = box_convention.from_torchvision(np.asarray(boxes, dtype=np.float64))
        return self.geometry(index).inverse().boxes(network)

    def __getstate__(self) -> dict[str, Any]:
        # travel light to DataLoader workers: the release pickles as its root and annotation path;
        # the chosen rows as their positions when they come from the release's own file
        state = dict(self.__dict__)
        state["rows"] = None
        state["row_positions"] = self.rows.row.tolist() if self.release._given_catalog is None else None
        state["rows_given"] = self.rows if self.release._given_catalog is not None else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        positions, given = state.pop("row_positions"), state.pop("rows_given")
        self.__dict__.update(state)
        if given is not None:
            self.rows = given
        else:
            catalog = self.release.catalog
            by_row = {int(r): i for i, r in enumerate(catalog.row.tolist())}
            self.rows = catalog.take([by_row[int(r)] for r in positions])


def lesions_to_dataset(
    release: Release, lesions: Sequence[Lesion] | Catalog, **options: Any
) -> KeySliceDataset:
    """A dataset of a user's own rows (for example a filtered catalog or hand-made records) over the
    images of ``release``; ``options`` as for :class:`KeySliceDataset` (``split`` defaults to every row)."""
    catalog = lesions if isinstance(lesions, Catalog) else from_lesions(list(lesions))
    options.setdefault("split", None)
    own = Release(release.root, annotations=release.annotations, catalog=catalog)
    return KeySliceDataset(own, **options)


def _on_disk(release: Release, lesion: Lesion) -> bool:
    return lesion.key_slice in release.slice_numbers(lesion.folder)


def _with_windows(transform: Pipeline, windows: Sequence[str | tuple[float, float]] | None) -> Pipeline:
    if windows is None:
        return transform
    window_steps = [s for s in transform.steps if isinstance(s, Window)]
    if not window_steps:
        raise UsageError("`windows` replaces the pipeline's Window step, and this pipeline has none")
    scale = window_steps[0].scale
    steps = tuple(MultiWindow(tuple(windows), scale) if isinstance(s, Window) else s for s in transform.steps)
    return dataclasses.replace(transform, steps=steps, name=f"{transform.name}+{len(windows)} windows")
