"""Follow each lesion across a patient's studies and report its RECIST response.

- :mod:`~deeplesion.tracking.matching`: the link cost between two scans and the assignment;
- :mod:`~deeplesion.tracking.tracks`: links of every two scans chained into tracks;
- :mod:`~deeplesion.tracking.response`: diameters over time and the RECIST 1.1 response per study;
- :mod:`~deeplesion.tracking.pairs`: scoring against lesion pairs of known identity (DLT, synthetic);
- :mod:`~deeplesion.tracking.plot`: a timeline per patient.

numpy and scipy only (no torch). The method and its parameters: ``docs/tracking.md``.
"""

from deeplesion.tracking.matching import (
    FITTED,
    LesionFeatures,
    Link,
    TrackingParameters,
    link_cost,
    match_scans,
)
from deeplesion.tracking.pairs import ResolvedPairs, identity_pairs, load_pairs, resolve_pairs, score_pairs
from deeplesion.tracking.tracks import Measurement, Track, TrackingResult, track_lesions

__all__ = [
    "FITTED",
    "LesionFeatures",
    "Link",
    "Measurement",
    "ResolvedPairs",
    "Track",
    "TrackingParameters",
    "TrackingResult",
    "identity_pairs",
    "link_cost",
    "load_pairs",
    "match_scans",
    "resolve_pairs",
    "score_pairs",
    "track_lesions",
]
