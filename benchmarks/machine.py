"""The header line every benchmark prints: which machine measured the numbers, and when."""

from __future__ import annotations

import datetime
import os
import platform


def machine_header(*extra: str) -> str:
    """``# host · cpu · N cores · Python x.y.z · date`` plus ``extra`` items."""
    items = [
        platform.node(),
        platform.processor() or platform.machine(),
        f"{os.cpu_count()} cores",
        f"Python {platform.python_version()}",
        datetime.date.today().isoformat(),
        *extra,
    ]
    return "# " + " · ".join(items)
