"""Synthetic DeepLesion releases in the exact official layout, for demos, tests and CPU training."""

from __future__ import annotations

from deeplesion.synth.release import QUIRKS, SynthResult, make_synthetic_release, plan_release

__all__ = ["QUIRKS", "SynthResult", "make_synthetic_release", "plan_release"]
