"""The universal lesion detector: a 2.5D Faster R-CNN (3DCE/MULAN style) on torchvision's parts.

Imports torch and torchvision (the ``torch`` extra). Four steps, four commands:

- :func:`~deeplesion.detect.train.train` (``deeplesion train``): presets ``cpu-small`` and ``paper``
  (:mod:`deeplesion.detect.config`), one CPU to many GPUs under ``torchrun``;
- :func:`~deeplesion.detect.predict.predict` (``deeplesion predict``): detections on a split in the
  evaluation's CSV (or COCO) format;
- ``deeplesion evaluate``: the official FROC of those detections;
- :func:`~deeplesion.detect.scan.detect_scan` (``deeplesion detect``): the detector on a user's own CT
  (NIfTI, DICOM series, or a DeepLesion PNG folder).
"""

from deeplesion.detect.config import PRESETS, TrainConfig, load_config
from deeplesion.detect.model import MODELS, build_model, load_backbone_weights

__all__ = ["MODELS", "PRESETS", "TrainConfig", "build_model", "load_backbone_weights", "load_config"]
