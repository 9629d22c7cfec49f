"""A patient's anatomy as irregular cross-sections that change smoothly along z.

Coordinates. Body frame, millimetres: ``x`` to the patient's left (image right), ``y`` to the back (image
down), ``z`` toward the feet. ``zn = z / height_mm`` is the normalized body height that DL_info.csv's
``Normalized_lesion_location`` uses (measured on the real rows: lung lesions 0.38-0.58, liver 0.55-0.66,
kidney 0.61-0.70, pelvis 0.73-0.84), so a scan of chest, abdomen and pelvis spans zn 0.31-0.90.

Every structure is a :class:`Section`: an ellipse whose radius is modulated by a few low harmonics (an
irregular, smooth outline), drawn as a polygon and tested for membership with the same formula, so that
what is drawn and what placement and tests ask about agree. Organ positions and sizes are keyframes in
units of the body cavity's semi-axes, interpolated along zn; every patient gets random sizes, offsets and
outline harmonics, fixed across their studies.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class Tissue(IntEnum):
    """Label of a tissue in the label image; its HU per contrast phase is in :data:`TISSUE_HU`."""

    AIR = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    VISCERAL_FAT = 4
    LUNG = 5
    AIRWAY = 6
    LUNG_VESSEL = 7
    ARTERY = 8
    VEIN = 9
    MYOCARDIUM = 10
    LIVER = 11
    SPLEEN = 12
    KIDNEY = 13
    RENAL_SINUS = 14
    PANCREAS = 15
    BOWEL_WALL = 16
    BOWEL_CONTENT = 17
    GAS = 18
    URINE = 19
    BILE = 20
    CORTICAL = 21
    TRABECULAR = 22
    DISC = 23
    CSF = 24
    TABLE = 25
    CARTILAGE = 26
    RENAL_MEDULLA = 27
    PELVIC_ORGAN = 28
    GLAND = 29
    BOWEL_FLUID = 30
    STOOL = 31
    RIB_MARROW = 32
    LIVER_VESSEL = 33
    ARCH = 34  # the vertebral arch's compact bone (version 21)


PHASES = ("non-contrast", "arterial", "venous")
"""Contrast phases; a study has one (probabilities in :data:`PHASE_WEIGHTS`)."""
PHASE_WEIGHTS = (0.15, 0.10, 0.75)  # DeepLesion is mostly portal-venous CT of oncology patients

# tissue -> (HU non-contrast, arterial, venous; texture amplitude HU). Typical values from CT practice;
# the measured real peaks (fat -102, soft tissue 52, lung -882 HU, median over the 137 shared slices)
# are what the realism test compares against.
TISSUE_HU: dict[Tissue, tuple[float, float, float, float]] = {
    Tissue.AIR: (-1000.0, -1000.0, -1000.0, 0.0),
    Tissue.SKIN: (45.0, 50.0, 55.0, 4.0),
    Tissue.FAT: (-102.0, -102.0, -102.0, 5.0),
    Tissue.MUSCLE: (48.0, 55.0, 58.0, 6.0),
    Tissue.VISCERAL_FAT: (-96.0, -96.0, -96.0, 9.0),
    Tissue.LUNG: (-885.0, -880.0, -880.0, 16.0),
    Tissue.AIRWAY: (-985.0, -985.0, -985.0, 2.0),
    Tissue.LUNG_VESSEL: (40.0, 260.0, 150.0, 0.0),
    Tissue.ARTERY: (42.0, 300.0, 165.0, 3.0),
    Tissue.VEIN: (40.0, 90.0, 150.0, 3.0),
    Tissue.MYOCARDIUM: (45.0, 105.0, 100.0, 5.0),
    Tissue.LIVER: (58.0, 75.0, 110.0, 6.0),
    Tissue.SPLEEN: (48.0, 125.0, 115.0, 6.0),
    Tissue.KIDNEY: (32.0, 175.0, 165.0, 10.0),
    Tissue.RENAL_SINUS: (-55.0, -55.0, -55.0, 12.0),
    Tissue.PANCREAS: (42.0, 100.0, 90.0, 14.0),
    Tissue.BOWEL_WALL: (40.0, 95.0, 90.0, 6.0),
    Tissue.BOWEL_CONTENT: (18.0, 18.0, 18.0, 14.0),  # fluid that oral contrast reaches (ORAL_CONTRAST_HU)
    Tissue.BOWEL_FLUID: (14.0, 14.0, 14.0, 10.0),  # fluid in loops the oral contrast has not reached
    Tissue.GAS: (-960.0, -960.0, -960.0, 6.0),
    Tissue.URINE: (8.0, 8.0, 10.0, 2.0),
    Tissue.BILE: (10.0, 10.0, 12.0, 2.0),
    Tissue.CORTICAL: (1050.0, 1050.0, 1050.0, 60.0),
    # marrow and trabeculae: light grey inside the white cortex in a soft-tissue window, not white. Version
    # 20: in a disc of 6 mm radius in the middle of the vertebral body, the 27 shared real series at zn
    # 0.50-0.75 give 205 HU (median), 22 HU of variation finer than a 2 mm blur and 18 coarser; version
    # 19's (195-205 HU, texture 25) gave 184, 15 and 13: plainer and darker
    Tissue.TRABECULAR: (225.0, 230.0, 235.0, 38.0),
    Tissue.DISC: (85.0, 90.0, 95.0, 8.0),
    Tissue.CSF: (12.0, 12.0, 12.0, 3.0),
    Tissue.TABLE: (160.0, 160.0, 160.0, 0.0),
    Tissue.CARTILAGE: (130.0, 135.0, 140.0, 10.0),
    # the medullary pyramids enhance late: dark against the cortex in the arterial phase, close to it later
    Tissue.RENAL_MEDULLA: (30.0, 80.0, 140.0, 8.0),
    Tissue.PELVIC_ORGAN: (40.0, 75.0, 85.0, 9.0),  # uterus or prostate, behind the bladder
    Tissue.GLAND: (25.0, 32.0, 38.0, 14.0),  # fibroglandular breast tissue
    Tissue.STOOL: (-15.0, -15.0, -15.0, 45.0),  # colon content: soft matter mottled with gas, never opacified
    # the fatty marrow of adult ribs and scapulae: 0-50 HU inside a thin cortex in patient 1's 1 mm slices
    Tissue.RIB_MARROW: (35.0, 38.0, 40.0, 20.0),
    # the portal and hepatic veins inside the liver, a partial-volume layer like the lungs' vessels (version
    # 19): in the portal-venous phase the shared real livers' vessel cuts peak 62 HU (IQR 57-75) above the
    # parenchyma (components of 10 mm^2 or more after a 0.75 mm blur); darker than the liver without
    # contrast
    Tissue.LIVER_VESSEL: (40.0, 90.0, 190.0, 0.0),
    # the vertebral arch (pedicles, laminae, facets, spinous and transverse processes, the sacrum's median
    # crest): thin plates of compact bone that a 5 mm slice shows as one solid stroke. Version 21: across
    # the spinous process the 24 shared real series at zn 0.3-0.8 peak at 690 HU (median) and 6.5 mm wide
    # above 150 HU; behind the canal 208 mm^2 lie above 500 HU and 412 above 300
    Tissue.ARCH: (550.0, 550.0, 550.0, 90.0),
}
ORAL_CONTRAST_HU = 260.0  # bowel content in a study with positive oral contrast


POLYGON_POINTS = 56
_T = np.linspace(0.0, 2.0 * math.pi, POLYGON_POINTS, endpoint=False)
_COS1, _SIN1 = np.cos(_T), np.sin(_T)
_COS = np.array([np.cos(k * _T) for k in range(2, 12)])  # harmonics k = 2..11 at the polygon's angles
_SIN = np.array([np.sin(k * _T) for k in range(2, 12)])


@dataclass(frozen=True)
class Section:
    """An irregular closed cross-section: an ellipse with a harmonically modulated radius.

    Attributes
    ----------
    cx, cy
        Centre, mm (body frame).
    a, b
        Semi-axes along the rotated x and y directions, mm.
    angle
        Rotation of ``a`` from +x toward +y, radians.
    harmonics
        (K, 2) cosine and sine amplitudes of the radius factor ``1 + sum_k c_k cos(k t) + s_k sin(k t)``,
        k = 2..K+1, dimensionless.
    back_power
        Exponent of the half on the +``b`` side (the back, for a body outline): 2 is the ellipse's half,
        more is a superellipse's, squarer (a back flattened on the table).
    front_b
        Semi-axis of the half on the -``b`` side (the front, for a body outline), mm; None: ``b``.
    """

    cx: float
    cy: float
    a: float
    b: float
    angle: float = 0.0
    harmonics: Array = field(default_factory=lambda: np.zeros((0, 2)))
    back_power: float = 2.0
    front_b: float | None = None

    @property
    def front(self) -> float:
        """The semi-axis on the -``b`` side, mm (:attr:`front_b`, or ``b``)."""
        return self.b if self.front_b is None else self.front_b

    def radius_factor(self, t: Array) -> Array:
        """The modulation ``1 + sum_k ...`` at parametric angles ``t`` (radians), any shape."""
        factor = np.ones_like(t)
        for k, (c, s) in enumerate(self.harmonics, start=2):
            factor += c * np.cos(k * t) + s * np.sin(k * t)
        return factor

    def polygon(self) -> Array:
        """(N, 2) outline vertices (x, y), mm (N = :data:`POLYGON_POINTS`)."""
        count = len(self.harmonics)
        r = 1.0 + self.harmonics[:, 0] @ _COS[:count] + self.harmonics[:, 1] @ _SIN[:count]
        if self.back_power != 2.0:  # the superellipse's radius on the back half (its front half as before)
            p = self.back_power
            r = r * np.where(_SIN1 > 0.0, (np.abs(_COS1) ** p + np.abs(_SIN1) ** p) ** (-1.0 / p), 1.0)
        depth = self.b if self.front_b is None else np.where(_SIN1 > 0.0, self.b, self.front_b)
        u, v = self.a * r * _COS1, depth * r * _SIN1
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        return np.stack([self.cx + u * cos - v * sin, self.cy + u * sin + v * cos], axis=1)

    def contains(self, x: Array | float, y: Array | float) -> npt.NDArray[np.bool_]:
        """Whether points (x, y) mm lie inside (the same outline :meth:`polygon` draws)."""
        dx, dy = np.asarray(x, dtype=np.float64) - self.cx, np.asarray(y, dtype=np.float64) - self.cy
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        u, v = (dx * cos + dy * sin) / self.a, -dx * sin + dy * cos
        v = v / (self.b if self.front_b is None else np.where(v > 0.0, self.b, self.front_b))
        if self.back_power != 2.0:
            p = self.back_power
            rho = np.where(v > 0.0, (np.abs(u) ** p + np.abs(v) ** p) ** (1.0 / p), np.hypot(u, v))
            return np.asarray(rho <= self.radius_factor(np.arctan2(v, u)))
        return np.asarray(u * u + v * v <= self.radius_factor(np.arctan2(v, u)) ** 2)


def random_harmonics(rng: np.random.Generator, strength: float, count: int = 4) -> Array:
    """(count, 2) harmonic amplitudes falling off as 1/k; ``strength`` is the k=2 amplitude."""
    k = np.arange(2, count + 2, dtype=np.float64)[:, None]
    return rng.uniform(-1.0, 1.0, (count, 2)) * strength * 2.0 / k


def harmonic_jitter(harmonics: Array, scale: float) -> Array:
    """(2K,) per-patient numbers in (-1, 1) read off a section's random (K, 2) ``harmonics``:
    ``tanh(scale * harmonics)``, with ``scale`` about 1 / the largest amplitude. The renderer draws no
    random numbers (a body's slices render independently, in any order), so drawings that need variety
    per patient read it here; the numbers change only where the harmonics do."""
    return np.tanh(scale * harmonics.ravel())


def interpolate(keys: Sequence[tuple[float, ...]], zn: float) -> tuple[float, ...] | None:
    """Linear interpolation of keyframes ``(zn, v1, v2, ...)`` (sorted by zn); None outside their span."""
    if not keys[0][0] <= zn <= keys[-1][0]:
        return None
    for lower, upper in itertools.pairwise(keys):
        if lower[0] <= zn <= upper[0]:
            w = (zn - lower[0]) / max(upper[0] - lower[0], 1e-9)
            return tuple(p + w * (q - p) for p, q in zip(lower[1:], upper[1:], strict=True))
    return keys[-1][1:]


# Standard body: (zn, half width mm, half depth mm, cavity fraction of the inner outline)
BODY_KEYS = [
    (0.26, 62.0, 58.0, 0.40),
    (0.31, 80.0, 66.0, 0.42),
    (0.34, 175.0, 100.0, 0.55),
    (0.38, 172.0, 106.0, 0.82),
    (0.46, 163.0, 114.0, 0.90),
    (0.56, 160.0, 117.0, 0.93),
    (0.63, 157.0, 114.0, 0.94),
    (0.70, 160.0, 111.0, 0.93),
    (0.77, 172.0, 110.0, 0.90),
    (0.84, 180.0, 108.0, 0.88),
    (0.95, 178.0, 100.0, 0.80),
]

# The standard outline (BODY_KEYS) holds this much subcutaneous fat at the flanks (mm, at the abdomen's
# full share, :meth:`Body.fat_thickness`); a patient with more or less fat has an outline that much wider
# or narrower round the same cavity. Version 17 drew 6-40 mm inside a fixed outline: the middle slices of
# the 29 shared real series at zn 0.55-0.75 show 4.3/11.2/21.0 mm at the flanks (10th/50th/90th
# percentile), version 17 11.6/25.1/33.4 mm; and a thin patient is a smaller patient, not one with a
# bigger abdomen (body width at those heights, real 256/307/347 mm, version 18 275/307/329).
FAT_STANDARD_MM = 23.0

FRONT_FAT_SHARE = 0.5
"""The front's extra subcutaneous fat, as a share of the flanks' (:meth:`Body.fat_thickness`)."""

# Organs: name -> (tissue, keyframes (zn, cx, cy, a, b) in cavity units, angle degrees, irregularity).
# "L"/"R" suffixes are the patient's left (+x) and right (-x).
ORGANS: dict[str, tuple[Tissue, list[tuple[float, float, float, float, float]], float, float]] = {
    # version 22: the lungs widen quickly below the apex (a keyframe at 0.345, larger at 0.37): small upper
    # lungs lay in a wide cavity of fat, where real ones fill the rib cage round a narrow mediastinum
    "lung_R": (
        Tissue.LUNG,
        [
            (0.335, -0.40, 0.15, 0.12, 0.16),
            (0.345, -0.47, 0.08, 0.32, 0.55),
            (0.37, -0.47, 0.02, 0.45, 0.76),
            (0.43, -0.44, -0.03, 0.54, 0.95),
            (0.52, -0.47, 0.02, 0.51, 0.92),
            (0.555, -0.54, 0.25, 0.40, 0.66),
            (0.585, -0.60, 0.50, 0.26, 0.34),
        ],
        0.0,
        0.06,
    ),
    "lung_L": (
        Tissue.LUNG,
        [
            (0.335, 0.40, 0.15, 0.12, 0.16),
            (0.345, 0.47, 0.08, 0.32, 0.55),
            (0.37, 0.47, 0.02, 0.45, 0.76),
            (0.43, 0.45, -0.03, 0.53, 0.95),
            (0.52, 0.50, 0.04, 0.48, 0.90),
            (0.57, 0.56, 0.30, 0.36, 0.62),
            (0.60, 0.60, 0.52, 0.24, 0.30),
        ],
        0.0,
        0.06,
    ),
    "heart": (
        Tissue.MYOCARDIUM,
        [
            (0.445, 0.06, -0.28, 0.12, 0.12),
            (0.46, 0.10, -0.24, 0.30, 0.34),
            (0.48, 0.12, -0.25, 0.38, 0.42),
            (0.535, 0.15, -0.22, 0.42, 0.46),
            (0.558, 0.18, -0.25, 0.12, 0.12),
        ],
        -30.0,
        0.05,
    ),
    # version 14: at zn 0.56-0.60 the liver's left edge lies 0.2 of the cavity's half width left of the
    # midline (0.28-0.38 made the liver half the abdomen, where real key slices of zn 0.61 end it near
    # the midline); its right edge is where it was
    "liver": (
        Tissue.LIVER,
        [
            (0.515, -0.45, 0.0, 0.10, 0.14),
            (0.535, -0.42, 0.0, 0.42, 0.58),
            (0.56, -0.36, 0.02, 0.56, 0.76),
            (0.60, -0.36, 0.05, 0.58, 0.78),
            (0.64, -0.46, 0.12, 0.45, 0.63),
            (0.665, -0.53, 0.16, 0.32, 0.50),
            (0.69, -0.60, 0.22, 0.12, 0.20),
        ],
        10.0,
        0.07,
    ),
    "spleen": (
        Tissue.SPLEEN,
        [
            (0.545, 0.62, 0.42, 0.10, 0.07),
            (0.565, 0.62, 0.38, 0.28, 0.19),
            (0.60, 0.62, 0.36, 0.32, 0.21),
            (0.635, 0.66, 0.32, 0.14, 0.10),
            (0.65, 0.68, 0.30, 0.05, 0.04),
        ],
        -40.0,
        0.08,
    ),
    "stomach": (
        Tissue.BOWEL_WALL,
        [
            (0.535, 0.38, 0.05, 0.12, 0.12),
            (0.56, 0.34, -0.05, 0.32, 0.36),
            (0.60, 0.28, -0.22, 0.34, 0.36),
            (0.635, 0.12, -0.42, 0.28, 0.16),
            (0.655, 0.0, -0.50, 0.08, 0.06),
        ],
        20.0,
        0.10,
    ),
    # version 17: ovals of aspect about 1.5 whose long axis runs 35 degrees from front-to-back, the hilum
    # toward the front and the midline, centred further out (they were nearly round, 1.1, and 13 mm
    # closer to the spine than the real kidneys of the shared slices)
    "kidney_R": (
        Tissue.KIDNEY,
        [
            (0.612, -0.47, 0.43, 0.064, 0.144),
            (0.625, -0.47, 0.42, 0.128, 0.264),
            (0.655, -0.47, 0.41, 0.176, 0.36),
            (0.69, -0.43, 0.40, 0.128, 0.264),
            (0.705, -0.40, 0.39, 0.056, 0.12),
        ],
        -35.0,
        0.04,
    ),
    "kidney_L": (
        Tissue.KIDNEY,
        [
            (0.602, 0.47, 0.43, 0.064, 0.144),
            (0.615, 0.47, 0.42, 0.128, 0.264),
            (0.645, 0.47, 0.41, 0.176, 0.36),
            (0.68, 0.43, 0.40, 0.128, 0.264),
            (0.695, 0.40, 0.39, 0.056, 0.12),
        ],
        35.0,
        0.04,
    ),
    "pancreas": (
        Tissue.PANCREAS,
        [
            (0.60, 0.42, 0.28, 0.10, 0.07),
            (0.615, 0.24, 0.18, 0.32, 0.09),
            (0.63, 0.05, 0.10, 0.32, 0.10),
            (0.65, -0.14, 0.10, 0.15, 0.15),
            (0.67, -0.16, 0.12, 0.06, 0.06),
        ],
        -12.0,
        0.12,
    ),
    "gallbladder": (
        Tissue.BILE,
        [
            (0.60, -0.32, -0.32, 0.04, 0.05),
            (0.62, -0.33, -0.35, 0.10, 0.14),
            (0.645, -0.34, -0.40, 0.04, 0.05),
        ],
        30.0,
        0.04,
    ),
    "bladder": (
        Tissue.URINE,
        [
            (0.785, 0.0, -0.24, 0.12, 0.10),
            (0.81, 0.0, -0.28, 0.34, 0.30),
            (0.85, 0.0, -0.28, 0.32, 0.28),
            (0.88, 0.0, -0.24, 0.22, 0.20),
            (0.90, 0.0, -0.20, 0.08, 0.08),
        ],
        0.0,
        0.05,
    ),
    # version 25: the prostate or the uterus and cervix behind the bladder and down past it, to the
    # pelvic floor (drawn behind the bladder while there was one before: below zn 0.885 the middle of the
    # pelvis was fat round the rectum, where real slices show the organs inside the levator ani's sling)
    "pelvic_organ": (
        Tissue.PELVIC_ORGAN,
        [
            (0.81, 0.0, 0.06, 0.10, 0.08),
            (0.84, 0.0, 0.06, 0.17, 0.13),
            (0.88, 0.0, 0.06, 0.16, 0.14),
            (0.915, 0.0, 0.08, 0.09, 0.09),
        ],
        0.0,
        0.05,
    ),
    "paraspinal_R": (
        Tissue.MUSCLE,
        [
            (0.28, -0.30, 0.90, 0.25, 0.24),
            (0.40, -0.22, 0.92, 0.20, 0.22),
            (0.62, -0.24, 0.86, 0.24, 0.30),
            (0.70, -0.25, 0.85, 0.25, 0.30),
            (0.78, -0.20, 0.90, 0.18, 0.18),
        ],
        10.0,
        0.08,
    ),
    "paraspinal_L": (
        Tissue.MUSCLE,
        [
            (0.28, 0.30, 0.90, 0.25, 0.24),
            (0.40, 0.22, 0.92, 0.20, 0.22),
            (0.62, 0.24, 0.86, 0.24, 0.30),
            (0.70, 0.25, 0.85, 0.25, 0.30),
            (0.78, 0.20, 0.90, 0.18, 0.18),
        ],
        -10.0,
        0.08,
    ),
    "gluteal_R": (
        Tissue.MUSCLE,
        [
            (0.73, -0.52, 0.66, 0.12, 0.08),
            (0.78, -0.48, 0.66, 0.40, 0.24),
            (0.84, -0.42, 0.64, 0.50, 0.30),
            (0.92, -0.40, 0.60, 0.46, 0.30),
        ],
        30.0,
        0.08,
    ),
    "gluteal_L": (
        Tissue.MUSCLE,
        [
            (0.73, 0.52, 0.66, 0.12, 0.08),
            (0.78, 0.48, 0.66, 0.40, 0.24),
            (0.84, 0.42, 0.64, 0.50, 0.30),
            (0.92, 0.40, 0.60, 0.46, 0.30),
        ],
        -30.0,
        0.08,
    ),
    # version 14: the obturator internus lines the pelvic side wall from the pubis to the ischium (a small
    # oval beside the hip socket before) and the bladder reaches down to the symphysis (zn 0.87 before):
    # below the hips the pelvis was fat round the rectum
    "obturator_R": (
        Tissue.MUSCLE,
        [
            (0.80, -0.42, 0.0, 0.05, 0.10),
            (0.84, -0.45, 0.04, 0.10, 0.42),
            (0.875, -0.42, 0.08, 0.11, 0.45),
            (0.90, -0.36, 0.12, 0.08, 0.30),
        ],
        0.0,
        0.05,
    ),
    "obturator_L": (
        Tissue.MUSCLE,
        [
            (0.80, 0.42, 0.0, 0.05, 0.10),
            (0.84, 0.45, 0.04, 0.10, 0.42),
            (0.875, 0.42, 0.08, 0.11, 0.45),
            (0.90, 0.36, 0.12, 0.08, 0.30),
        ],
        0.0,
        0.05,
    ),
    "psoas_R": (
        Tissue.MUSCLE,
        [(0.64, -0.16, 0.62, 0.05, 0.05), (0.72, -0.22, 0.50, 0.13, 0.14), (0.79, -0.32, 0.20, 0.13, 0.13)],
        0.0,
        0.05,
    ),
    "psoas_L": (
        Tissue.MUSCLE,
        [(0.64, 0.16, 0.62, 0.05, 0.05), (0.72, 0.22, 0.50, 0.13, 0.14), (0.79, 0.32, 0.20, 0.13, 0.13)],
        0.0,
        0.05,
    ),
}

# Tubes: name -> (tissue, keyframes (zn, cx, cy) in cavity units, radius mm)
VESSELS: dict[str, tuple[Tissue, list[tuple[float, float, float]], float]] = {
    # version 23: the ascending aorta, the pulmonary trunk and the SVC 30-40 mm in front of the trachea,
    # side by side (they overlapped the trachea and each other, which was drawn over them)
    # version 24: the ascending aorta 34 mm across (30), the trunk 29 (26), the SVC 21 (18), the arch 29
    # (26), the pulmonary arteries 22-23 (18-20): the real mediastinum is a block of large vessels
    "aorta_ascending": (Tissue.ARTERY, [(0.425, 0.0, -0.40), (0.47, 0.02, -0.40)], 17.0),
    # version 23: the arch's branches in front of and beside the trachea (the arch itself is an
    # IN_PLANE_VESSELS bar; a tube that moved from front to back over 15 mm of height before)
    "brachiocephalic_trunk": (Tissue.ARTERY, [(0.36, -0.15, -0.22), (0.415, -0.08, -0.28)], 6.5),
    "carotid_L": (Tissue.ARTERY, [(0.35, 0.10, -0.18), (0.415, 0.08, -0.26)], 4.5),
    "subclavian_L": (Tissue.ARTERY, [(0.36, 0.24, -0.02), (0.415, 0.20, -0.12)], 5.5),
    "brachiocephalic_vein_R": (Tissue.VEIN, [(0.35, -0.24, -0.24), (0.38, -0.22, -0.30)], 7.0),
    "aorta": (
        Tissue.ARTERY,
        [(0.425, 0.12, 0.58), (0.56, 0.08, 0.60), (0.64, 0.04, 0.45), (0.72, 0.03, 0.40)],
        12.0,
    ),
    "pulmonary_trunk": (Tissue.ARTERY, [(0.43, 0.24, -0.28), (0.46, 0.20, -0.38)], 14.5),
    "svc": (Tissue.VEIN, [(0.38, -0.22, -0.30), (0.46, -0.20, -0.32)], 10.5),
    "ivc": (Tissue.VEIN, [(0.55, -0.18, 0.30), (0.63, -0.16, 0.35), (0.74, -0.10, 0.38)], 11.0),
    "portal_vein": (Tissue.VEIN, [(0.585, -0.18, 0.10), (0.615, -0.10, 0.12)], 7.0),
    "iliac_R": (Tissue.ARTERY, [(0.72, -0.08, 0.38), (0.80, -0.40, 0.10)], 6.5),
    "iliac_L": (Tissue.ARTERY, [(0.72, 0.08, 0.38), (0.80, 0.40, 0.10)], 6.5),
    "trachea": (Tissue.AIRWAY, [(0.26, 0.0, -0.30), (0.38, 0.0, -0.05), (0.44, 0.0, 0.05)], 9.0),
    "bronchus_R": (Tissue.AIRWAY, [(0.44, -0.05, 0.05), (0.47, -0.22, 0.05)], 6.5),
    "bronchus_L": (Tissue.AIRWAY, [(0.44, 0.05, 0.05), (0.475, 0.22, 0.08)], 6.0),
    "esophagus": (Tissue.MUSCLE, [(0.26, 0.02, 0.05), (0.45, 0.06, 0.30), (0.55, 0.10, 0.35)], 7.0),
    "rectum": (Tissue.BOWEL_WALL, [(0.78, 0.0, 0.50), (0.88, 0.0, 0.35), (0.93, 0.0, 0.30)], 16.0),
}

IN_PLANE_VESSELS: dict[str, tuple[Tissue, float, float, list[tuple[float, float]]]] = {
    "aortic_arch": (
        Tissue.ARTERY,
        0.418,
        14.5,
        [(0.0, -0.38), (0.16, -0.24), (0.23, 0.02), (0.17, 0.35), (0.12, 0.52)],
    ),
    "pulmonary_artery_R": (Tissue.ARTERY, 0.443, 11.0, [(0.16, -0.26), (-0.05, -0.15), (-0.36, -0.02)]),
    "pulmonary_artery_L": (Tissue.ARTERY, 0.436, 11.5, [(0.24, -0.28), (0.32, -0.10), (0.38, 0.08)]),
    "brachiocephalic_vein_L": (Tissue.VEIN, 0.395, 6.0, [(0.32, -0.30), (0.0, -0.40), (-0.22, -0.30)]),
}
"""Vessels that run across the body, not along it (version 23): name -> (tissue, normalized height of the
centre line, radius mm, centre line (x, y) in cavity units). A slice cuts one as a band along the line,
as wide as the tube's chord at the slice's distance from the centre line. The aortic arch from the
ascending to the descending aorta; the pulmonary arteries from the trunk to the hila, the right one
behind the ascending aorta; the left brachiocephalic vein across in front of the arch's branches."""


BESIDE_SPINE = {"aorta": 1.0, "ivc": 3.0, "esophagus": 2.0}
"""Tubes that lie against the vertebral body, never over it: name -> gap to its surface, mm."""
SPINE_KEYS = [
    (0.26, 0.72, 9.0),
    (0.34, 0.62, 12.0),
    (0.50, 0.56, 15.0),
    (0.62, 0.50, 19.0),
    (0.73, 0.52, 22.0),
]
"""(zn, vertebral body centre y in cavity units, radius mm); the sacrum follows below."""
VERTEBRAL_DEPTH = [(0.50, 0.85), (0.62, 0.70)]
"""(zn, the vertebral body's half depth as a share of its half width): lumbar bodies are wider than deep.
Version 17 drew 0.85 at every height; along the midline the middle slices of the 24 shared real series
at zn 0.55-0.75 show bodies 29 mm deep (median), version 17's 36 mm, version 18's 28 mm
(``tests/test_synth_realism.py``); their width, above 100 HU, about 1.4 times the depth (a throwaway
script; the width depends on the threshold, the depth does not)."""
RIB_LEVELS = 12
"""Ribs per side."""


@dataclass(frozen=True)
class Loop:
    """A bowel loop: a tube drifting through z. Centre in cavity units, mm along z."""

    cx: float
    cy: float
    z_mid: float
    half_length: float
    radius: float
    drift_x: float
    drift_y: float
    gas: float  # share of the lumen's diameter filled with gas, above a level (0: none)
    colon: bool
    heading: float = 0.0  # in-plane direction of the loop's run, radians
    run_mm: float = 0.0  # in-plane length of the loop where it is cut through its middle, mm
    # (M, 4) gas bubbles in the stool of a colon: u, v in units of the loop's radius, z offset mm, radius mm
    bubbles: Array = field(default_factory=lambda: np.zeros((0, 4)), repr=False)
    opacified: bool = True  # its fluid is bright in a study with oral contrast (small bowel)
    collapsed: bool = False  # an empty small-bowel loop: walls touching, no lumen to speak of
    # (K, 2) outline harmonics of a colon's lumen: the haustra make its cross-section lobulated
    haustra: Array = field(default_factory=lambda: np.zeros((0, 2)), repr=False)


@dataclass(frozen=True)
class Wall:
    """The muscles of the body wall at one height.

    Attributes
    ----------
    outer
        (N, 2) outline of the muscle layer, mm: inside it and outside the cavity is muscle.
    planes
        Polylines (M_i, 2) mm of the fat planes between muscle layers (pectoral and intercostal muscles,
        the three flank muscles, the chest wall and the shoulder-girdle muscles on it).
    blades
        Polylines (K_i, 2) mm of the scapular blades, lateral end last (none outside zn 0.34-0.50).
    inner
        (N, 2) where the wall begins, mm (:func:`chest_wall_start` along rays from the cavity's centre
        through its outline's vertices): the ribs lie just outside it.
    """

    outer: Array
    planes: list[Array]
    blades: list[Array] = field(default_factory=list)
    inner: Array = field(default_factory=lambda: np.zeros((0, 2)))


def smooth_step(value: float, low: float, high: float) -> float:
    """0 below ``low``, 1 above ``high``, a smooth cubic step between (neighbouring slices agree)."""
    t = min(max((value - low) / (high - low), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def smooth_window(zn: float, rise: tuple[float, float], fall: tuple[float, float]) -> float:
    """1 between ``rise[1]`` and ``fall[0]``, 0 outside ``rise[0]``-``fall[1]``, smooth steps between."""
    return smooth_step(zn, *rise) * (1.0 - smooth_step(zn, *fall))


SCAPULA_PHI = 2.0
"""Angle of the shoulder-girdle muscles' middle round the chest from the front midline (radians; pi is
the back; version 21: 2.35, round a scapula that lay along the back)."""
SCAPULA_MEDIAL_PHI = 2.2
"""Angle of the scapula's medial border round the chest from the front midline (radians)."""
SCAPULA_LATERAL_PHI = 1.65
"""Angle of the scapula's lateral end (toward the glenoid) at its widest (radians)."""


def shoulder_girdle(zn: float, phi: Array) -> tuple[Array, Array]:
    """How much of the subcutaneous fat the shoulder-girdle muscles take over the upper chest, at angles
    ``phi`` (N,) round the body from the front midline (radians, either side): (N,) shares in [0, 1] for
    the muscles round the scapula (subscapularis in front of it, infraspinatus and teres behind,
    latissimus; zn 0.34-0.51, widest at 0.37-0.46) and for the pectoral muscles (zn 0.34-0.50)."""
    scapular = (
        0.85 * smooth_window(zn, (0.335, 0.365), (0.465, 0.51)) * np.exp(-(((phi - SCAPULA_PHI) / 0.5) ** 2))
    )
    pectoral = 0.6 * smooth_window(zn, (0.34, 0.365), (0.44, 0.50)) * np.exp(-(((phi - 0.75) / 0.4) ** 2))
    return np.asarray(scapular), np.asarray(pectoral)


def _scapular_blade(
    centre: Array,
    start: Array,
    direction: Array,
    bare: Array,
    thickness: Array,
    phi: Array,
    half: npt.NDArray[np.intp],
    zn: float,
) -> Array:
    """(5, 2) the scapula on one side at normalized height ``zn``, medial border first, mm: a flat blade
    across the chest wall's posterolateral corner, from behind (:data:`SCAPULA_MEDIAL_PHI`) to the
    armpit (:data:`SCAPULA_LATERAL_PHI` at its widest, moving toward the medial border as the blade
    narrows to its lower tip), in the shoulder-girdle muscles outside the chest wall's own band.

    The wall's vertices ``half`` (one side's, by ascending ``phi``) lie at ``centre + start * direction``;
    ``bare`` and ``thickness`` are the chest wall's own band and the whole muscle layer there, mm.
    Version 21 bent the blade along the wall round ``SCAPULA_PHI``, where the wide chest's back is
    nearly flat: it lay along the back (elongated bone behind the lungs at 17 degrees from the horizontal
    and 84 mm long, where the body-part regressor's real upper-chest slices show 42 degrees and 55 mm).
    """
    lateral_phi = float(np.interp(zn, (0.40, 0.49), (SCAPULA_LATERAL_PHI, SCAPULA_MEDIAL_PHI - 0.25)))
    ends = np.array(
        [half[np.argmin(np.abs(phi[half] - angle))] for angle in (SCAPULA_MEDIAL_PHI, lateral_phi)]
    )
    depth = start[ends] + bare[ends] + np.array([0.45, 0.5]) * (thickness[ends] - bare[ends])
    medial, lateral = centre + depth[:, None] * direction[ends]
    blade = medial + np.linspace(0.0, 1.0, 5)[:, None] * (lateral - medial)
    # where the chest wall bulges toward the chord, the blade stays clear of its band (the subscapularis
    # lies between the two)
    offset = blade - centre
    reach = np.hypot(offset[:, 0], offset[:, 1])
    angles = np.arctan2(direction[half, 1], direction[half, 0])
    order = np.argsort(angles)
    clear = np.interp(
        np.arctan2(offset[:, 1], offset[:, 0]), angles[order], (start + bare + 3.0)[half][order]
    )
    return np.asarray(centre + offset * (np.maximum(reach, clear) / reach)[:, None], dtype=np.float64)


@dataclass(frozen=True)
class Body:
    """One patient's anatomy, fixed across all their studies.

    Attributes
    ----------
    height_mm
        Millimetres per unit of normalized height (zn): z = zn * height_mm.
    width_scale, depth_scale
        Factors on the standard body outline (:data:`BODY_KEYS`).
    fat_mm
        Subcutaneous fat thickness at the flanks of the abdomen, mm; the outline is wider or narrower
        than the standard one by the difference from :data:`FAT_STANDARD_MM`.
    fat_hu
        Offset of this patient's fat from the table value, HU.
    outline_harmonics
        Irregularity of the skin outline.
    organ_jitter
        Organ name -> (dx, dy, size factor, harmonics): this patient's deviation from the standard.
    loops
        Bowel loops: 110 of small bowel, the ascending, descending and transverse colon, the sigmoid,
        35 small-bowel loops of the upper abdomen, the duodenum's descending and horizontal parts.
    vessels
        (M, 9) lung vessels as straight 3D segments of a tree per lung (:func:`lung_vessel_tree`): group
        (the side: -1 right, +1 left), start x, y, z and end x, y, z (mm, body frame), radius (mm), lowest
        height reached (mm); sorted by group, then by the lowest height.
    stomach_gas
        Share of the stomach's lumen, front to back, that holds gas over the air-fluid level (version 13).
    rib_phase
        Per-patient offset of the rib levels, zn.
    liver_vessels
        (M, 9) the portal and hepatic veins' trees (:func:`liver_vessel_tree`), in the columns of
        ``vessels`` (group 0).
    mesenteric
        (M, 5) small vessels of the mesentery, running along z through the abdominal and pelvic fat:
        centre x, y (cavity units), z mid (mm), half length (mm), radius (mm).
    breast_mm
        How far the breasts stand out from the chest wall, mm (0: none; the release gives women 12-40).
    ribs
        (2 * RIB_LEVELS, 5) one row per rib (right side's 12, then the left's): offset of its start height
        (mm), a draw of 3-10 that sets its gap from the cavity (0-2 mm more than the phantom's
        ``RIB_DEPTH_MM``), its thickness (mm; drawn ``RIB_WIDTH`` times as wide in the slice plane), half its
        height along z (mm), and a factor on how far it descends from back to front.
    back_power
        Exponent of the skin outline's back half (:attr:`Section.back_power`): above 2 the back lies flat
        on the table (random bodies: 2.3-2.8).
    """

    height_mm: float
    width_scale: float
    depth_scale: float
    fat_mm: float
    fat_hu: float
    outline_harmonics: Array = field(repr=False)
    organ_jitter: dict[str, tuple[float, float, float, Array]] = field(repr=False)
    loops: list[Loop] = field(repr=False)
    vessels: Array = field(repr=False)
    rib_phase: float = 0.0
    liver_vessels: Array = field(default_factory=lambda: np.zeros((0, 9)), repr=False)
    mesenteric: Array = field(default_factory=lambda: np.zeros((0, 5)), repr=False)
    breast_mm: float = 0.0
    ribs: Array = field(default_factory=lambda: _standard_ribs(), repr=False)
    back_power: float = 2.0
    stomach_gas: float = 0.2
    # the cavity of the last few heights: a slice's drawing asks for it about 18 times per height (every
    # organ, vessel and the spine are placed in its units), 5% of the making time; keyed by the exact z,
    # so a hit returns what the computation would
    _cavities: dict[float, Section] = field(default_factory=dict, init=False, repr=False, compare=False)

    def zn(self, z: float) -> float:
        """Normalized height of ``z`` mm."""
        return z / self.height_mm

    def _body_keys(self, z: float) -> tuple[float, ...]:
        """:data:`BODY_KEYS` at height ``z`` (held at the ends beyond them)."""
        keys = interpolate(BODY_KEYS, min(max(self.zn(z), BODY_KEYS[0][0]), BODY_KEYS[-1][0]))
        assert keys is not None
        return keys

    def outline(self, z: float) -> Section:
        """The skin outline at height ``z`` mm."""
        return self._outline(z, self._body_keys(z))

    def _outline(self, z: float, keys: tuple[float, ...]) -> Section:
        half_width, half_depth, _ = keys
        wobble = self.outline_harmonics * (1.0 + 0.3 * math.sin(self.zn(z) * 9.0))
        below_chest = self._below_chest(z)
        extra_fat = below_chest * (self.fat_mm - FAT_STANDARD_MM) * self._fat_share(z)
        a = half_width * self.width_scale + extra_fat
        b = half_depth * self.depth_scale + 0.8 * extra_fat
        # the front's subcutaneous fat is thicker than the flanks' and the back's (shared real slices at
        # zn 0.55-0.75: front/flank 1.21, back/flank 0.91, medians per slice; version 17 0.65 and 0.92);
        # the wall and the cavity are laid out inside the outline without it (:meth:`cavity`, :meth:`wall`)
        front = b + below_chest * FRONT_FAT_SHARE * self.fat_thickness(z)
        return Section(0.0, 0.0, a, b, 0.0, wobble, self.back_power, front)

    def location_frame(self, z: float) -> Section:
        """The outline the normalized location is measured in at height ``z``: the standard outline at this
        patient's scale, holding :data:`FAT_STANDARD_MM` of fat and no extra fat in front, so that a
        structure's normalized place does not move with the patient's fat."""
        half_width, half_depth, _ = self._body_keys(z)
        return Section(0.0, 0.0, half_width * self.width_scale, half_depth * self.depth_scale)

    def _fat_share(self, z: float) -> float:
        """The share of the abdomen's subcutaneous fat that lies at height ``z`` (less over the chest)."""
        return 0.45 + 0.55 * min(max((self.zn(z) - 0.32) / 0.25, 0.0), 1.0)

    def _below_chest(self, z: float) -> float:
        """0 over the chest, 1 from below the scapulae's tips (zn 0.48-0.56 between).

        Over the chest the shoulder-girdle and pectoral muscles take the subcutaneous fat's room
        (:meth:`wall`); there the fat keeps version 17's thickness (:meth:`fat_thickness`) inside the
        standard outline: thinner fat would leave the scapulae no muscle to lie in unless those muscles
        widened the outline (not done)."""
        return smooth_step(self.zn(z), 0.48, 0.56)

    def fat_thickness(self, z: float) -> float:
        """Subcutaneous fat thickness at height ``z``, mm (thinner over the chest and neck).

        Below the chest :attr:`fat_mm` (2-22 mm at the abdomen's flanks); over the chest the same draw
        mapped onto version 17's range (6-40 mm at the abdomen's share), see :meth:`_below_chest`."""
        below_chest = self._below_chest(z)
        chest_mm = 6.0 + 1.7 * (self.fat_mm - 2.0)
        return (below_chest * self.fat_mm + (1.0 - below_chest) * chest_mm) * self._fat_share(z)

    def cavity(self, z: float) -> Section:
        """The body cavity (inside muscles and ribs) at height ``z``: organs are placed in its units."""
        cached = self._cavities.get(z)
        if cached is not None:
            return cached
        keys = self._body_keys(z)
        outer = self._outline(z, keys)
        inner_a, inner_b = outer.a - self.fat_thickness(z) - 2.0, outer.b - 0.8 * self.fat_thickness(z) - 2.0
        harmonics = outer.harmonics * 0.4
        cavity = Section(0.0, -0.04 * outer.b, inner_a * keys[2], inner_b * keys[2], 0.0, harmonics)
        if len(self._cavities) >= 16:  # a slice needs one or two heights (a 5 mm slice averages two)
            self._cavities.clear()
        self._cavities[z] = cavity
        return cavity

    def wall(self, z: float, lungs: dict[float, Array] | None = None) -> Wall:
        """The body wall's muscles at height ``z``, from where the wall begins (:func:`chest_wall_start`):
        over the chest, all the room between the cavity and the subcutaneous fat (pectoral, intercostal and
        back muscles), at least 12 mm, and over the upper chest the shoulder-girdle and pectoral muscles
        in much of the fat (:func:`shoulder_girdle`, with the scapulae); over the abdomen and pelvis,
        layers of typical thickness (rectus muscles either side of the front midline, three thin flank
        muscles, the back muscles), which leave more of the room to fat. ``lungs``: :func:`drawn_lungs` at
        ``z`` when the caller has them."""
        keys = self._body_keys(z)
        outer = self._outline(z, keys)
        fat = self.fat_thickness(z)
        cavity = self.cavity(z)
        inner = cavity.polygon()
        centre = np.array([cavity.cx, cavity.cy])
        direction = inner - centre
        direction /= np.maximum(np.hypot(direction[:, 0], direction[:, 1]), 1e-9)[:, None]
        # the wall starts where the lungs end when their posterior recesses reach past the cavity (version
        # 12: the wall's muscles lay under the lungs there, which then touched the subcutaneous fat)
        start = chest_wall_start(cavity, direction, drawn_lungs(self, z) if lungs is None else lungs)
        inner = centre + start[:, None] * direction

        def room(limit: Section) -> Array:
            """How far each cavity vertex can move outward and stay inside ``limit``, mm."""
            return np.asarray(np.maximum(ray_exit(centre, direction, limit.polygon()) - start, 0.0))

        wobble = outer.harmonics * 0.7
        flat = outer.back_power
        chest = room(Section(0.0, 0.0, outer.a - 2.0 - fat, outer.b - 2.0 - 0.8 * fat, 0.0, wobble, flat))
        phi = np.abs(np.arctan2(direction[:, 0], -direction[:, 1]))  # 0 at the front midline, pi at the back
        # the rectus in front, then the wall thins to its aponeurosis (the linea semilunaris, version 9:
        # an even band all round looked drawn), the three flank muscles, the back muscles
        typical = np.interp(
            phi,
            [0.0, 0.30, 0.50, 0.62, 0.85, 1.9, 2.4, math.pi],
            [11.0, 11.0, 4.0, 4.0, 14.0, 14.0, 15.0, 15.0],
        )
        # version 15: the flank muscles swell and thin along the flank, differently per patient and side
        # (an even band looked like a tree ring); the outline's harmonics are constant along z and at most
        # 0.025
        jitter = harmonic_jitter(self.outline_harmonics, 40.0)
        flank = np.clip((phi - 0.62) / 0.25, 0.0, 1.0) * np.clip((2.4 - phi) / 0.4, 0.0, 1.0)
        phase = np.where(direction[:, 0] > 0.0, 3.0 * jitter[0], 3.0 * jitter[1] + 1.0)
        typical = typical * (1.0 + 0.22 * flank * np.sin(2.6 * phi + phase))
        skin = room(
            Section(0.0, 0.0, outer.a - 2.0 - 0.35 * fat, outer.b - 2.0 - 0.3 * fat, 0.0, wobble, flat)
        )
        zn = self.zn(z)
        # the chest wall holds the ribs (RIB_DEPTH_MM outside the cavity) and the intercostal and
        # serratus muscles over them, at least 12 mm wherever the skin leaves room (version 12: with thick
        # subcutaneous fat the band was thinner than the ribs, which then lay in the fat)
        under_skin = room(Section(0.0, 0.0, outer.a - 6.0, outer.b - 6.0, 0.0, wobble, flat))
        chest = np.maximum(chest, np.minimum(12.0, under_skin))
        # over the upper chest the shoulder-girdle and pectoral muscles replace much of the fat
        scapular, pectoral = shoulder_girdle(zn, phi)
        extra = np.maximum(under_skin - chest, 0.0)
        bare = chest
        chest = chest + np.minimum(scapular + pectoral, 0.9) * extra
        abdomen = min(max((zn - 0.50) / 0.08, 0.0), 1.0)
        thickness = (1.0 - abdomen) * chest + abdomen * np.minimum(typical, skin)
        # the lowest ribs and the costal margin stay covered down to zn 0.58, then the floor fades
        thickness = np.maximum(thickness, (1.0 - smooth_step(zn, 0.58, 0.64)) * np.minimum(12.0, under_skin))
        # below the iliac crests the flank and back muscles end (version 9): at the hips the lower rectus
        # is left in front, and the gluteal muscles fill the sides and back out to the subcutaneous fat
        # (version 14: the wall ended there, and the pelvis was mostly fat round small hip muscles)
        hips = min(max((zn - 0.79) / 0.05, 0.0), 1.0)
        buttock = room(
            Section(0.0, 0.0, outer.a - 2.0 - 0.7 * fat, outer.b - 2.0 - 0.6 * fat, 0.0, wobble, flat)
        )
        gluteal = hips * np.clip((phi - 0.45) / 0.3, 0.0, 1.0)
        thickness = (1.0 - gluteal) * thickness + gluteal * buttock
        planes = []
        blades = []
        order = np.argsort(phi)
        for side in (-1.0, 1.0):
            half = order[direction[order, 0] * side > 0]
            girdle = half[scapular[half] > 0.15]
            if len(girdle) >= 2:  # the fat plane between the chest wall and the scapular muscles
                planes.append(inner[girdle] + bare[girdle, None] * direction[girdle])
            if scapular[half].max() > 0.5:
                blades.append(_scapular_blade(centre, start, direction, bare, thickness, phi, half, zn))
            if abdomen > 0.0 and hips < 0.5:  # between the three flank muscles
                planes.extend(_flank_planes(inner, direction, thickness, phi, half, side, jitter))
            elif hips >= 0.5:  # between the gluteus maximus behind and the smaller gluteal muscles in it
                buttock_side = half[(phi[half] > 1.3) & (phi[half] < 2.7)]
                planes.append(
                    inner[buttock_side] + (0.45 * thickness[buttock_side])[:, None] * direction[buttock_side]
                )
            if abdomen < 1.0:
                front = half[phi[half] < 1.3]
                planes.append(inner[front] + (0.55 * thickness[front])[:, None] * direction[front])
        return Wall(inner + thickness[:, None] * direction, [p for p in planes if len(p) >= 2], blades, inner)

    def organ(self, name: str, z: float) -> Section | None:
        """Cross-section of organ ``name`` (a key of :data:`ORGANS`) at height ``z``; None outside it."""
        _, keys, angle, _ = ORGANS[name]
        dx, dy, size, harmonics = self.organ_jitter[name]
        # size scales about the organ's middle along z too: a larger liver also reaches further down
        mid = 0.5 * (keys[0][0] + keys[-1][0])
        values = interpolate(keys, mid + (self.zn(z) - mid) / size)
        if values is None:
            return None
        cx, cy, a, b = values
        cavity = self.cavity(z)
        wobble = harmonics * (1.0 + 0.4 * math.sin(self.zn(z) * 40.0))
        return Section(
            (cx + dx) * cavity.a,
            cavity.cy + (cy + dy) * cavity.b,
            max(a * size * cavity.a, 1.0),
            max(b * size * cavity.b, 1.0),
            math.radians(angle),
            wobble,
        )

    def vessel(self, name: str, z: float) -> tuple[float, float, float] | None:
        """Centre (x, y) mm and radius mm of tube ``name`` (:data:`VESSELS`) at height ``z``."""
        _, keys, radius = VESSELS[name]
        values = interpolate(keys, self.zn(z))
        if values is None:
            return None
        cavity = self.cavity(z)
        x, y, r = values[0] * cavity.a, cavity.cy + values[1] * cavity.b, radius * math.sqrt(self.width_scale)
        bone = self.vertebral_body(z) if name in BESIDE_SPINE else None
        if bone is not None:
            # version 11: the keyframes put the descending aorta over the vertebral body, which is drawn
            # later and hid it from the mid-chest down; push the tube off the bone along the line between
            # their centres (the thoracic aorta ends up left of the spine, the abdominal one in front)
            dx, dy = x - bone.cx, y - bone.cy
            distance = math.hypot(dx, dy)
            if distance < 1e-6:
                dx, dy, distance = 0.0, -1.0, 1.0
            # the body's radius toward the tube (an ellipse, version 18; a circle before)
            surface = 1.0 / math.hypot(dx / distance / bone.a, dy / distance / bone.b)
            needed = surface + r + BESIDE_SPINE[name]
            if distance < needed:
                x, y = bone.cx + dx * needed / distance, bone.cy + dy * needed / distance
        return x, y, r

    def in_plane_vessel(self, name: str, z: float) -> tuple[Array, float] | None:
        """The centre line ((K, 2) x, y mm) and the half-width (mm) of the band that the slice at height
        ``z`` cuts from the cross-running vessel ``name`` (:data:`IN_PLANE_VESSELS`); None where the slice
        misses it."""
        _, zn, radius, line = IN_PLANE_VESSELS[name]
        radius *= math.sqrt(self.width_scale)
        off = z - zn * self.height_mm
        if abs(off) >= radius:
            return None
        cavity = self.cavity(z)
        points = np.array(line) * np.array([cavity.a, cavity.b]) + np.array([0.0, cavity.cy])
        return points, math.sqrt(radius * radius - off * off)

    def spine(self, z: float) -> tuple[float, float, float] | None:
        """Vertebral body centre (x, y) mm and radius mm at height ``z``; None below the lumbar spine."""
        values = interpolate(SPINE_KEYS, self.zn(z))
        if values is None:
            return None
        cavity = self.cavity(z)
        return 0.0, cavity.cy + values[0] * cavity.b, values[1] * math.sqrt(self.width_scale)

    def vertebral_body(self, z: float) -> Section | None:
        """The vertebral body's section at height ``z`` (half width :meth:`spine`'s radius, half depth
        :data:`VERTEBRAL_DEPTH` of it); None below the lumbar spine."""
        spine = self.spine(z)
        if spine is None:
            return None
        x, y, radius = spine
        zn = min(max(self.zn(z), VERTEBRAL_DEPTH[0][0]), VERTEBRAL_DEPTH[-1][0])
        depth = interpolate(VERTEBRAL_DEPTH, zn)
        assert depth is not None
        return Section(x, y, radius, depth[0] * radius)


def ray_exit(origin: Array, directions: Array, polygon: Array) -> Array:
    """Distance (mm) from ``origin`` (2,) along each of the (N, 2) unit ``directions`` to where the ray
    leaves the closed ``polygon`` (M, 2); 0 where it does not cross it."""
    start, edge = polygon, np.roll(polygon, -1, axis=0) - polygon  # (M, 2)
    offset = start - origin  # (M, 2)
    # origin + t d = start + s edge, solved for every ray and edge at once (2D cross products)
    denominator = directions[:, None, 0] * edge[None, :, 1] - directions[:, None, 1] * edge[None, :, 0]
    safe = np.where(np.abs(denominator) < 1e-12, np.inf, denominator)
    t = (offset[None, :, 0] * edge[None, :, 1] - offset[None, :, 1] * edge[None, :, 0]) / safe
    s = (offset[None, :, 0] * directions[:, None, 1] - offset[None, :, 1] * directions[:, None, 0]) / safe
    hit = (s >= -1e-9) & (s <= 1.0 + 1e-9) & (t > 0.0)  # a ray through a vertex hits both its edges
    return np.asarray(np.where(hit, t, 0.0).max(axis=1), dtype=np.float64)


def polygon_contains(polygon: Array, x: Array, y: Array) -> npt.NDArray[np.bool_]:
    """(N,) whether the points (x, y) mm lie inside the closed ``polygon`` (M, 2) mm (even-odd rule, as
    OpenCV fills it)."""
    x, y = np.asarray(x, dtype=np.float64)[:, None], np.asarray(y, dtype=np.float64)[:, None]
    x0, y0 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x1, y1 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return np.asarray((straddles & (x < crossing)).sum(axis=1) % 2 == 1)


LUNG_REACH_MM = (6.0, 30.0)
"""A lung's outline moves out to the chest wall (the cavity's edge) where it lies within the first
distance of it, and not at all beyond the second, blending in between (:func:`lung_outline`)."""

UPPER_LUNG_REACH_MM = 60.0
"""How much further than :data:`LUNG_REACH_MM` a lung's outline reaches for the chest wall above zn 0.44
(fading out by 0.48). Version 22: the upper lungs' cross-sections are small ellipses in a wide cavity, and
with 30 mm they lay in a ring of fat inside the muscles, where real upper lungs fill the rib cage."""

WALL_ORGANS: dict[str, tuple[float, float, float]] = {"liver": (10.0, 40.0, -1.0), "spleen": (8.0, 30.0, 1.0)}
"""Organs that reach the cavity's edge where no lung lies between (:func:`organ_outline_to_wall`): the
distances of :data:`LUNG_REACH_MM`, mm, and the side of the body (-1 right, +1 left) whose wall the organ
meets (the liver's left lobe does not reach for the wall: it spread across the front of the abdomen).
Version 14: the liver and spleen sat inside the cavity with a band of fat all round them (15-30 mm in
front of the liver), where real key slices show them against the abdominal wall; that band was most of
the deep fat that was twice the real share. At the diaphragm's dome the lungs still lie between the
organ and the ribs: the phantom draws this outline under the lungs and the section over them."""


def outline_to_wall(
    section: Section, cavity: Section, reach_mm: tuple[float, float], side: float = 0.0
) -> npt.NDArray[np.float64]:
    """(N, 2) outline (mm) of ``section`` with the side facing the cavity's edge moved out onto it.

    Each outline vertex within ``reach_mm[0]`` of the cavity's edge, along the ray from the cavity's
    centre, moves onto that edge; beyond ``reach_mm[1]`` it stays; in between it moves part of the way.
    Only vertices on the side facing away from the cavity's centre move: a medial vertex's ray runs on
    through the organ itself, and moving it would fold the outline over. With ``side`` -1 (+1) only
    vertices right (left) of the body's midline move, fading in over 20 mm. The section lies inside the
    outline.
    """
    points = section.polygon()
    centre = np.array([cavity.cx, cavity.cy])
    offset = points - centre
    distance = np.maximum(np.hypot(offset[:, 0], offset[:, 1]), 1e-9)
    directions = offset / distance[:, None]
    edge = ray_exit(centre, directions, cavity.polygon())
    near, far = reach_mm
    weight = np.clip((far - (edge - distance)) / (far - near), 0.0, 1.0)
    own = points - np.array([section.cx, section.cy])
    facing = np.sum(own * directions, axis=1) / np.maximum(np.hypot(own[:, 0], own[:, 1]), 1e-9)
    weight *= np.clip(facing / 0.3, 0.0, 1.0)
    if side:
        weight *= np.clip(side * points[:, 0] / 20.0, 0.0, 1.0)
    reach = np.maximum(distance, distance + weight * (edge - distance))
    return np.asarray(centre + directions * reach[:, None], dtype=np.float64)


def lung_outline(lung: Section, cavity: Section, zn: float = 0.5) -> npt.NDArray[np.float64]:
    """(N, 2) outline (mm) of a lung that fills the chest out to the ribs, drawn from its cross-section.

    The pleura lines the inside of the ribs, so a real lung meets the chest wall wherever it is near it;
    at the bases it wraps round the liver and spleen as a crescent in the posterior recesses. The
    cross-section (where lung lesions are placed) is an ellipse that leaves a band of fat between it and
    the ribs, so its outline is moved onto the cavity's edge within :data:`LUNG_REACH_MM`
    (:func:`outline_to_wall`; version 10).
    """
    near, far = LUNG_REACH_MM
    far += UPPER_LUNG_REACH_MM * (1.0 - smooth_step(zn, 0.44, 0.48))
    return outline_to_wall(lung, cavity, (near, far))


def organ_outline_to_wall(body: Body, name: str, z: float) -> npt.NDArray[np.float64] | None:
    """(N, 2) outline (mm) of organ ``name`` (a key of :data:`WALL_ORGANS`) reaching the cavity's edge
    (:func:`outline_to_wall`); None outside the organ. The organ shows inside it where no drawn lung
    lies, and in its section everywhere (:func:`in_organs`)."""
    section = body.organ(name, z)
    return None if section is None else _reach_wall(body, name, section, z)


def _reach_wall(body: Body, name: str, section: Section, z: float) -> npt.NDArray[np.float64]:
    near, far, side = WALL_ORGANS[name]
    return outline_to_wall(section, body.cavity(z), (near, far), side)


def drawn_lungs(body: Body, z: float) -> dict[float, Array]:
    """The lungs as drawn at height ``z`` (:func:`lung_outline`, each kept on its own side of the midline
    but for :data:`MIDLINE_SEAM_MM`): side (-1 right, +1 left) -> (N, 2) outline, mm; a side without lung
    at that height is left out. Where :func:`mediastinum` gives a section, it is drawn over them."""
    cavity = body.cavity(z)
    outlines = {}
    for side, name in ((-1.0, "lung_R"), (1.0, "lung_L")):
        section = body.organ(name, z)
        if section is not None:
            outline = clip_to_side(lung_outline(section, cavity, body.zn(z)), side, 0.5 * MIDLINE_SEAM_MM)
            if len(outline) >= 3:
                outlines[side] = outline
    return outlines


def clip_to_side(polygon: Array, side: float, offset: float) -> Array:
    """(M, 2) the part of the (N, 2) ``polygon`` (mm) where ``side * x >= offset`` (one Sutherland-Hodgman
    pass against the line ``x = side * offset``); empty when none of it lies there."""
    keep = side * polygon[:, 0] >= offset
    if keep.all():
        return polygon
    clipped = []
    for i in range(len(polygon)):
        p, q = polygon[i - 1], polygon[i]
        inside_p, inside_q = keep[i - 1], keep[i]
        if inside_p != inside_q:  # the edge crosses the line: add the crossing
            t = (side * offset - p[0]) / (q[0] - p[0])
            clipped.append(p + t * (q - p))
        if inside_q:
            clipped.append(q)
    return np.array(clipped).reshape(-1, 2)


MIDLINE_SEAM_MM = 2.5
"""Where the two lungs meet in front of and behind the mediastinum (the junction lines), a seam of fat
this wide keeps them apart (version 24; before, their sections never reached the midline)."""

MEDIASTINUM_KEYS = [
    (0.345, 0.0, 0.08, 0.14, 0.62, 0.30),
    (0.38, 0.0, 0.04, 0.20, 0.66, 0.42),
    (0.42, 0.04, 0.02, 0.27, 0.54, 0.52),
    (0.46, 0.06, 0.0, 0.30, 0.50, 0.60),
    (0.48, 0.08, 0.0, 0.30, 0.50, 0.60),
]
"""(zn, cx, cy, half-width, back half-depth, front half-depth) in the cavity's half-axes: the mediastinum
between the lungs from the apices to the heart (version 24), a lens narrow in front (the anterior
junction) and widest round the great vessels. The lungs' sections reach past it toward the midline and
it is drawn over them; before, the lungs' inner outlines were their sections' ellipses, which left an
hourglass of fat between them, wide in front and narrow round the vessels."""


def mediastinum(body: Body, z: float) -> Section | None:
    """The mediastinum's section at height ``z`` (:data:`MEDIASTINUM_KEYS`), drawn over the lungs as
    fat before the heart, vessels and airways in it; None outside zn 0.345-0.48."""
    values = interpolate(MEDIASTINUM_KEYS, body.zn(z))
    if values is None:
        return None
    cx, cy, a, back, front = values
    cavity = body.cavity(z)
    return Section(
        cx * cavity.a, cavity.cy + cy * cavity.b, a * cavity.a, back * cavity.b, front_b=front * cavity.b
    )


def chest_wall_start(cavity: Section, directions: Array, lungs: dict[float, Array]) -> Array:
    """(N,) how far from the cavity's centre, along each of the (N, 2) unit ``directions``, the body wall
    begins, mm: at the cavity's edge or, where a lung's drawn outline (``lungs``, :func:`drawn_lungs`)
    reaches beyond it (the posterior recesses at the bases), at the lung's edge."""
    centre = np.array([cavity.cx, cavity.cy])
    start = ray_exit(centre, directions, cavity.polygon())
    for outline in lungs.values():
        start = np.maximum(start, ray_exit(centre, directions, outline))
    return start


HILUM_AT = 1.1
"""Where the lung vessel trees start (:func:`lung_vessel_tree`), in the mediastinum's half-width from its
centre: just outside its edge, where the hilar vessels enter the lung (0.9 hid the trunks under it: the
share of the lung above -500 HU fell to 1.4% on 5 mm slices, real 2.5%)."""

LUNG_VESSEL_TARGETS = 600
"""Points of lung tissue each of a lung's two vessel trees supplies (:func:`lung_vessel_tree`): one
terminal branch each. With :data:`LUNG_VESSEL_LEAF_MM` and :data:`LUNG_VESSEL_TAPER` fitted (version 17)
to patient 1's real chest series at their own slice thickness and pixel spacing: the share of the lung
above -500 HU and the number of separate vessel cuts (:func:`deeplesion.synth.realism.lung_vessels`);
version 16's 1,200 points with 0.55 mm terminals drew two to two and a half times the real number of
cuts."""
LUNG_VESSEL_LEAF_MM = 0.35
"""Radius of a terminal branch, mm (:func:`vessel_radius`)."""
LUNG_VESSEL_TAPER = 1.0 / 3.0
"""Exponent of the radius on the number of terminals fed (:func:`vessel_radius`): Murray's law, so
that the branches halfway out are thick enough to be seen as lines out to the periphery. (Version 16's 0.1
kept them at the terminals' width, a web of faint lines crowded round the hila.)"""
LUNG_VESSEL_TRUNK_MM = (5.0, 1.5)
"""The extra radius of the branches near the hilum: the first (mm) times (n / N) to the second, for a
branch feeding n of the tree's N terminals: lobar and segmental vessels of 6-10 mm where the tree starts,
under 0.5 mm more a sixteenth of the way down."""
LUNG_VESSEL_SPREAD = 0.97
"""The terminals lie within this fraction of the lung section's half-axes (version 16's 0.85 left the
outer part of the lung, which the drawn lung widens further toward the wall, without vessels)."""
LUNG_VESSEL_REACH = 0.3
"""A tree node feeding n of a tree's N terminals lies 1 - (n / N) ** this of the way from the hilum to the
centroid of its terminals (:func:`_grow_tree`)."""


def vessel_radius(
    fed: npt.NDArray[np.integer] | Array, total: int, leaf_mm: float, trunk: tuple[float, float]
) -> Array:
    """(K,) radius, mm, of branches feeding (K,) ``fed`` terminals of a tree of ``total``: a taper by
    Murray's law over the whole tree (``leaf_mm`` times fed to :data:`LUNG_VESSEL_TAPER`) and thick
    trunks near the root (``trunk``: the first, mm, times the fed share to the second, as
    :data:`LUNG_VESSEL_TRUNK_MM`)."""
    extra, power = trunk
    count = np.asarray(fed, dtype=np.float64)
    return leaf_mm * count**LUNG_VESSEL_TAPER + extra * (count / total) ** power


def lung_vessel_tree(body: Body, rng: np.random.Generator) -> Array:
    """(M, 9) the pulmonary vessels as straight 3D pieces: side (-1 right, +1 left), x0, y0, z0, x1, y1, z1
    (mm, body frame), radius (mm), and the lowest height the piece reaches (mm; rows sorted by side, then
    by it).

    Each lung gets two trees, its arteries and its veins, grown from the hilum to
    :data:`LUNG_VESSEL_TARGETS` random points each inside the lung's cross-sections: a tree's points are
    split in two along their widest spread as seen from the hilum, into a side branch and a continuation
    (:func:`_grow_tree`), and so on down to single points; a node lies on the line from the hilum to the
    centroid of the points it feeds (:data:`LUNG_VESSEL_REACH`), so branches fan out from the hilum;
    branches taper (:func:`vessel_radius`) and wind a little (:data:`LUNG_VESSEL_WIND_MM`). Cut by
    an axial slice, a branch that runs within the slice shows as a line, a steep one as a dot, thinner
    toward the periphery, as a real lung's vessels do (version 11; before, 900 independent streaks of
    random direction drew bright blobs all over the lung; version 16 the fan and the trunks).
    """
    pieces = []
    for side, name in ((-1.0, "lung_R"), (1.0, "lung_L")):
        _, keys, _, _ = ORGANS[name]
        # version 24: only points the mediastinum, drawn over the lungs' inner parts, leaves as lung
        drawn = _points_in_organ(body, name, 3 * LUNG_VESSEL_TARGETS, LUNG_VESSEL_SPREAD, rng)
        targets = drawn[~_in_mediastinum(body, drawn)][: 2 * LUNG_VESSEL_TARGETS]
        # two trees: the pulmonary artery's branches and the veins', which leave the hilum a little lower
        # and further back and supply points of their own
        for tree, (height, back) in enumerate(((0.42, 0.0), (0.52, 0.25))):
            hilum_z = (keys[0][0] + height * (keys[-1][0] - keys[0][0])) * body.height_mm
            lung = body.organ(name, hilum_z)
            assert lung is not None
            # just outside the mediastinum's edge (version 24; before, 0.72 of the lung's half-width in
            # from its centre, which the mediastinum drawn over the lungs now covers)
            middle = mediastinum(body, hilum_z)
            assert middle is not None
            hilum = np.array([middle.cx + side * HILUM_AT * middle.a, lung.cy + back * lung.b, hilum_z])
            grown = _grow_tree(hilum, targets[tree::2], rng)
            pieces.append(np.column_stack([np.full(len(grown), side), grown]))
    return _vessel_table(_wind(np.concatenate(pieces), rng))


def _in_mediastinum(body: Body, points: Array) -> npt.NDArray[np.bool_]:
    """(N,) whether each of the (N, 3) ``points`` (mm, body frame) lies in the mediastinum's section
    (:func:`mediastinum`) at its height, taken to the nearest millimetre (one section per millimetre,
    not per point: a body's making time)."""
    inside = np.zeros(len(points), dtype=bool)
    levels = np.round(points[:, 2])
    for level in np.unique(levels):
        middle = mediastinum(body, float(level))
        if middle is not None:
            at = levels == level
            inside[at] = middle.contains(points[at, 0], points[at, 1])
    return inside


def _vessel_table(wound: Array) -> Array:
    """(M, 9) pieces: (M, 8) ``wound`` group, start, end and radius, with the lowest height each reaches;
    sorted by group and by it, so that a slice finds its pieces by bisection."""
    low = np.minimum(wound[:, 3], wound[:, 6]) - wound[:, 7]
    high = np.maximum(wound[:, 3], wound[:, 6]) + wound[:, 7]
    assert float(np.max(high - low)) < LUNG_VESSEL_Z_EXTENT_MM
    order = np.lexsort((low, wound[:, 0]))
    return np.column_stack([wound, low])[order]


def _points_in_organ(body: Body, name: str, count: int, spread: float, rng: np.random.Generator) -> Array:
    """(count, 3) random points (mm, body frame) inside organ ``name``'s cross-sections, within ``spread``
    of their half-axes: a level every 2 mm, then a point uniform over the level's ellipse (one organ() call
    per point was most of a body's making time), its height spread over the level."""
    _, keys, _, _ = ORGANS[name]
    top, bottom = keys[0][0] * body.height_mm, keys[-1][0] * body.height_mm
    levels = np.arange(top + 1.0, bottom, 2.0)
    sections = [body.organ(name, float(z)) for z in levels]
    table = np.array([(c.cx, c.cy, c.a, c.b) for c in sections if c is not None])
    heights = levels[[c is not None for c in sections]]
    level = rng.integers(0, len(table), count)
    radius = spread * np.sqrt(rng.random(count))
    angle = rng.uniform(0.0, 2.0 * math.pi, count)
    cx, cy, a, b = table[level].T
    return np.column_stack(
        [
            cx + radius * np.cos(angle) * a,
            cy + radius * np.sin(angle) * b,
            heights[level] + rng.uniform(-1.0, 1.0, count),
        ]
    )


LIVER_VESSEL_TARGETS = 200
"""Points of liver tissue each of the liver's two vessel trees supplies (:func:`liver_vessel_tree`): one
terminal branch each. With :data:`LIVER_VESSEL_LEAF_MM`, :data:`LIVER_VESSEL_TRUNK_MM`,
:data:`LIVER_VESSEL_SPREAD` and the vessels' HU fitted (version 19) to the shared real series at zn
0.50-0.62 (:func:`deeplesion.synth.realism.liver_vessels`): the number of vessel cuts per 100 cm^2 of
liver, their median area and how far their peaks rise above the parenchyma."""
LIVER_VESSEL_LEAF_MM = 0.6
"""Radius of a liver vessel's terminal branch, mm (:func:`vessel_radius`)."""
LIVER_VESSEL_TRUNK_MM = (2.0, 1.0)
"""As :data:`LUNG_VESSEL_TRUNK_MM` for the liver's trees (the portal vein's trunk is a tube of its own,
:data:`VESSELS`): 4 mm more drew blunt grey branches round the hilum."""
LIVER_VESSEL_SPREAD = 1.3
"""The liver's terminals lie within this fraction of its sections' half-axes: the liver is drawn out to
the wall beyond its section (:func:`organ_outline_to_wall`); within 0.9 the vessels crowded round the
hilum and left its lateral part empty. Terminals outside the drawn liver do not show."""


def liver_vessel_tree(body: Body, rng: np.random.Generator) -> Array:
    """(M, 9) the liver's vessels as straight 3D pieces, in the columns of :func:`lung_vessel_tree` (group
    0): the portal vein's tree from the porta hepatis and the hepatic veins' from the IVC under the
    diaphragm, each grown as the lungs' are (:func:`_grow_tree`) to :data:`LIVER_VESSEL_TARGETS` points
    of their own inside the liver. Version 19: before, 90 independent streaks pointing at the IVC drew
    fewer and blunter cuts than a real liver's branching vessels (shared real series at zn 0.50-0.62:
    9.8 cuts per 100 cm^2 of liver of 13 mm^2 median area; version 18 6.3 of 21 mm^2)."""
    targets = _points_in_organ(body, "liver", 2 * LIVER_VESSEL_TARGETS, LIVER_VESSEL_SPREAD, rng)
    pieces = []
    for tree, (vessel, zn) in enumerate((("ivc", 0.555), ("portal_vein", 0.60))):
        z = zn * body.height_mm
        tube = body.vessel(vessel, z)
        assert tube is not None
        root = np.array([tube[0], tube[1], z])
        grown = _grow_tree(root, targets[tree::2], rng, LIVER_VESSEL_LEAF_MM, LIVER_VESSEL_TRUNK_MM)
        pieces.append(np.column_stack([np.zeros(len(grown)), grown]))
    return _vessel_table(_wind(np.concatenate(pieces), rng))


def _grow_tree(
    root: Array,
    points: Array,
    rng: np.random.Generator,
    leaf_mm: float = LUNG_VESSEL_LEAF_MM,
    trunk: tuple[float, float] = LUNG_VESSEL_TRUNK_MM,
) -> Array:
    """(M, 7) branches x0, y0, z0, x1, y1, z1, radius (mm) of a tree from ``root`` (3,) to every one of
    ``points`` (N, 3) mm, as :func:`lung_vessel_tree` describes; grown one level at a time for all nodes
    at once (a node per call took half a second per body). ``leaf_mm`` and ``trunk``: the branches' radii
    (:func:`vessel_radius`; the lungs' by default)."""
    branches = []
    total = len(points)
    position = root[None, :]  # (G, 3) one node per group of points
    group = np.zeros(len(points), dtype=np.int64)
    while len(points):
        counts = np.bincount(group, minlength=len(position))
        single = counts[group] == 1  # a group of one point: the branch runs to it, and ends
        branches.append(
            np.column_stack([position[group[single]], points[single], np.full(single.sum(), leaf_mm)])
        )
        points, group = points[~single], group[~single]
        if not len(points):
            break
        alive = np.flatnonzero(counts >= 2)
        renumber = np.full(len(position), -1)
        renumber[alive] = np.arange(len(alive))
        group, position = renumber[group], position[alive]
        # split each group along the widest spread of its points, measured across (their directions from
        # the root, times the group's mean distance) and along (their distances): a side branch to 20-50%
        # of them, on a random side, and the rest, which carries on in about the same direction
        away = points - root
        distance = np.linalg.norm(away, axis=1)
        mean_distance = np.bincount(group, distance, len(position)) / np.bincount(group, None, len(position))
        spread = np.column_stack(
            [away / np.maximum(distance, 1e-9)[:, None] * mean_distance[group, None], distance]
        )
        low = np.full((len(position), 4), np.inf)
        high = np.full((len(position), 4), -np.inf)
        np.minimum.at(low, group, spread)
        np.maximum.at(high, group, spread)
        axis = np.argmax(high - low, axis=1)
        flip = rng.choice([-1.0, 1.0], len(position))
        key = spread[np.arange(len(points)), axis[group]] * flip[group]
        order = np.lexsort((key, group))
        points, group = points[order], group[order]
        counts = np.bincount(group, minlength=len(position))
        first = np.cumsum(counts) - counts
        side = np.maximum(np.rint(counts * rng.uniform(0.2, 0.5, len(position))), 1)
        second_half = np.arange(len(points)) - first[group] >= side[group]
        child = 2 * group + second_half
        sizes = np.bincount(child, minlength=2 * len(position))
        centroid = np.zeros((2 * len(position), 3))
        np.add.at(centroid, child, points)
        centroid /= sizes[:, None]
        start = np.repeat(position, 2, axis=0)
        # a node lies on the line from the root to its points' centroid, the further out the fewer points
        # it feeds: branches radiate from the hilum and fork at acute angles (version 16; before, each
        # went 50-75% of the way from its parent to the centroid, and the splits along alternating axes
        # drew a tangle of right-angled turns)
        reach = 1.0 - (sizes / total) ** LUNG_VESSEL_REACH * rng.uniform(0.85, 1.15, len(start))
        end = root + np.clip(reach, 0.0, 1.0)[:, None] * (centroid - root)
        branches.append(np.column_stack([start, end, vessel_radius(sizes, total, leaf_mm, trunk)]))
        position, group = end, child
    return np.concatenate(branches)


LUNG_VESSEL_Z_EXTENT_MM = 36.0
"""More than any vessel piece's height span, radius included: a piece is at most 10 mm long, its radius
at most 6.2 mm (:func:`vessel_radius` of a whole lung tree), and its ends move along z by normal draws of
1 mm standard deviation, so a span of 36 mm needs two draws 13.6 mm apart, 9.6 standard deviations of
their difference (checked when a body is made). A slice at z meets only pieces whose lowest point lies
within this below z."""
LUNG_VESSEL_WIND_MM = (10.0, 0.6, 1.0)
"""A vessel branch is cut into pieces of about the first length (mm) whose joints are moved at random, by
the second in-plane and the third along z (standard deviations, mm): a straight branch lying in the slice
drew one long line, a winding one leaves and re-enters the slab as real vessels do. Version 16 moves the
joints by 1 mm along z (2.5 before, when a vessel was drawn only where it lay within its radius of the
slice's sampled heights)."""


def _wind(segments: Array, rng: np.random.Generator) -> Array:
    """The (M, 8) ``segments`` cut into winding pieces (:data:`LUNG_VESSEL_WIND_MM`); their ends stay."""
    piece_mm, sideways, along = LUNG_VESSEL_WIND_MM
    start, end = segments[:, 1:4], segments[:, 4:7]
    counts = np.maximum(np.ceil(np.linalg.norm(end - start, axis=1) / piece_mm), 1).astype(int)
    owner = np.repeat(np.arange(len(segments)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    index = np.arange(len(owner)) - first  # the piece's number along its branch
    t0, t1 = index / counts[owner], (index + 1) / counts[owner]
    jitter = rng.normal(0.0, 1.0, (len(owner), 3)) * np.array([sideways, sideways, along])
    # a joint's offset is shared by the pieces either side of it; a branch's two ends do not move
    after = np.where((index + 1 < counts[owner])[:, None], jitter, 0.0)
    before = np.where((index > 0)[:, None], np.roll(jitter, 1, axis=0), 0.0)
    delta = end[owner] - start[owner]
    a = start[owner] + t0[:, None] * delta + before
    b = start[owner] + t1[:, None] * delta + after
    return np.column_stack([segments[owner, 0], a, b, segments[owner, 7]])


JITTER_OF = {"pelvic_organ": "bladder"}
"""Organs that take another's offset, size and irregularity instead of drawing their own: the organ behind
the bladder moves with it (version 25; drawing its own would have changed every later draw of a body)."""


def random_body(rng: np.random.Generator) -> Body:
    """A plausible adult (height scale 1000-1150 mm per zn unit, fat 2-22 mm, organs +-10%)."""
    width = float(rng.uniform(0.86, 1.14))
    jitter = {
        name: (
            float(rng.uniform(-0.04, 0.04)),
            float(rng.uniform(-0.04, 0.04)),
            float(rng.uniform(0.9, 1.1)),
            random_harmonics(rng, irregularity),
        )
        for name, (_, _, _, irregularity) in ORGANS.items()
        if name not in JITTER_OF
    }
    for name, owner in JITTER_OF.items():
        jitter[name] = jitter[owner]
    height = float(rng.uniform(1000.0, 1150.0))
    loops = []
    for _ in range(70):
        loops.append(
            Loop(
                cx=float(rng.uniform(-0.65, 0.65)),
                cy=float(rng.uniform(-0.70, 0.25)),
                z_mid=float(rng.uniform(0.625, 0.83)) * height,
                half_length=float(rng.uniform(15.0, 45.0)),
                radius=float(rng.uniform(6.0, 13.0)),
                drift_x=float(rng.uniform(-0.004, 0.004)),
                drift_y=float(rng.uniform(-0.004, 0.004)),
                gas=float(rng.random() < 0.3),
                colon=False,
                heading=float(rng.uniform(0.0, math.pi)),
                run_mm=float(rng.uniform(0.0, 45.0)),
            )
        )
    for cx, cy, top, bottom in (
        (-0.62, 0.05, 0.63, 0.76),
        (0.66, 0.10, 0.60, 0.76),
        (0.0, -0.62, 0.625, 0.66),
    ):
        loops.append(
            Loop(
                cx,
                cy,
                0.5 * (top + bottom) * height,
                0.5 * (bottom - top) * height,
                float(rng.uniform(16.0, 24.0)),
                0.0,
                0.0,
                float(rng.uniform(0.4, 1.0)),
                True,
            )
        )
    # version 10's 900 lung streaks, drawn and discarded so that every draw after them (and every lesion
    # statistic measured on them) stays the same; the lungs' vessels are a tree now (lung_vessel_tree)
    rng.choice([-1.0, 1.0], 900)
    for low, high in ((-0.85, 0.85), (-0.9, 0.9), (0.34, 0.60), (10.0, 45.0), (0.5, 0.9), (0.0, 1.0)):
        rng.uniform(low, high, 900)
    # details added after the lesion statistics were fitted draw from a child generator: spawning does
    # not advance `rng`, so everything drawn from it afterwards (and every measured number) stays the same
    detail = rng.spawn(1)[0]
    loops = [replace(loop, bubbles=_stool_bubbles(loop, detail)) if loop.colon else loop for loop in loops]
    sigmoid = Loop(
        float(detail.uniform(0.1, 0.35)),
        float(detail.uniform(-0.35, -0.05)),
        float(detail.uniform(0.77, 0.80)) * height,
        0.035 * height,
        float(detail.uniform(13.0, 18.0)),
        0.0,
        0.0,
        float(detail.uniform(0.2, 0.8)),
        True,
    )
    loops.append(replace(sigmoid, bubbles=_stool_bubbles(sigmoid, detail)))
    mesenteric = _uniform_columns(
        detail, 220, [(-0.6, 0.6), (-0.6, 0.3), (0.60, 0.84), (15.0, 50.0), (0.7, 2.0)]
    )
    mesenteric[:, 2] *= height
    # version 19: the liver's 90 streaks gave way to its vessel trees (liver_vessel_tree); their 540 draws
    # are still taken, so that every draw after them (ribs, loops) stays
    detail.uniform(size=540)
    # version 18: neighbouring ribs may differ by 5 mm in height and 10% in descent (10 mm and 30% let
    # two ribs cross at the flank once they descend there steeply: one cut beside the other, a figure 8)
    ribs = _uniform_columns(
        detail, 2 * RIB_LEVELS, [(-2.5, 2.5), (3.0, 10.0), (6.0, 9.5), (3.0, 5.0), (0.95, 1.05)]
    )
    loops = [_bowel_contents(loop, detail) for loop in loops]
    # 40 more small-bowel loops (version 8): with 70 the abdomen looked emptier than the real slices
    extra = _uniform_columns(
        detail,
        40,
        [
            (-0.65, 0.65),
            (-0.70, 0.25),
            (0.625, 0.83),
            (15.0, 45.0),
            (6.0, 13.0),
            (0.0, math.pi),
            (0.0, 45.0),
            (0.0, 1.0),
        ],
    )
    for cx, cy, zn_mid, half_length, radius, heading, run_mm, draw in extra:
        gas = float(draw < 0.3)  # as the first 70: 30% of the loops hold gas
        loop = Loop(cx, cy, zn_mid * height, half_length, radius, 0.0, 0.0, gas, False, heading, run_mm)
        loops.append(_bowel_contents(loop, detail))
    loops += _upper_abdominal_loops(height, rng.spawn(1)[0])
    loops = [loop if loop.colon else _spread_out(loop) for loop in loops]
    # version 9: the back is flattened on the table (a superellipse's half; real backs are as wide at 10%
    # of the depth above the table as an exponent of about 2.5 gives)
    back_power = float(detail.uniform(2.3, 2.8))
    stomach_gas = float(detail.uniform(0.05, 0.4))  # drawn last: every earlier draw stays as it was
    loops += _duodenum(height, detail)
    body = Body(
        height_mm=height,
        width_scale=width,
        depth_scale=width * float(rng.uniform(0.92, 1.1)),
        fat_mm=float(rng.uniform(2.0, 22.0)),
        fat_hu=float(rng.uniform(-8.0, 8.0)),
        outline_harmonics=random_harmonics(rng, 0.025, 5),
        organ_jitter=jitter,
        loops=loops,
        rib_phase=float(rng.uniform(-0.006, 0.006)),
        mesenteric=mesenteric,
        ribs=ribs,
        back_power=back_power,
        stomach_gas=stomach_gas,
        vessels=np.zeros((0, 9)),
    )
    trees = rng.spawn(2)
    return replace(
        body, vessels=lung_vessel_tree(body, trees[0]), liver_vessels=liver_vessel_tree(body, trees[1])
    )


def _standard_ribs() -> Array:
    """(2 * RIB_LEVELS, 5) ribs all alike (see :attr:`Body.ribs`)."""
    return np.tile([0.0, 6.0, 9.0, 3.5, 1.0], (2 * RIB_LEVELS, 1))


def _uniform_columns(rng: np.random.Generator, count: int, bounds: Sequence[tuple[float, float]]) -> Array:
    """(count, len(bounds)) uniform draws, one column per (low, high), drawn column after column."""
    return np.column_stack([rng.uniform(low, high, count) for low, high in bounds])


SMALL_BOWEL_SPREAD = (1.3, 0.84)
"""Version 14: the small-bowel loops' centres (drawn in cavity units) move out from the middle of the
abdomen by the first factor, to at most the second fraction of the way to the cavity's edge. Drawn where
they were, they left a ring of fat 20-40 mm wide between the loops and the flank and front walls, where
real key slices show bowel against the wall (deep fat 0.16 of the region deeper than 45 mm at zn
0.58-0.68 with the liver and spleen reaching the wall; real 0.095)."""
SMALL_BOWEL_MIDDLE = (0.0, -0.2)
"""The middle of the small-bowel loops' placement, cavity units (x, y: the front is -1)."""


def _spread_out(loop: Loop) -> Loop:
    """``loop`` with its centre moved out by :data:`SMALL_BOWEL_SPREAD` (the draws stay as they were)."""
    factor, limit = SMALL_BOWEL_SPREAD
    mx, my = SMALL_BOWEL_MIDDLE
    cx, cy = mx + factor * (loop.cx - mx), my + factor * (loop.cy - my)
    norm = math.hypot(cx, cy)  # the cavity is an ellipse of unit semi-axes in these units
    if norm > limit:
        cx, cy = cx * limit / norm, cy * limit / norm
    return replace(loop, cx=cx, cy=cy)


UPPER_LOOPS = 35
"""Small-bowel loops between the liver, stomach and kidneys (:func:`_upper_abdominal_loops`)."""


def _upper_abdominal_loops(height: float, rng: np.random.Generator) -> list[Loop]:
    """Jejunal loops at the level of the kidneys (zn 0.585-0.66), mostly left of the midline and in front
    (version 11). The other loops centre at zn 0.625-0.83, so between the organs of the upper abdomen the
    cavity was mostly fat: 28% of the region deeper than 45 mm from the skin at zn 0.60-0.66, where the
    real key slices of that height have about 10% fat in all. The organs are drawn over the loops, so the
    loops only fill the room between them; lesions are placed as before."""
    columns = _uniform_columns(
        rng,
        UPPER_LOOPS,
        [(-0.45, 0.65), (-0.75, 0.15), (0.585, 0.66), (12.0, 35.0), (6.0, 12.0), (0.0, math.pi), (0.0, 40.0)],
    )
    loops = []
    for cx, cy, zn_mid, half_length, radius, heading, run_mm in columns:
        gas = float(rng.random() < 0.3)
        loop = Loop(cx, cy, zn_mid * height, half_length, radius, 0.0, 0.0, gas, False, heading, run_mm)
        loops.append(_bowel_contents(loop, rng))
    return loops


def _duodenum(height: float, rng: np.random.Generator) -> list[Loop]:
    """The duodenum (version 13): its descending part, a tube beside the pancreatic head down the right
    of the upper abdomen (zn 0.625-0.675), and its horizontal part, a run across the midline in front of
    the aorta below the pancreas (zn about 0.68)."""
    descending = Loop(
        -0.30,
        0.10,
        0.65 * height,
        0.025 * height,
        float(rng.uniform(10.0, 14.0)),
        0.0,
        0.0,
        float(rng.random() < 0.4),
        False,
    )
    horizontal = Loop(
        -0.05,
        0.22,
        0.68 * height,
        12.0,
        float(rng.uniform(8.0, 11.0)),
        0.0,
        0.0,
        0.0,
        False,
        heading=float(rng.uniform(-0.15, 0.15)),
        run_mm=float(rng.uniform(45.0, 70.0)),
    )
    return [_bowel_contents(descending, rng), _bowel_contents(horizontal, rng)]


def _bowel_contents(loop: Loop, rng: np.random.Generator) -> Loop:
    """What a loop holds (generator version 8). Small bowel: oral contrast reaches 60% of the loops, 30%
    are collapsed, and a loop with gas has a little of it (12-40% of its diameter) over the fluid. Colon:
    stool under a gas cap of 0-35% of the diameter (none below 10%), a lobulated (haustral) lumen."""
    if loop.colon:
        cap = float(rng.uniform(0.0, 0.35))
        return replace(loop, gas=cap if cap >= 0.1 else 0.0, haustra=random_harmonics(rng, 0.05, 6))
    opacified, collapsed, gas = rng.random() < 0.6, rng.random() < 0.3, float(rng.uniform(0.12, 0.4))
    return replace(
        loop,
        opacified=bool(opacified),
        collapsed=bool(collapsed),
        gas=gas if loop.gas > 0.0 and not collapsed else 0.0,
    )


def _stool_bubbles(loop: Loop, rng: np.random.Generator) -> Array:
    """(M, 4) small gas bubbles that make a colon's stool mottled (u, v in the loop's radius, z offset mm,
    radius mm)."""
    count = int(rng.integers(30, 60))
    angle, radius = rng.uniform(0.0, 2.0 * math.pi, count), 0.75 * np.sqrt(rng.random(count))
    return np.column_stack(
        [
            radius * np.cos(angle),
            radius * np.sin(angle),
            rng.uniform(-1.0, 1.0, count) * loop.half_length,
            rng.uniform(1.0, 3.5, count),
        ]
    )


def _flank_planes(
    inner: Array, direction: Array, thickness: Array, phi: Array, half: Array, side: float, jitter: Array
) -> list[Array]:
    """The fat planes between the three flank muscles on one side (``half``: its cavity vertices in order
    of ``phi``), as polylines; ``jitter``: the body outline's :func:`harmonic_jitter`. Version 15: two
    planes at 0.35 and 0.68 of the wall's depth along the whole flank drew three even layers, parallel as
    tree rings; the layers now differ in thickness (the transversus innermost and thinnest), each plane
    wanders across the muscle, and each covers its own part of the flank, different per patient and
    side."""
    pick = 0 if side < 0 else 1
    planes = []
    # (depth, first and last phi): the outer plane (between the obliques) along most of the flank, the
    # inner one (the transversus) along its back part
    for k, (depth, start, end) in enumerate(((0.62, 0.8, 2.05), (0.3, 1.1, 2.0))):
        u = float(jitter[(2 * k + pick) % len(jitter)])
        w = float(jitter[(2 * k + pick + 3) % len(jitter)])
        lateral = half[(phi[half] > start + 0.1 * (1.0 + u)) & (phi[half] < end - 0.1 * (1.0 - w))]
        wander = depth + 0.12 * np.sin(4.0 * phi[lateral] + 3.0 * u + 1.7 * w)
        planes.append(inner[lateral] + (wander * thickness[lateral])[:, None] * direction[lateral])
    return planes


RENAL_HILUM_HALF_HEIGHT = 0.022
"""Half the height of a kidney's hilum, zn units (about 24 mm), around the middle keyframe of the kidney."""
RENAL_SINUS_HALF_HEIGHT = 0.026
"""Half the height of a kidney's sinus, zn units (about 28 mm), around the same keyframe: above and below
it a slice cuts the poles, which are solid parenchyma (version 15; before, every slice of a kidney showed
the sinus as a round dark hole)."""


def widest_keyframe_zn(name: str) -> float:
    """The normalized height of organ ``name``'s widest keyframe (:data:`ORGANS`, largest ``a``), before a
    patient's size factor."""
    return max(ORGANS[name][1], key=lambda key: key[3])[0]


def hilum_opening(body: Body, name: str, z: float) -> float:
    """How open kidney ``name``'s sinus is toward the midline at height ``z``: 1 at the widest keyframe of
    the kidney (scaled with the patient's kidney as :meth:`Body.organ` scales it), falling to 0 at
    :data:`RENAL_HILUM_HALF_HEIGHT` from it."""
    return _kidney_band(body, name, z, RENAL_HILUM_HALF_HEIGHT)


def renal_sinus_extent(body: Body, name: str, z: float) -> float:
    """How much of kidney ``name``'s sinus a slice at height ``z`` cuts: 1 at the widest keyframe (the
    hilum's middle), falling to 0 at :data:`RENAL_SINUS_HALF_HEIGHT` from it (the poles)."""
    return _kidney_band(body, name, z, RENAL_SINUS_HALF_HEIGHT)


def _kidney_band(body: Body, name: str, z: float, half_height: float) -> float:
    """1 at kidney ``name``'s widest keyframe, falling linearly to 0 at ``half_height`` (zn units, before
    the patient's size factor) from it; the kidney's keyframes scale about their middle as
    :meth:`Body.organ` scales them."""
    keys = ORGANS[name][1]
    size = body.organ_jitter[name][2]
    mid = 0.5 * (keys[0][0] + keys[-1][0])
    local = mid + (body.zn(z) - mid) / size
    return float(np.clip(1.0 - abs(local - widest_keyframe_zn(name)) / half_height, 0.0, 1.0))


REGIONS = ("lung", "mediastinum", "liver", "abdomen", "kidney", "pelvis", "bone", "soft_tissue")
"""Where the eight coarse lesion types live (the names of :class:`~deeplesion.catalog.LesionType`)."""

CAVITY_MUSCLES = ("psoas_R", "psoas_L", "gluteal_R", "gluteal_L", "obturator_R", "obturator_L")
"""The muscles drawn inside the cavity's section (which is wider than the true pelvic cavity): no
abdominal or pelvic lesion is placed in them (version 13; before, a pelvic lesion could be)."""

UNDER_DIAPHRAGM = ("stomach", "liver", "gallbladder", "spleen", "pancreas")
"""The organs under the diaphragm, in the order the phantom draws them: after the lungs, which wrap round
their upper parts (version 13), and before the heart."""

REGION_ZN: dict[str, tuple[float, float]] = {
    "mediastinum": (0.36, 0.56),
    "abdomen": (0.57, 0.74),
    "pelvis": (0.74, 0.88),
    "soft_tissue": (0.30, 0.90),
}


def region_contains(body: Body, region: str, x: float, y: float, z: float) -> bool:
    """Whether the point (x, y, z) mm lies where lesions of type ``region`` occur in this body
    (:func:`region_mask` for one point)."""
    return bool(region_mask(body, region, np.array([x]), np.array([y]), z)[0])


def region_mask(body: Body, region: str, x: Array, y: Array, z: float) -> npt.NDArray[np.bool_]:
    """Which of the points (x, y) mm at height ``z`` mm lie where lesions of type ``region`` occur.

    ``lung``, ``liver``, ``kidney``: inside that organ, not where another structure is drawn over it (the
    phantom draws the lungs, then the organs under the diaphragm, then the heart, the paraspinal muscles
    and the kidneys: version 13; the kidneys stay out of the drawn lungs, as before). ``mediastinum``:
    inside the chest cavity, outside the lungs (as drawn: version 10's lungs reach the chest wall,
    :func:`lung_outline`), the heart, the organs under the diaphragm and the paraspinal muscles.
    ``abdomen``: abdominal cavity outside the liver, kidneys, lungs, heart and the muscles
    (:data:`CAVITY_MUSCLES`, paraspinal, :func:`wing_muscles`). ``pelvis``: pelvic cavity outside the
    bladder, the muscles (:data:`CAVITY_MUSCLES`), the hips with the muscles round them
    (:func:`hip_muscles`), the ischia and pubic bones (:func:`pelvic_ring`) and the wings' muscles (the
    iliacus; the gluteus medius since version 23) (version 12 and before placed pelvic lesions in the
    femoral heads and the muscles, which lie in the cavity's section). ``bone``: inside a vertebral
    body, the sacrum, an iliac wing, the sternum or a femoral head. ``soft_tissue``: inside the skin, outside
    the cavity (fat, muscle) and outside the drawn lungs, whose posterior recesses reach past the
    cavity's section (before version 10 a lesion could land there). Cavity regions and the organs exclude
    the bones in them and the vertebra's posterior arch (:func:`in_spine`).

    Parameters
    ----------
    x, y
        (N,) float64 positions, mm (body frame).

    Returns
    -------
    ndarray
        (N,) bool.
    """
    lungs = ("lung_R", "lung_L")
    kidneys = ("kidney_R", "kidney_L")
    # drawn over everything in the cavity but the kidneys: a lesion there would show in them
    over = ("heart", "paraspinal_R", "paraspinal_L")
    if region == "lung":
        return (
            in_organs(body, lungs, x, y, z)
            & in_drawn_lungs(body, x, y, z)  # version 24: not where the mediastinum is drawn over them
            & ~in_organs(body, (*UNDER_DIAPHRAGM, *over, *kidneys), x, y, z)
            & ~in_bone(body, x, y, z)
            & ~in_spine(body, x, y, z)
        )
    if region == "liver":
        after = UNDER_DIAPHRAGM[UNDER_DIAPHRAGM.index("liver") + 1 :]
        return (
            in_organs(body, ("liver",), x, y, z)
            & ~in_organs(body, (*after, *over, *kidneys), x, y, z)
            & ~in_spine(body, x, y, z)
        )
    if region == "kidney":
        # version 17's kidneys reach further out, where in a patient whose iliac crests lie high the iliac
        # wing and the iliacus are drawn over a lower pole
        inside = (
            in_organs(body, kidneys, x, y, z)
            & ~in_organs(body, (*over, *CAVITY_MUSCLES), x, y, z)
            & ~in_drawn_lungs(body, x, y, z)
            & ~in_bone(body, x, y, z)
            & ~in_spine(body, x, y, z)
        )
        for section in wing_muscles(pelvic_wings(body, z)):
            inside &= ~section.contains(x, y)
        return inside
    if region == "bone":
        inside = in_bone(body, x, y, z)
        for hx, hy, radius in femoral_heads(body, z):
            inside |= np.hypot(x - hx, y - hy) <= radius
        return inside
    low, high = REGION_ZN[region]
    if not low <= body.zn(z) <= high:
        return np.zeros(np.shape(x), dtype=bool)
    inside_cavity = body.cavity(z).contains(x, y)
    if region == "soft_tissue":
        # the lungs' posterior recesses reach past the cavity's section, towards the ribs
        return body.outline(z).contains(x, y) & ~inside_cavity & ~in_drawn_lungs(body, x, y, z)
    exclude = {
        "mediastinum": (*UNDER_DIAPHRAGM, *over),
        "abdomen": ("liver", *kidneys, *over, *CAVITY_MUSCLES),
        "pelvis": ("bladder", *over[1:], *CAVITY_MUSCLES),
    }[region]
    inside = (
        inside_cavity
        & ~in_bone(body, x, y, z)
        & ~in_spine(body, x, y, z)
        & ~in_organs(body, exclude, x, y, z)
    )
    if region != "pelvis":
        inside &= ~in_drawn_lungs(body, x, y, z)
    if region != "mediastinum":  # the hips, the muscles round them, the pelvic ring, the wings' muscles
        for section in [*hip_muscles(body, z), *pelvic_ring(body, z), *wing_muscles(pelvic_wings(body, z))]:
            inside &= ~section.contains(x, y)
    return inside


def in_drawn_lungs(body: Body, x: Array, y: Array, z: float) -> npt.NDArray[np.bool_]:
    """(N,) whether the points (x, y) mm at height ``z`` lie in a lung as it is drawn (:func:`lung_outline`,
    which reaches the chest wall beyond the lung's section)."""
    inside = np.zeros(np.shape(x), dtype=bool)
    for outline in drawn_lungs(body, z).values():
        inside |= polygon_contains(outline, x, y)
    middle = mediastinum(body, z)
    if middle is not None:
        inside &= ~middle.contains(x, y)
    return inside


def in_organs(body: Body, names: Sequence[str], x: Array, y: Array, z: float) -> npt.NDArray[np.bool_]:
    """(N,) whether the points (x, y) mm at height ``z`` lie inside any of the organs ``names`` (keys of
    :data:`ORGANS`) as drawn: their sections, and for :data:`WALL_ORGANS` the part of
    :func:`organ_outline_to_wall` outside the drawn lungs."""
    inside = np.zeros(np.shape(x), dtype=bool)
    lungs: npt.NDArray[np.bool_] | None = None
    for name in names:
        section = body.organ(name, z)
        if section is None:
            continue
        inside |= section.contains(x, y)
        if name in WALL_ORGANS:  # and out to the wall where no lung lies over it
            if lungs is None:
                lungs = in_drawn_lungs(body, x, y, z)
            inside |= polygon_contains(_reach_wall(body, name, section, z), x, y) & ~lungs
    return inside


def in_bone(body: Body, x: Array, y: Array, z: float) -> npt.NDArray[np.bool_]:
    """(N,) whether the points (x, y) mm at height ``z`` lie inside one of :func:`bone_sections`."""
    inside = np.zeros(np.shape(x), dtype=bool)
    for section in bone_sections(body, z):
        inside |= section.contains(x, y)
    return inside


SPINE_ARCH_HALF_WIDTH_MM = 20.0
SPINE_ARCH_DEPTH_MM = 36.0
"""The box behind the vertebral body's back border that holds the pedicles, the canal, the laminae and
the spinous process as the phantom draws them (its transverse processes lie in the back muscles)."""


def in_spine(body: Body, x: Array, y: Array, z: float) -> npt.NDArray[np.bool_]:
    """(N,) whether the points (x, y) mm at height ``z`` lie in the vertebra as drawn: its body (grown by
    2 mm for the cortex and the raster) or its posterior arch; below the lumbar spine, the sacral canal and
    the median crest behind the sacrum's body. The organs' sections reach over the spine
    (version 12's liver section covered part of the vertebral body and the canal: a liver lesion could
    be placed there); the bones are drawn last, over them."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    bone = body.vertebral_body(z)
    if bone is None:
        sacrum = sacrum_parts(body, z)
        if not sacrum:
            return np.zeros(np.shape(x), dtype=bool)
        # the sacral canal and the median crest behind the sacrum's body (its alae are bone_sections')
        middle = sacrum[0]
        back = middle.cy + middle.b
        return np.asarray((np.abs(x - middle.cx) < 0.5 * middle.a) & (y > back - 12.0) & (y < back + 12.0))
    sx, sy = bone.cx, bone.cy
    inside = Section(sx, sy, bone.a + 2.0, bone.b + 2.0).contains(x, y)
    back = sy + bone.b
    arch = (np.abs(x - sx) < SPINE_ARCH_HALF_WIDTH_MM) & (y > back - 2.0) & (y < back + SPINE_ARCH_DEPTH_MM)
    return np.asarray(inside | arch)


def bone_sections(
    body: Body, z: float, *, wings: list[Section] | None = None, sacrum: list[Section] | None = None
) -> list[Section]:
    """Cross-sections of the plate-like bones where bone lesions are placed: the vertebral body (first,
    when the slice has one), the sacrum, the iliac wings (in parts: :func:`iliac_wing_parts`) and
    the sternum. ``wings`` and ``sacrum``: both wings' parts (:func:`pelvic_wings`) and the sacrum's
    (:func:`sacrum_parts`) when the caller has computed them already."""
    sections = []
    vertebral_body = body.vertebral_body(z)
    if vertebral_body is not None:
        sections.append(vertebral_body)
    zn = body.zn(z)
    cavity = body.cavity(z)
    sections.extend(sacrum_parts(body, z) if sacrum is None else sacrum)
    sections.extend(pelvic_wings(body, z) if wings is None else wings)
    if 0.38 <= zn <= 0.53:
        sections.append(Section(0.0, cavity.cy - cavity.b - 6.0, 14.0, 7.0))
    return sections


def sacrum_parts(body: Body, z: float) -> list[Section]:
    """The sacrum at height ``z`` (zn 0.735-0.82, below the L5-S1 disc; none elsewhere): its body in the
    middle (first), then the right and left alae. Widest at the top (S1, as wide as the last lumbar
    vertebra), it tapers toward the coccyx and tilts backward as it descends. Down to zn 0.78 each ala
    reaches the medial end of its iliac wing but for 3 mm (the sacroiliac joint); below, the alae shrink
    toward the middle."""
    zn = body.zn(z)
    if not 0.735 <= zn <= 0.82:
        return []
    cavity = body.cavity(z)
    t = (zn - 0.735) / 0.085
    scale = math.cos(0.5 * math.pi * t)
    y = cavity.cy + (0.54 + 0.20 * t) * cavity.b
    half_width = (0.10 * cavity.a + 8.0) * (0.45 + 0.55 * scale)
    # version 10: deeper (0.14 of the cavity's half-depth), the canal behind the body inside the outline
    parts = [Section(0.0, y, half_width, 0.19 * cavity.b * (0.45 + 0.55 * scale))]
    joint = min(max((0.80 - zn) / 0.02, 0.0), 1.0)  # 1 down to zn 0.78, then the alae let go of the wings
    thickness = 0.14 * cavity.b * (0.5 + 0.5 * scale)  # 0.10 before version 23: alae thin as a wing
    for side in (-1.0, 1.0):
        start = np.array([side * 0.5 * half_width, y])
        own = np.array([side * (half_width + 0.12 * cavity.a * scale + 4.0), y + 0.03 * cavity.b])
        end = own
        if joint > 0.0:
            # version 23: the ala runs out to the inner face of the ilium at its own height, and the
            # ilium's back end reaches on behind it (before, the ala bent back to meet the wing's tip)
            wing = np.vstack([part.polygon() for part in iliac_wing_parts(cavity, side, zn)])
            level = wing[np.abs(wing[:, 1] - own[1]) < 0.75 * thickness]
            if len(level):
                face = np.array([float(level[np.argmin(np.abs(level[:, 0])), 0]), float(own[1])])
                joint_end = face - np.array([side * SACROILIAC_JOINT_MM, 0.0])
            else:  # the wing lies wholly behind or in front: meet the end nearest the midline
                tip = wing[np.argmin(np.abs(wing[:, 0]))]
                toward = (tip - start) / max(float(np.hypot(*(tip - start))), 1e-6)
                joint_end = tip - toward * SACROILIAC_JOINT_MM
            end = joint * joint_end + (1.0 - joint) * own
        middle, half = 0.5 * (start + end), 0.5 * float(np.hypot(*(end - start)))
        angle = math.atan2(float(end[1] - start[1]), float(end[0] - start[0]))
        parts.append(Section(float(middle[0]), float(middle[1]), max(half, 1.0), thickness, angle))
    return parts


def pelvic_wings(body: Body, z: float) -> list[Section]:
    """Both iliac wings' parts (:func:`iliac_wing_parts`, right then left) at height ``z``; none outside
    zn 0.70-0.82."""
    zn = body.zn(z)
    if not 0.70 <= zn <= 0.82:
        return []
    cavity = body.cavity(z)
    return [part for side in (-1.0, 1.0) for part in iliac_wing_parts(cavity, side, zn)]


def femoral_heads(body: Body, z: float) -> list[tuple[float, float, float]]:
    """Centre (x, y) mm and radius mm of the femoral heads (the balls, without the sockets around them)
    at height ``z``, right then left (none outside the hips, zn 0.80-0.90)."""
    zn = body.zn(z)
    if not 0.80 <= zn <= 0.90:
        return []
    cavity = body.cavity(z)
    radius = 1.0 + 22.0 * math.sin(math.pi * min((zn - 0.80) / 0.07, 1.0) * 0.5 + math.pi * 0.25)
    return [(side * 0.66 * cavity.a, cavity.cy + 0.05 * cavity.b, radius) for side in (-1.0, 1.0)]


def hip_joint_muscle(x: float, y: float, radius: float) -> Section:
    """The muscle round one hip joint whose femoral head is centred at (x, y) mm with ``radius`` mm: it
    holds the head, its socket, its neck and the greater trochanter (no lesion region reaches into it)."""
    side = 1.0 if x > 0.0 else -1.0
    return Section(x + side * 8.0, y + 2.0, radius + 24.0, radius + 20.0)


def hip_muscles(body: Body, z: float) -> list[Section]:
    """The muscles round each femur at height ``z`` (iliopsoas in front, the gluteal muscles round it):
    one section per hip, holding the femoral head, its socket, its neck and the greater trochanter, and
    in front of it the hip flexors (iliopsoas, sartorius, pectineus) out to the front wall and in to the
    pubic bone (version 25: fat lay there, between the hip's muscle and the pubic ramus)."""
    sections = []
    cavity = body.cavity(z)
    for x, y, radius in femoral_heads(body, z):
        side = 1.0 if x > 0.0 else -1.0
        sections.append(hip_joint_muscle(x, y, radius))
        front = cavity.cy - 0.72 * cavity.b  # just behind the pubic bones' front ends
        flexors_x = x - side * 0.18 * cavity.a
        sections.append(Section(flexors_x, 0.5 * (y + front), radius + 8.0, 0.5 * (y - front), side * 0.5))
    return sections


def ischia(body: Body, z: float) -> list[Section]:
    """The ischial bones behind the hip joints (zn 0.83-0.90), right then left."""
    if not 0.83 <= body.zn(z) <= 0.90:
        return []
    cavity = body.cavity(z)
    return [
        Section(side * 0.42 * cavity.a, cavity.cy + 0.55 * cavity.b, 12.0, 16.0, side * 0.4)
        for side in (-1.0, 1.0)
    ]


def pubic_bones(body: Body, z: float) -> list[Section]:
    """The pubic bones in front of the bladder (zn 0.85-0.90), right then left (version 14): down to zn
    0.875 the superior ramus, from the front of the hip socket to the symphysis at the front midline;
    below, the pubic body, its medial half, thickening toward the symphysis."""
    zn = body.zn(z)
    if not 0.85 <= zn <= 0.90:
        return []
    cavity = body.cavity(z)
    sections = []
    for x, y, radius in femoral_heads(body, z):
        side = 1.0 if x > 0.0 else -1.0
        start = np.array([x - side * 0.5 * radius, y - 0.9 * radius])  # the socket's front
        end = np.array([side * 5.0, cavity.cy - 0.78 * cavity.b])  # beside the symphysis
        lower = min(max((zn - 0.875) / 0.01, 0.0), 1.0)  # 0: the whole ramus, 1: its medial half
        start = start + 0.5 * lower * (end - start)
        centre = 0.5 * (start + end)
        dx, dy = end - start
        sections.append(
            Section(
                float(centre[0]),
                float(centre[1]),
                0.5 * math.hypot(dx, dy),
                6.0 + 3.0 * lower,
                math.atan2(dy, dx),
            )
        )
    return sections


LEVATOR_ZN = (0.855, 0.93)
"""Normalized heights of the levator ani's sling (version 25), from the hip sockets to the anal canal."""
LEVATOR_MM = 6.0
"""Thickness of the levator ani, mm."""


def levator_ani(body: Body, z: float) -> npt.NDArray[np.float64] | None:
    """(N, 2) centre line (mm) of the levator ani at height ``z``; None outside :data:`LEVATOR_ZN`.

    The pelvic floor's funnel: a sling from the side walls beside the bladder's base back round the
    rectum, narrower toward the anal canal (version 25). Between it and the gluteal muscles lies the
    ischioanal fat; inside it the rectum and the prostate or cervix. Before, the middle of the lower
    pelvis was one fat space round the rectum (real slices: 6-39% fat in its middle, version 24: 28-64%).
    """
    low, high = LEVATOR_ZN
    zn = body.zn(z)
    rectum = body.vessel("rectum", z)
    if not low <= zn <= high or rectum is None:
        return None
    _, rectum_y, radius = rectum
    cavity = body.cavity(z)
    narrowing = (zn - low) / (high - low)
    half_width = cavity.a * (0.36 - 0.2 * narrowing)
    front = cavity.cy - 0.1 * cavity.b
    back = rectum_y + radius + 0.5 * LEVATOR_MM + 1.0
    phi = np.linspace(0.0, math.pi, 25)
    return np.column_stack([half_width * np.cos(phi), front + (back - front) * np.sin(phi)])


def pelvic_ring(body: Body, z: float) -> list[Section]:
    """The bones of the lower pelvis that no lesion is placed in: :func:`ischia` and
    :func:`pubic_bones`."""
    return [*ischia(body, z), *pubic_bones(body, z)]


def _wing_face_muscle(wings: list[Section], face: float, gap_mm: float, half_mm: float) -> list[Section]:
    """A muscle along one face of each part of the iliac wings: ``face`` 1 the inner (front, medial)
    face, -1 the outer; centred ``gap_mm`` beyond the part's half-thickness, ``half_mm`` thick either
    side of its centre line, 0.95 of the part long."""
    sections = []
    for part in wings:
        gap = part.b + gap_mm
        normal = (face * math.sin(part.angle), -face * math.cos(part.angle))
        sections.append(
            Section(part.cx + gap * normal[0], part.cy + gap * normal[1], 0.95 * part.a, half_mm, part.angle)
        )
    return sections


def iliacus(wings: list[Section]) -> list[Section]:
    """The iliacus muscle lining the inner (front, medial) face of each part of the iliac wings
    (:func:`pelvic_wings`)."""
    return _wing_face_muscle(wings, 1.0, 5.0, 7.0)


def gluteus_medius(wings: list[Section]) -> list[Section]:
    """The gluteus medius on the outer (back, lateral) face of each part of the iliac wings
    (:func:`pelvic_wings`), :data:`GLUTEUS_MEDIUS_MM` thick (version 23: the wing lay in the cavity's fat,
    with the thin flank muscles beyond; on real slices the wing lies between the iliacus inside and this
    muscle outside)."""
    return _wing_face_muscle(wings, -1.0, 0.5 * GLUTEUS_MEDIUS_MM, 0.5 * GLUTEUS_MEDIUS_MM)


GLUTEUS_MEDIUS_MM = 16.0
"""Thickness of the gluteus medius on an iliac wing, mm (real: 15-25 mm at the iliac crests)."""


def wing_muscles(wings: list[Section]) -> list[Section]:
    """The muscles either side of the iliac wings: :func:`iliacus` and :func:`gluteus_medius`."""
    return [*iliacus(wings), *gluteus_medius(wings)]


def iliac_wing(cavity: Section, side: float, zn: float) -> Section:
    """The ilium of one side (zn 0.70-0.82): above zn 0.76 a thin plate flaring forward and outward from
    the sacroiliac joint (its back end by the sacrum's side, its front end lateral), below it the plate
    shortens and thickens into the bone above the hip socket."""
    flare = -side * math.radians(WING_FLARE_DEG)  # front end outward: the pelvis opens forward like a V
    x, y, length = WING_CENTRE[0] * cavity.a, cavity.cy + WING_CENTRE[1] * cavity.b, WING_LENGTH * cavity.a
    if zn <= 0.76:
        grow = math.sin(0.5 * math.pi * max(zn - 0.70, 0.0) / 0.06)
        return Section(
            side * x,
            y,
            length * (0.5 + 0.5 * grow),
            WING_HALF_THICKNESS_MM[0] + WING_HALF_THICKNESS_MM[1] * grow,
            flare,
        )
    t = min((zn - 0.76) / 0.06, 1.0)
    return Section(
        side * (x + (0.65 - WING_CENTRE[0]) * t * cavity.a),  # the roof of the hip socket at zn 0.82
        y - (WING_CENTRE[1] - 0.08) * t * cavity.b,
        length * (1.0 - t) + 20.0 * t,
        sum(WING_HALF_THICKNESS_MM) + 10.0 * t,
        flare * (1.0 - 0.5 * t),
    )


SACROILIAC_JOINT_MM = 5.0
"""Gap between a sacral ala's end and its ilium (version 23; 3 mm before, when the joint did not show
between the two blurred cortices in the soft-tissue window, and wing and sacrum read as one bone)."""
WING_FLARE_DEG = 48.0
"""Angle of an iliac wing's long axis from the left-right axis, front end outward (55 before version 23)."""
WING_CENTRE = (0.58, 0.36)
"""Centre of an iliac wing's plate (zn 0.70-0.76): out from the midline and behind the cavity's centre, in
the cavity's half-axes (version 23; (0.66, 0.25) before: the wing's back end stopped at the sacrum's side,
0.72 of the body's depth from the front and 0.41 of its half-width out, real 0.81 and 0.30)."""
WING_LENGTH = 0.43
"""Half-length of a grown iliac wing's plate in the cavity's half-width (0.36 before version 23)."""
WING_HALF_THICKNESS_MM = (3.0, 2.0)
"""Half-thickness of an iliac wing at its crest (zn 0.70) and what it gains by zn 0.76, mm (version 23;
(5, 3) before: real wings are 6-15 mm thick, 8.7 the median of the measured ones)."""
WING_BACK_THICKENING = 0.6
"""How much thicker the back end of an iliac wing's plate is than its front end (version 23: the posterior
ilium by the sacroiliac joint, the thickest part of the plate on real slices)."""


def iliac_wing_parts(cavity: Section, side: float, zn: float) -> list[Section]:
    """The ilium of :func:`iliac_wing` as a curved plate: :data:`WING_PARTS` overlapping sections along its
    long axis on a parabola whose middle bows outward (backward and lateral) by up to a quarter of the
    half-length, so that the plate is concave toward the iliac fossa; straight again where it becomes the
    bone above the hip socket (zn 0.82)."""
    wing = iliac_wing(cavity, side, zn)
    along = np.array([math.cos(wing.angle), math.sin(wing.angle)])
    outward = np.array([-math.sin(wing.angle), math.cos(wing.angle)])  # away from the iliac fossa
    plate = 1.0 - min(max((zn - 0.76) / 0.06, 0.0), 1.0)  # 0 where it is the bone above the socket
    bow = 0.25 * wing.a * plate
    parts = []
    for s in np.linspace(-0.75, 0.75, WING_PARTS):
        centre = np.array([wing.cx, wing.cy]) + s * wing.a * along + bow * (1.0 - s * s) * outward
        tangent = wing.a * along - 2.0 * s * bow * outward
        angle = math.atan2(float(tangent[1]), float(tangent[0]))
        # version 10: thick at both ends (the sacroiliac joint behind, the anterior spine in front), thin
        # in the middle where the iliac fossa is a plate of little more than cortex (was even throughout)
        taper = 1.0 - plate * max(0.55 - 0.98 * s * s, 0.0)
        # version 23: the back end, by the sacroiliac joint, the thickest (the posterior ilium)
        taper *= 1.0 + WING_BACK_THICKENING * plate * max(-side * s - 0.25, 0.0) / 0.5
        parts.append(Section(float(centre[0]), float(centre[1]), 0.3 * wing.a, wing.b * taper, angle))
    return parts


WING_PARTS = 7
"""Sections per iliac wing: 0.25 of its half-length apart, each 0.3 long, so their union's outline dips
by at most an eighth of the plate's thickness between two of them."""
