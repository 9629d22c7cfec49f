"""Write the packaged table of real lesion statistics that the synthetic release draws from.

Run: ``.venv/bin/python benchmarks/real_lesion_stats.py [DL_info_val.csv DL_info_test.csv]`` (default:
the val and test splits under ``../shared/data/deeplesion/DL_info``). Writes
``src/deeplesion/resources/real_lesion_stats.json``: per coarse lesion type its share of the rows, the
quantiles of the long diameter (mm) and of the normalized location (x, y, z), and the short/long ratio;
the val and test splits are the rows whose types are known (9,816 rows).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from deeplesion.catalog import LesionType, concat, load_catalog

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT.parent / "shared/data/deeplesion/DL_info" / f"DL_info_{s}.csv" for s in ("val", "test")]
OUT = ROOT / "src/deeplesion/resources/real_lesion_stats.json"
DIAMETER_LEVELS = np.linspace(0.0, 100.0, 51)
LOCATION_LEVELS = np.linspace(0.0, 100.0, 21)


def main() -> None:
    files = [Path(a) for a in sys.argv[1:]] or DEFAULT
    catalog = concat([load_catalog(f) for f in files])
    typed = catalog.lesion_type != int(LesionType.UNKNOWN)
    long_mm = catalog.long_diameter_mm[typed]
    ratio = (catalog.short_diameter_mm / catalog.long_diameter_mm)[typed]
    location = catalog.location[typed]
    types = catalog.lesion_type[typed]
    table: dict[str, object] = {
        "source": "DeepLesion DL_info.csv rows of the val and test splits (NIH Clinical Center): "
        + ", ".join(f.name for f in files),
        "rows": int(typed.sum()),
        "diameter_levels_percent": DIAMETER_LEVELS.tolist(),
        "location_levels_percent": LOCATION_LEVELS.tolist(),
        "long_mm_quantiles": np.round(np.percentile(long_mm, DIAMETER_LEVELS), 3).tolist(),
        "short_over_long_quantiles": np.round(np.percentile(ratio, LOCATION_LEVELS), 4).tolist(),
        "types": {},
    }
    for code in sorted(set(types.tolist())):
        chosen = types == code
        name = LesionType(code).label
        table["types"][name] = {  # type: ignore[index]
            "rows": int(chosen.sum()),
            "share": round(float(chosen.mean()), 5),
            "long_mm_quantiles": np.round(np.percentile(long_mm[chosen], DIAMETER_LEVELS), 3).tolist(),
            "location_mean": np.round(location[chosen].mean(0), 4).tolist(),
            "location_quantiles": np.round(
                np.percentile(location[chosen], LOCATION_LEVELS, axis=0).T, 4
            ).tolist(),
        }
    OUT.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(f"{OUT.relative_to(ROOT)}: {table['rows']} rows")
    for name, entry in table["types"].items():  # type: ignore[attr-defined]
        print(
            f"  {name:12s} share {entry['share']:.3f}  median long {entry['long_mm_quantiles'][25]:6.1f} mm  "
            f"mean location {entry['location_mean']}"
        )


if __name__ == "__main__":
    main()
