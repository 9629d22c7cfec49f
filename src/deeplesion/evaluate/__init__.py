"""The official DeepLesion detection evaluation (FROC), both reference variants, strata and intervals."""

from __future__ import annotations

from deeplesion.evaluate.froc import DEFAULT_FP_LEVELS, HEADLINE_LEVELS, PROTOCOLS, Curve, match, read_levels
from deeplesion.evaluate.predictions import Predictions, read_predictions_coco, read_predictions_csv
from deeplesion.evaluate.run import TIE_RULE, Evaluation, evaluate

__all__ = [
    "DEFAULT_FP_LEVELS",
    "HEADLINE_LEVELS",
    "PROTOCOLS",
    "TIE_RULE",
    "Curve",
    "Evaluation",
    "Predictions",
    "evaluate",
    "match",
    "read_levels",
    "read_predictions_coco",
    "read_predictions_csv",
]
