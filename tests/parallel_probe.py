"""Module-level functions that worker processes can import (tests of deeplesion.parallel)."""

from __future__ import annotations

import os
import time

STATE = "as imported"
"""The parent changes this at run time: a forked worker would see the change, a fresh one does not."""


def worker_state(_: int) -> str:
    return STATE


def slow_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()
