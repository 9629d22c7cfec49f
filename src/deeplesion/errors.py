"""The exception hierarchy of the toolkit.

Every error a user can cause derives from :class:`DeepLesionError`; the subclasses also derive from the
matching builtin, so ``except FileNotFoundError`` keeps working. Messages say what was expected, what was
found and how to fix it. The CLI prints them without a traceback.
"""

from __future__ import annotations


class DeepLesionError(Exception):
    """Base class of every error raised on purpose by ``deeplesion``."""


class DataRootError(DeepLesionError, FileNotFoundError):
    """No data root was given, or it does not hold what is needed."""


class AnnotationError(DeepLesionError, ValueError):
    """A ``DL_info.csv`` file (or a row of it) cannot be read."""


class ImageError(DeepLesionError, ValueError):
    """A slice image is missing, unreadable or not what the annotations say."""


class PredictionError(DeepLesionError, ValueError):
    """A predictions file (or a row of it) cannot be used for evaluation."""


class UsageError(DeepLesionError, ValueError):
    """Arguments that contradict each other or name something that does not exist."""


class OutputExistsError(DeepLesionError, FileExistsError):
    """An output exists and would be overwritten; pass ``force`` to replace it."""
