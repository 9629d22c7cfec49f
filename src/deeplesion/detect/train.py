"""Training: one CPU to many GPUs (DDP under ``torchrun``), with the official FROC on the validation split
after every epoch, checkpoints, resume, a JSON-lines log and a training-curve plot.

Run folder ``RUN/``: ``config.yaml`` (the resolved config), ``epoch-NNN.pt`` per epoch, ``last.pt``,
``best.pt`` (the epoch with the best mean sensitivity over 0.5-4 FPs per image on ``val``), ``log.jsonl``
(one JSON object per epoch) and ``curve.png``. Each checkpoint holds the model, the optimizer, the
config, the package version, the data fingerprint, the epoch and the step.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deeplesion.detect.config import TrainConfig
from deeplesion.detect.model import build_model, load_backbone_weights
from deeplesion.detect.samples import Stack, prepare_stack, stack_tasks, steps_per_epoch, training_batch
from deeplesion.errors import DeepLesionError, OutputExistsError, UsageError
from deeplesion.io import replacing

log = logging.getLogger(__name__)

RUN_FILES = ("config.yaml", "last.pt", "best.pt", "log.jsonl", "curve.png")
HEADLINE = "mean_sensitivity_0.5_4"


class TrainingError(DeepLesionError, RuntimeError):
    """Training cannot go on (a loss that is not finite, a checkpoint of other data)."""


@dataclass
class Progress:
    """Callbacks for a progress display (the CLI draws bars; the default logs each epoch)."""

    phase: Callable[[str, int], None] = lambda name, total: None
    advance: Callable[[int, dict[str, float]], None] = lambda n, info: None


@dataclass
class TrainSummary:
    """What :func:`train` did."""

    run: Path
    epochs: int
    best_epoch: int | None
    best: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    model: nn.Module | None = None  # the weights after the last epoch (every rank's, under DDP)


# --- distributed -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` > 1): NCCL on GPUs, gloo on
    CPUs; else a single process on the first GPU, or the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        rank = dist.get_rank()
    else:
        rank = 0
    if cuda:
        torch.cuda.set_device(local)
    return Dist(rank, world, local, torch.device(f"cuda:{local}") if cuda else torch.device("cpu"))


def _barrier(dist_info: Dist) -> None:
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()


# --- data ----------------------------------------------------------------------------------------------


def data_fingerprint(catalog: Any, splits: tuple[str, ...] = ("train", "val")) -> str:
    """SHA-256 (16 hex digits) of the rows a run trains and selects on: file names, boxes, splits."""
    digest = hashlib.sha256()
    for lesion in catalog.filter(split=list(splits)):
        digest.update(
            f"{lesion.file_name},{','.join(f'{v:.2f}' for v in lesion.box)},{lesion.split}\n".encode()
        )
    return digest.hexdigest()[:16]


def prepare_training_stacks(
    release: Any, config: TrainConfig, *, jobs: int, progress: Progress
) -> list[Stack]:
    """Every training stack of the release's train split (noisy rows excluded), prepared in ``jobs``
    worker processes."""
    from deeplesion.parallel import map_calls

    rows = release.catalog.filter(split="train", noisy=False)
    if len(rows) == 0:
        raise UsageError(f"{release.root}: no training rows (split train, not noisy) in DL_info.csv")
    groups: dict[str, list[Any]] = {}
    for lesion in rows:
        if release.path_of(lesion.file_name).is_file():
            groups.setdefault(lesion.file_name, []).append(lesion)
    if not groups:
        raise UsageError(f"{release.root}: none of the training key slices is on disk")
    tasks = stack_tasks(groups, config.key_shift_fraction, lambda f, n: release.path(f, n).is_file())
    preprocessing = config.pipeline()
    calls = [
        (str(release.root), name, shift, config.slices, config.slice_interval_mm, preprocessing)
        for name, shift in tasks
    ]
    progress.phase("preparing training stacks", len(calls))
    stacks = []
    broken: list[str] = []
    for stack in map_calls(
        prepare_stack, calls, jobs=jobs, progress=lambda done, total: progress.advance(1, {})
    ):
        if isinstance(stack, str):
            broken.append(stack)
        else:
            stacks.append(stack)
    if broken:
        log.warning("%d training stack(s) skipped for unreadable slices, e.g. %s", len(broken), broken[0])
    if not stacks:
        raise UsageError(f"{release.root}: no training stack could be read ({broken[0]})")
    stacks.sort(key=lambda s: (s.file_name, s.shift))  # completion order varies; the run must not
    return stacks


def evaluation_dataset(release: Any, config: TrainConfig, split: str, *, exclude_noisy: bool) -> Any:
    """The key slices of ``split`` as whole stacks, preprocessed as the model was trained (the config's
    slices, interval and window): what validation and ``predict`` run the model on."""
    from deeplesion.data import KeySliceDataset

    return KeySliceDataset(
        release,
        split=split,
        slices=config.slices,
        interval_mm=config.slice_interval_mm,
        transform=config.pipeline(),
        exclude_noisy=exclude_noisy,
        on_missing="skip",
    )


def key_slice_items(dataset: Any, skipped: list[str]) -> Iterator[tuple[torch.Tensor, Any, str]]:
    """``(image, inverse transform, file name)`` of every readable item of a ``KeySliceDataset``; an
    unreadable stack is logged, its message appended to ``skipped``, and left out (its lesions count as
    missed)."""
    from deeplesion.errors import ImageError

    for index in range(len(dataset)):
        try:
            image, _ = dataset[index]
            inverse = dataset.geometry(index).inverse()
        except ImageError as exc:
            log.warning("%s; no detections for %s", exc, dataset.file_names[index])
            skipped.append(str(exc))
            continue
        yield image, inverse, dataset.file_names[index]


class _ValidationSet:
    """The validation split's key slices (noisy rows excluded, as the official FROC), kept in memory as
    float16 after the first pass when small enough (2,000 slices)."""

    LIMIT = 2000

    def __init__(self, release: Any, config: TrainConfig, split: str) -> None:
        self.dataset = evaluation_dataset(release, config, split, exclude_noisy=True)
        self.memory: list[tuple[torch.Tensor, Any, str]] | None = None
        self.skipped: list[str] = []

    def __len__(self) -> int:
        return len(self.dataset)

    def items(self) -> Iterator[tuple[torch.Tensor, Any, str]]:
        """Every readable item (see :func:`key_slice_items`)."""
        if self.memory is not None:
            for image, inverse, name in self.memory:
                yield image.float(), inverse, name
            return
        keep = len(self.dataset) <= self.LIMIT
        kept = []
        self.skipped = []
        for image, inverse, name in key_slice_items(self.dataset, self.skipped):
            if keep:
                kept.append((image.to(torch.float16), inverse, name))
            yield image, inverse, name
        if keep:
            self.memory = kept


@torch.no_grad()
def detect_stacks(
    model: nn.Module,
    items: Iterator[tuple[torch.Tensor, Any, str]],
    *,
    device: torch.device,
    batch: int = 4,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Run the model on whole stacks; boxes mapped back to original pixels (the evaluation's frame).

    Returns
    -------
    file_names, boxes, scores
        Per detection: its key slice, (N, 4) float64 ``x1, y1, x2, y2`` 0-based original pixels, (N,) score.
    """
    from deeplesion import boxes as box_convention

    model.eval()
    names: list[str] = []
    all_boxes: list[np.ndarray] = []
    all_scores: list[np.ndarray] = []
    pending: list[tuple[torch.Tensor, Any, str]] = []

    def flush() -> None:
        outputs = model([p[0].to(device) for p in pending])
        for (_, inverse, name), out in zip(pending, outputs, strict=True):
            network = box_convention.from_torchvision(out["boxes"].float().cpu().numpy().astype(np.float64))
            original = inverse.boxes(network)
            names.extend([name] * len(original))
            all_boxes.append(original)
            all_scores.append(out["scores"].float().cpu().numpy().astype(np.float64))
        if on_batch:
            on_batch(len(pending))
        pending.clear()

    for item in items:
        pending.append(item)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    boxes = np.concatenate(all_boxes) if all_boxes else np.zeros((0, 4))
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    return names, boxes, scores


def froc(catalog: Any, split: str, names: list[str], boxes: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """The official FROC (MULAN protocol) of detections on ``split``."""
    from deeplesion.evaluate.predictions import Predictions
    from deeplesion.evaluate.run import evaluate

    predictions = Predictions(
        np.array(names, dtype=object), boxes, scores, np.arange(1, len(scores) + 1), "validation"
    )
    result: dict[str, Any] = evaluate(catalog, predictions, split=split).result
    return result


# --- the loop --------------------------------------------------------------------------------------------


def _learning_rate(config: TrainConfig, step: int, total: int, per_epoch: int) -> float:
    """Linear warm-up from a tenth, then cosine to zero or steps of x0.1 at the configured epochs."""
    if step < config.warmup_iters:
        return config.lr * (0.1 + 0.9 * step / config.warmup_iters)
    if config.lr_schedule == "cosine":
        span = max(total - config.warmup_iters, 1)
        return config.lr * 0.5 * (1 + math.cos(math.pi * (step - config.warmup_iters) / span))
    epoch = step // per_epoch
    return config.lr * 0.1 ** sum(epoch >= s for s in config.lr_steps)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _prepare_run_folder(run: Path, *, resume: bool, force: bool) -> None:
    existing = run.exists() and any(run.iterdir())
    if existing and not (resume or force):
        raise OutputExistsError(
            f"{run} exists: pass --resume to continue its training, or --force to start it again"
        )
    if resume and not (run / "last.pt").is_file():
        raise UsageError(f"{run}: nothing to resume (no last.pt)")
    if force and not resume and run.exists():
        for name in RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (run / name).unlink()
        for old in run.glob("epoch-*.pt"):
            old.unlink()
    run.mkdir(parents=True, exist_ok=True)


def _save(path: Path, payload: dict[str, Any]) -> None:
    with replacing(path) as tmp:
        torch.save(payload, tmp)


def train(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> TrainSummary:
    """Train the detector on ``root``'s train split, select on ``val``, write the run folder ``out``.

    Parameters
    ----------
    root
        A release folder (``DL_info.csv`` and ``Images_png``; a partial release works with what is there).
    out
        The run folder (refused when it exists, unless ``resume`` or ``force``).
    config
        The resolved configuration (:func:`~deeplesion.detect.config.load_config`).
    resume
        Continue from ``out/last.pt`` (its config is used; the data must be the same).
    jobs
        Processes that prepare the training stacks (default: the CPU count).

    Returns
    -------
    TrainSummary
        The epochs run, the best epoch and its mean sensitivity (0.5-4 FPs per image on ``val``).
    """
    from deeplesion import __version__
    from deeplesion.release import open_release

    started = time.monotonic()
    progress = progress or Progress()
    dist_info = setup_distributed()
    run = Path(out)
    if dist_info.main:
        _prepare_run_folder(run, resume=resume, force=force)
    _barrier(dist_info)
    release = open_release(root)
    fingerprint = data_fingerprint(release.catalog)
    state: dict[str, Any] | None = None
    if resume:
        state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
        if state["fingerprint"] != fingerprint:
            raise TrainingError(
                f"{run / 'last.pt'} was trained on other data (fingerprint {state['fingerprint']}, this "
                f"release {fingerprint}); use another run folder"
            )
        config = TrainConfig(**state["config"])
    torch.manual_seed(config.seed + dist_info.rank)
    model = build_model(config.model, **config.model_options())
    if config.backbone_weights and state is None:
        missing = load_backbone_weights(model, config.backbone_weights)
        log.info(
            "backbone weights from %s (%d trunk parameters not in the file)",
            config.backbone_weights,
            len(missing),
        )
    model.to(dist_info.device)
    wrapped: nn.Module = model
    if dist_info.world > 1:
        wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist_info.local_rank] if dist_info.device.type == "cuda" else None
        )
    optimizer = _optimizer(model, config)
    use_amp = config.amp and dist_info.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict[str, Any]] = []
    first_epoch, step, best, best_epoch = 0, 0, None, None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch, step = state["epoch"] + 1, state["step"]
        best, best_epoch = state.get("best"), state.get("best_epoch")
        history = state.get("history", [])
        torch.set_rng_state(state["torch_rng"])
    if dist_info.main:
        import yaml

        with replacing(run / "config.yaml") as tmp:
            tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    stacks = prepare_training_stacks(release, config, jobs=jobs or os.cpu_count() or 1, progress=progress)
    validation = _ValidationSet(release, config, "val") if dist_info.main else None
    if validation is not None and len(validation) == 0:
        raise UsageError(
            f"{release.root}: no validation key slices (split val) on disk to select the model on"
        )
    per_rank = max(config.batch_size // dist_info.world, 1)
    per_epoch = steps_per_epoch(len(stacks), config.batch_size, config.steps_per_epoch)
    total = per_epoch * config.epochs
    for epoch in range(first_epoch, config.epochs):
        epoch_started = time.monotonic()
        wrapped.train()
        rng = np.random.default_rng([config.seed, dist_info.rank, epoch])
        progress.phase(f"epoch {epoch + 1}/{config.epochs}", per_epoch)
        sums: dict[str, float] = {}
        for _ in range(per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, step, total, per_epoch)
            indices = rng.integers(len(stacks), size=per_rank)
            images, boxes = training_batch(
                stacks,
                indices.tolist(),
                crop=config.train_crop,
                positive_fraction=config.positive_fraction,
                scale_range=config.scale_range,
                rng=rng,
            )
            inputs = [torch.from_numpy(i).to(dist_info.device) for i in images]
            targets = [
                {
                    "boxes": torch.from_numpy(b).to(dist_info.device),
                    "labels": torch.ones(len(b), dtype=torch.int64, device=dist_info.device),
                }
                for b in boxes
            ]
            with torch.autocast(dist_info.device.type, enabled=use_amp):
                losses = wrapped(inputs, targets)
            loss = sum(losses.values())
            assert isinstance(loss, torch.Tensor)
            if not torch.isfinite(loss):
                parts = ", ".join(f"{k} {v.item():.4g}" for k, v in losses.items())
                raise TrainingError(
                    f"epoch {epoch + 1}, step {step}: the loss is {loss.item()} ({parts}); "
                    "lower `lr` or raise `warmup_iters`"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            if config.clip_grad > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            progress.advance(1, {"loss": float(loss.detach()), "lr": optimizer.param_groups[0]["lr"]})
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "step": step,
            "lr": optimizer.param_groups[0]["lr"],
            **{k: v / per_epoch for k, v in sums.items()},
            "train_seconds": round(time.monotonic() - epoch_started, 2),
        }
        if dist_info.main and validation is not None:
            val_started = time.monotonic()
            progress.phase("validation", len(validation))
            names, boxes_found, scores = detect_stacks(
                model,
                validation.items(),
                device=dist_info.device,
                on_batch=lambda n: progress.advance(n, {}),
            )
            progress.advance(len(validation.skipped), {})  # unreadable slices count as done on the bar
            result = froc(release.catalog, "val", names, boxes_found, scores)
            record["val_sensitivity"] = result["sensitivity"]
            record[f"val_{HEADLINE}"] = result[HEADLINE]
            record["val_seconds"] = round(time.monotonic() - val_started, 2)
            score = result[HEADLINE]
            improved = score is not None and (best is None or score > best)
            if improved:
                best, best_epoch = score, epoch + 1
            record["best_epoch"] = best_epoch
            history.append(record)
            payload = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "config": config.to_dict(),
                "version": __version__,
                "fingerprint": fingerprint,
                "epoch": epoch,
                "step": step,
                "best": best,
                "best_epoch": best_epoch,
                "history": history,
                "torch_rng": torch.get_rng_state(),
                "val": result,
            }
            _save(run / f"epoch-{epoch + 1:03d}.pt", payload)
            _save(run / "last.pt", payload)
            if improved:
                _save(run / "best.pt", payload)
            with (run / "log.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            plot_curve(history, run / "curve.png")
            log.info(
                "epoch %d: loss %.3f, val mean sensitivity (0.5-4 FPs) %s%s",
                epoch + 1,
                record["loss"],
                "n/a" if score is None else f"{score:.3f}",
                " (best)" if improved else "",
            )
        _barrier(dist_info)
    return TrainSummary(run, config.epochs, best_epoch, best, history, time.monotonic() - started, model)


def plot_curve(history: list[dict[str, Any]], path: Path) -> Path:
    """The training curve: mean loss per epoch and the validation sensitivities at 1 and 4 FPs per image
    and their 0.5-4 mean, with the selected epoch marked."""
    from deeplesion.viz import figure_png, new_axes

    left = new_axes((7.5, 4.2))
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["loss"] for h in history], "o-", color="#555555", label="training loss")
    left.set_xlabel("epoch")
    left.set_ylabel("training loss (mean per step)")
    right = left.twinx()
    colours = {"1": "#0072B2", "4": "#009E73"}
    for level, colour in colours.items():
        values = [h.get("val_sensitivity", {}).get(level) for h in history]
        right.plot(epochs, values, "s--", color=colour, label=f"val sensitivity at {level} FP/image")
    right.plot(
        epochs, [h.get(f"val_{HEADLINE}") for h in history], "D-", color="#D55E00", label="val mean 0.5-4 FPs"
    )
    best = [h for h in history if h.get("best_epoch") == h["epoch"]]
    if best:
        chosen = max(best, key=lambda h: h["epoch"])
        right.axvline(
            chosen["epoch"],
            color="#D55E00",
            alpha=0.3,
            linewidth=6,
            label=f"selected (epoch {chosen['epoch']})",
        )
    right.set_ylim(0, 1)
    left.set_xlim(0.5, max(epochs, default=1) + 0.5)
    right.set_ylabel("sensitivity")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    labels = left.get_legend_handles_labels()[1] + right.get_legend_handles_labels()[1]
    right.legend(handles, labels, loc="lower right", fontsize=8)
    left.set_title("deeplesion train: loss and validation FROC")
    with replacing(path) as tmp:
        tmp.write_bytes(figure_png(left))
    return path
