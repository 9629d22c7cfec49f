"""What a catalog holds, as one JSON-ready dict (``deeplesion info``) and as text for people."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np

from deeplesion.catalog import Catalog, LesionType, Split, format_number

DIAMETER_BINS_MM = (0.0, 10.0, 20.0, 30.0, 50.0, 100.0, float("inf"))
"""Long-diameter bins (mm) of the summary histogram: [0, 10), [10, 20), ..., [100, inf)."""


def _counts(catalog: Catalog) -> dict[str, int]:
    clean = catalog.filter(noisy=False)
    return {
        "key_slices": catalog.num_key_slices,
        "lesions": len(catalog),
        "key_slices_without_noisy": clean.num_key_slices,
        "lesions_without_noisy": len(clean),
    }


def _stats(values: np.ndarray[Any, Any]) -> dict[str, float | int | None]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"count": 0, "min": None, "median": None, "mean": None, "max": None}
    return {
        "count": int(finite.size),
        "min": round(float(finite.min()), 3),
        "median": round(float(np.median(finite)), 3),
        "mean": round(float(finite.mean()), 3),
        "max": round(float(finite.max()), 3),
    }


def summarize(catalog: Catalog) -> dict[str, Any]:
    """Counts and distributions of a catalog.

    Returns
    -------
    dict
        ``source``, ``official``, totals, ``splits`` (key slices and lesions with and without
        possibly-noisy rows per split), ``lesion_types``, ``long_diameter_mm`` (statistics and histogram),
        ``slice_interval_mm`` and ``image_size`` (value -> lesions), ``sex`` and ``age`` summaries.
    """
    long_mm = catalog.long_diameter_mm
    histogram = np.histogram(long_mm, bins=np.array(DIAMETER_BINS_MM))[0]
    labels = [
        f"{format_number(lo)}-{format_number(hi)}" if np.isfinite(hi) else f">={format_number(lo)}"
        for lo, hi in itertools.pairwise(DIAMETER_BINS_MM)
    ]
    intervals = Counter(catalog.slice_interval_mm.tolist())
    sizes = Counter(f"{w}x{h}" for w, h in catalog.image_size.tolist())
    types = Counter(catalog.lesion_type.tolist())
    patients_by_sex = {
        sex: len(set(catalog.patient[catalog.sex == sex].tolist()))
        for sex in sorted(set(catalog.sex.tolist()))
    }
    return {
        "source": catalog.source,
        "official": catalog.official,
        "patients": len(set(catalog.patient.tolist())),
        "studies": len(set(zip(catalog.patient.tolist(), catalog.study.tolist(), strict=True))),
        "series_folders": len(set(catalog.folder.tolist())),
        **_counts(catalog),
        "splits": {s.label: _counts(catalog.filter(split=s)) for s in Split},
        "lesion_types": {t.label: int(types.get(int(t), 0)) for t in LesionType},
        "long_diameter_mm": {
            **_stats(long_mm),
            "histogram": dict(zip(labels, histogram.tolist(), strict=True)),
        },
        "slice_interval_mm": {format_number(k): v for k, v in sorted(intervals.items())},
        "image_size": dict(sorted(sizes.items())),
        "sex": {"lesions": dict(sorted(Counter(catalog.sex.tolist()).items())), "patients": patients_by_sex},
        "age": {**_stats(catalog.age), "missing": int(np.isnan(catalog.age).sum())},
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as aligned plain text for a terminal."""
    lines = [
        f"source     {summary['source']}",
        "official   "
        + ("yes (lesion indices known)" if summary["official"] else "no (a subset or another file)"),
        f"patients   {summary['patients']}   studies {summary['studies']}   "
        f"series folders {summary['series_folders']}",
        "",
        f"{'split':<8}{'key slices':>12}{'lesions':>10}{'key slices*':>13}{'lesions*':>10}",
    ]
    rows = [*summary["splits"].items(), ("all", summary)]
    for name, c in rows:
        lines.append(
            f"{name:<8}{c['key_slices']:>12}{c['lesions']:>10}"
            f"{c['key_slices_without_noisy']:>13}{c['lesions_without_noisy']:>10}"
        )
    lines.append("* without possibly-noisy rows (as the official evaluation counts)")
    lines.append("")
    lines.append("lesion types   " + "  ".join(f"{k} {v}" for k, v in summary["lesion_types"].items()))
    d = summary["long_diameter_mm"]
    if d["count"]:
        lines.append(
            f"long diameter  min {d['min']} / median {d['median']} / max {d['max']} mm;  "
            + "  ".join(f"[{k}) {v}" for k, v in d["histogram"].items())
        )
    lines.append(
        "slice interval " + "  ".join(f"{k} mm: {v}" for k, v in summary["slice_interval_mm"].items())
    )
    lines.append("image size     " + "  ".join(f"{k}: {v}" for k, v in summary["image_size"].items()))
    sex = summary["sex"]["patients"]
    age = summary["age"]
    lines.append("sex (patients) " + "  ".join(f"{k} {v}" for k, v in sex.items()))
    if age["count"]:
        lines.append(
            f"age            min {age['min']:g} / median {age['median']:g} / max {age['max']:g} years; "
            f"missing {age['missing']}"
        )
    return "\n".join(lines)
