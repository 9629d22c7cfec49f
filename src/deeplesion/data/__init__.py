"""PyTorch datasets of DeepLesion (imports torch: ``pip install 'deeplesion[torch]'``).

>>> import deeplesion
>>> from deeplesion.data import KeySliceDataset, data_loader
>>> dataset = KeySliceDataset(deeplesion.open(root), split="train", slices=9)
>>> for images, targets in data_loader(dataset, batch_size=4, shuffle=True, num_workers=2): ...

Items follow torchvision's detection contract (a list of (C, H, W) images, a list of target dicts with
``boxes`` and ``labels``), so ``torchvision.models.detection`` models take them as they are. Nothing else
in the package imports torch.
"""

from __future__ import annotations

from typing import Any

import torch

from deeplesion.data.dataset import KeySliceDataset, Target, lesions_to_dataset

__all__ = ["KeySliceDataset", "Target", "collate", "data_loader", "lesions_to_dataset", "worker_init"]


def collate(batch: list[tuple[torch.Tensor, Target]]) -> tuple[list[torch.Tensor], list[Target]]:
    """A batch as torchvision's detection models take it: a list of images (sizes may differ after the
    spacing resize) and a list of targets."""
    images, targets = zip(*batch, strict=True) if batch else ((), ())
    return list(images), list(targets)


def worker_init(worker_id: int) -> None:
    """DataLoader worker set-up: one OpenCV and one torch thread per worker (the workers are the
    parallelism)."""
    from deeplesion.parallel import configure_worker

    configure_worker()
    torch.set_num_threads(1)


def data_loader(
    dataset: torch.utils.data.Dataset[Any],
    *,
    batch_size: int = 2,
    shuffle: bool = False,
    num_workers: int = 0,
    seed: int = 0,
    sampler: torch.utils.data.Sampler[int] | None = None,
    drop_last: bool = False,
    **options: Any,
) -> torch.utils.data.DataLoader[Any]:
    """A DataLoader with the package's rules: workers start from a fresh interpreter (never a fork of a
    process with threads), one OpenCV thread each, :func:`collate`, and a seeded shuffle, so that the same
    seed gives the same batches at any ``num_workers`` (items draw their augmentations from the dataset's
    own seed and their index). Pass a ``DistributedSampler`` as ``sampler`` under DDP."""
    import multiprocessing

    from deeplesion.parallel import START_METHOD

    generator = torch.Generator()
    generator.manual_seed(seed)
    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra["multiprocessing_context"] = multiprocessing.get_context(START_METHOD)
        extra["worker_init_fn"] = worker_init
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        generator=generator,
        drop_last=drop_last,
        **extra,
        **options,
    )
