"""Training configuration: plain YAML files; the presets ship with the package (``detect/presets``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from deeplesion.errors import UsageError

PRESETS = ("cpu-small", "paper")

MODEL_KEYS = (
    "backbone",
    "slices",
    "out_stride",
    "fpn_channels",
    "anchor_sizes",
    "pixel_mean",
    "pixel_std",
    "rpn_batch_per_image",
    "roi_batch_per_image",
    "box_head_dim",
    "rpn_pre_nms_train",
    "rpn_post_nms_train",
    "rpn_pre_nms_test",
    "rpn_post_nms_test",
    "detections_per_image",
    "score_floor",
)
"""The fields passed to the model builder."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (see the preset files for what each field does)."""

    model: str = "lesion-2.5d"
    backbone: str = "tiny"
    backbone_weights: str | None = None
    slices: int = 3
    slice_interval_mm: float = 2.0
    window: list[float] = field(default_factory=lambda: [-1024.0, 3071.0])
    out_stride: int = 8
    fpn_channels: int = 64
    anchor_sizes: list[int] = field(default_factory=lambda: [12, 20, 32, 56, 96])
    pixel_mean: float = 50.0
    pixel_std: float = 50.0
    rpn_batch_per_image: int = 64
    roi_batch_per_image: int = 64
    box_head_dim: int = 256
    rpn_pre_nms_train: int = 1000
    rpn_post_nms_train: int = 300
    rpn_pre_nms_test: int = 1000
    rpn_post_nms_test: int = 300
    optimizer: str = "sgd"
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 0.0001
    batch_size: int = 8
    epochs: int = 8
    steps_per_epoch: int = 0
    lr_schedule: str = "cosine"
    lr_steps: list[int] = field(default_factory=lambda: [4, 6])
    warmup_iters: int = 0
    clip_grad: float = 10.0
    amp: bool = False
    train_crop: int = 0
    positive_fraction: float = 1.0
    key_shift_fraction: float = 0.0
    scale_range: list[float] = field(default_factory=lambda: [1.0, 1.0])
    workers: int = 0
    seed: int = 0
    detections_per_image: int = 100
    score_floor: float = 0.001

    def model_options(self) -> dict[str, Any]:
        """Keyword options for :func:`~deeplesion.detect.model.build_model`."""
        options = {k: getattr(self, k) for k in MODEL_KEYS}
        options["anchor_sizes"] = tuple(self.anchor_sizes)
        return options

    def pipeline(self) -> Any:
        """The preprocessing: the reference pipeline (body crop, window to 0-255, 0.8 mm/px, at most
        512 px) with this config's window."""
        from deeplesion.transforms import pipeline

        return pipeline(window=(float(self.window[0]), float(self.window[1])), name=f"window {self.window}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> TrainConfig:
        """Raise :class:`UsageError` on values no run can use."""
        if self.slices < 3 or self.slices % 3:
            raise UsageError(f"config: slices must be a multiple of 3, got {self.slices}")
        if self.optimizer not in ("sgd", "adamw"):
            raise UsageError(f"config: optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.lr_schedule not in ("cosine", "steps"):
            raise UsageError(f"config: lr_schedule must be cosine or steps, got {self.lr_schedule!r}")
        for name in ("batch_size", "epochs", "lr"):
            if not getattr(self, name) > 0:
                raise UsageError(f"config: {name} must be positive, got {getattr(self, name)}")
        if len(self.window) != 2 or not self.window[0] < self.window[1]:
            raise UsageError(f"config: window must be [low, high] HU with low < high, got {self.window}")
        if not 0 <= self.positive_fraction <= 1:
            raise UsageError(f"config: positive_fraction must be in [0, 1], got {self.positive_fraction}")
        return self


def preset_text(name: str) -> str:
    """The YAML text of a packaged preset."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; use {' or '.join(PRESETS)}")
    return (
        resources.files("deeplesion.detect").joinpath("presets", f"{name}.yaml").read_text(encoding="utf-8")
    )


def _parse(text: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: not valid YAML ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{where}: expected a mapping of option: value")
    return data


def load_config(preset: str = "cpu-small", file: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """A preset, then the keys of ``file`` (YAML) over it, then ``overrides``.

    Raises
    ------
    UsageError
        An unknown preset or key, a file that cannot be read, a value of the wrong kind.
    """
    values = _parse(preset_text(preset), f"preset {preset}")
    if file is not None:
        path = Path(file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the config ({exc.strerror})") from None
        values.update(_parse(text, str(path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"config: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    defaults = TrainConfig()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = float(value)
        elif getattr(defaults, key) is not None and not isinstance(values[key], expected):
            raise UsageError(f"config: {key} should be {expected.__name__}, got {value!r}")
    return TrainConfig(**values).check()
