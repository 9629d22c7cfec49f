"""A CT-like phantom: a body with fat, muscle, lungs, organs, bone and ellipsoid lesions, in HU.

Geometry. A patient lives in millimetres: ``x`` to the patient's left (image right), ``y`` to the back
(image down), ``z`` toward the feet, 0 at the top of the lungs. ``zn = z / length`` is the normalized body
height (chest about 0-0.38, abdomen 0.33-0.7, pelvis 0.7-1). Every organ is an ellipsoid-like shape whose
cross-section at height ``z`` is an ellipse, so neighbouring slices agree. A slice of a series is rendered
at one ``z``; pixel ``(col, row)`` sits at ``x = (col - c) * spacing``, ``y = (row - c) * spacing`` with
``c = (size - 1) / 2``.

Speed matters (about 3 ms per 512x512 slice): organs are drawn with OpenCV's filled ellipses (subpixel
precision), noise comes from a pre-blurred bank cropped at random offsets, and only lesions, whose exact
outline the annotations are measured from, are rasterised with numpy inside their bounding box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

AIR_HU = -1000.0
SHIFT = 4  # OpenCV subpixel bits: coordinates are multiplied by 2**SHIFT
SCALE = 1 << SHIFT


@dataclass(frozen=True)
class Body:
    """One patient's anatomy, fixed across all their studies.

    Attributes
    ----------
    half_width_mm, half_depth_mm
        Semi-axes of the body outline at mid-abdomen (x and y), mm.
    length_mm
        Distance from the lung apices (z = 0) to the bottom of the pelvis, mm.
    fat_mm
        Subcutaneous fat thickness, mm.
    fat_hu, liver_hu
        Tissue values of this patient, HU.
    vessels
        (V, 5) float64 lung vessels: u, v in the unit disc of a lung, side (-1 right, +1 left), radius mm,
        drift per 100 mm of z.
    bowel
        (B, 6) float64 bowel loops: x, y, z (mm), radius mm, z half-extent mm, 1 for gas-filled.
    """

    half_width_mm: float
    half_depth_mm: float
    length_mm: float
    fat_mm: float
    fat_hu: float
    liver_hu: float
    vessels: npt.NDArray[np.float64] = field(repr=False)
    bowel: npt.NDArray[np.float64] = field(repr=False)

    def outline(self, z: float) -> tuple[float, float]:
        """Semi-axes (x, y) of the body outline at height ``z``, mm (narrower at the neck, wide at hips)."""
        zn = z / self.length_mm
        width = 0.92 + 0.08 * math.sin(math.pi * min(max(zn, 0.0), 1.0))
        width += 0.06 * max(0.0, zn - 0.7) / 0.3
        depth = 0.95 + 0.05 * math.cos(2.0 * math.pi * zn)
        return self.half_width_mm * width, self.half_depth_mm * depth


def random_body(rng: np.random.Generator) -> Body:
    """A plausible adult body (widths 150-195 mm, fat 8-35 mm)."""
    half_width = float(rng.uniform(150.0, 190.0))
    vessels = np.column_stack(
        [
            rng.uniform(-0.8, 0.8, 40),
            rng.uniform(-0.8, 0.8, 40),
            rng.choice([-1.0, 1.0], 40),
            rng.uniform(0.8, 2.6, 40),
            rng.uniform(-0.15, 0.15, 40),
        ]
    )
    length = float(rng.uniform(560.0, 660.0))
    loops = 36
    bowel = np.column_stack(
        [
            rng.uniform(-0.5, 0.5, loops) * half_width,
            rng.uniform(-0.5, 0.2, loops) * half_width * 0.62,
            rng.uniform(0.52, 0.88, loops) * length,
            rng.uniform(10.0, 22.0, loops),
            rng.uniform(20.0, 50.0, loops),
            (rng.random(loops) < 0.25).astype(float),
        ]
    )
    return Body(
        half_width_mm=half_width,
        half_depth_mm=half_width * float(rng.uniform(0.62, 0.72)),
        length_mm=length,
        fat_mm=float(rng.uniform(8.0, 35.0)),
        fat_hu=float(rng.uniform(-110.0, -85.0)),
        liver_hu=float(rng.uniform(55.0, 70.0)),
        vessels=vessels,
        bowel=bowel,
    )


@dataclass(frozen=True)
class Lesion3D:
    """An ellipsoid lesion in body coordinates.

    Attributes
    ----------
    center
        (x, y, z) mm.
    semi_axes
        (a, b, c) mm: in-plane semi-axes along the rotated x and y directions, and along z.
    angle
        In-plane rotation of ``a``, radians.
    hu
        Value inside the lesion, HU.
    kind
        Lesion type label (``liver``, ``lung``, ...).
    """

    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    angle: float
    hu: float
    kind: str

    def section_scale(self, z: float) -> float:
        """Fraction (0-1) of the in-plane semi-axes at height ``z`` (0 when the slice misses it)."""
        t = (z - self.center[2]) / self.semi_axes[2]
        return math.sqrt(1.0 - t * t) if abs(t) < 1.0 else 0.0


@dataclass(frozen=True)
class SliceGeometry:
    """How a series maps pixels to millimetres.

    Attributes
    ----------
    size
        Image width = height, pixels.
    spacing
        In-plane pixel spacing, mm.
    outside_hu
        Value outside the scanner's circular field of view (-1024 or -3024 in real slices).
    """

    size: int
    spacing: float
    outside_hu: float

    @property
    def center_px(self) -> float:
        """Pixel coordinate of x = y = 0 mm."""
        return (self.size - 1) / 2.0

    def to_px(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """Millimetres -> pixel (col, row)."""
        return x_mm / self.spacing + self.center_px, y_mm / self.spacing + self.center_px


def taper(zn: float, top: float, bottom: float) -> float:
    """Cross-section scale of an organ spanning heights ``top``-``bottom`` (normalized), 0 outside."""
    if not top < zn < bottom:
        return 0.0
    t = (2.0 * zn - top - bottom) / (bottom - top)
    return math.sqrt(1.0 - t * t)


class Painter:
    """Draws filled ellipses in millimetres onto a float32 HU image."""

    def __init__(self, image: npt.NDArray[np.float32], geometry: SliceGeometry) -> None:
        self.image = image
        self.geometry = geometry

    def ellipse(self, x: float, y: float, a: float, b: float, hu: float, angle_deg: float = 0.0) -> None:
        """Fill the ellipse centred at (x, y) mm with semi-axes a, b mm (a along the rotated x)."""
        import cv2

        if a <= 0.0 or b <= 0.0:
            return
        col, row = self.geometry.to_px(x, y)
        s = self.geometry.spacing
        cv2.ellipse(
            self.image,
            (round(col * SCALE), round(row * SCALE)),
            (max(round(a / s * SCALE), 1), max(round(b / s * SCALE), 1)),
            angle_deg,
            0.0,
            360.0,
            float(hu),
            thickness=-1,
            lineType=cv2.LINE_8,
            shift=SHIFT,
        )

    def ring(
        self,
        x: float,
        y: float,
        a: float,
        b: float,
        hu: float,
        thickness_mm: float,
        start_deg: float = 0.0,
        end_deg: float = 360.0,
    ) -> None:
        """An elliptical band or arc (a curved table top, a bowel wall); angles clockwise from +x."""
        import cv2

        col, row = self.geometry.to_px(x, y)
        s = self.geometry.spacing
        cv2.ellipse(
            self.image,
            (round(col * SCALE), round(row * SCALE)),
            (max(round(a / s * SCALE), 1), max(round(b / s * SCALE), 1)),
            0.0,
            start_deg,
            end_deg,
            float(hu),
            thickness=max(round(thickness_mm / s), 1),
            lineType=cv2.LINE_8,
            shift=SHIFT,
        )


def lesion_mask(
    lesion: Lesion3D, geometry: SliceGeometry, z: float
) -> tuple[slice, slice, npt.NDArray[np.bool_]]:
    """The pixels of ``lesion`` on the slice at height ``z``.

    Returns
    -------
    (rows, cols, mask)
        Slices into the image and the (h, w) bool mask inside them; an empty mask when the slice misses
        the lesion. Pixel centres inside the rotated ellipse are in the mask.
    """
    scale = lesion.section_scale(z)
    a, b = lesion.semi_axes[0] * scale, lesion.semi_axes[1] * scale
    col, row = geometry.to_px(lesion.center[0], lesion.center[1])
    reach = max(a, b) / geometry.spacing + 1.0
    c0, c1 = max(int(col - reach), 0), min(int(col + reach) + 2, geometry.size)
    r0, r1 = max(int(row - reach), 0), min(int(row + reach) + 2, geometry.size)
    if scale == 0.0 or c0 >= c1 or r0 >= r1:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0), dtype=bool)
    ys, xs = np.mgrid[r0:r1, c0:c1]
    dx = (xs - col) * geometry.spacing
    dy = (ys - row) * geometry.spacing
    cos, sin = math.cos(lesion.angle), math.sin(lesion.angle)
    u = dx * cos + dy * sin
    v = -dx * sin + dy * cos
    return slice(r0, r1), slice(c0, c1), (u / a) ** 2 + (v / b) ** 2 <= 1.0


class NoiseBank:
    """Spatially correlated CT-like noise: a few pre-blurred fields, cropped at random offsets."""

    MARGIN = 64

    def __init__(self, size: int, sigma_hu: float, rng: np.random.Generator, fields: int = 3) -> None:
        import cv2

        side = size + self.MARGIN
        bank = []
        for _ in range(fields):
            white = rng.standard_normal((side, side), dtype=np.float32)
            smooth = cv2.GaussianBlur(white, (0, 0), 0.9)
            bank.append(smooth * np.float32(sigma_hu / float(smooth.std())))
        self.fields = bank
        self.size = size

    def sample(self, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        """(size, size) float32 noise in HU."""
        field_ = self.fields[int(rng.integers(len(self.fields)))]
        dy, dx = (int(v) for v in rng.integers(0, self.MARGIN, 2))
        return field_[dy : dy + self.size, dx : dx + self.size]


def render_slice(
    body: Body,
    geometry: SliceGeometry,
    z: float,
    lesions: list[Lesion3D],
    noise: NoiseBank,
    rng: np.random.Generator,
) -> npt.NDArray[np.int16]:
    """Render one axial slice at height ``z`` mm.

    Returns
    -------
    ndarray
        (size, size) int16 HU in [-3024, 3071].
    """
    import cv2

    size = geometry.size
    image = np.full((size, size), AIR_HU, dtype=np.float32)
    paint = Painter(image, geometry)
    zn = z / body.length_mm
    bx, by = body.outline(z)
    # patient table under the body
    paint.ring(0.0, by - 10.0, bx * 1.15, 32.0, 120.0, 3.0, 25.0, 155.0)
    paint.ellipse(0.0, 0.0, bx, by, body.fat_hu)
    fat = body.fat_mm
    paint.ellipse(0.0, 0.0, bx - fat, by - fat * 0.8, 48.0)  # muscle wall
    wall = 9.0
    ix, iy = bx - fat - wall, by - fat * 0.8 - wall
    paint.ellipse(0.0, 0.0, ix, iy, -85.0)  # cavity: visceral / mediastinal fat
    _draw_chest(paint, body, zn, ix, iy)
    _draw_abdomen(paint, body, z, zn, ix, iy)
    _draw_pelvis(paint, zn, ix, iy)
    _draw_spine(paint, zn, ix, iy)
    for lesion in lesions:
        rows, cols, mask = lesion_mask(lesion, geometry, z)
        if mask.any():
            image[rows, cols][mask] = lesion.hu
    image = cv2.GaussianBlur(image, (3, 3), 0.6) + noise.sample(rng)  # partial volume, then noise
    # outside the circular field of view the scanner writes a constant
    c = geometry.center_px
    ys, xs = np.ogrid[:size, :size]
    outside = (xs - c) ** 2 + (ys - c) ** 2 > (size / 2.0) ** 2
    image[outside] = geometry.outside_hu
    return np.clip(np.rint(image), -3024, 3071).astype(np.int16)


def _draw_chest(paint: Painter, body: Body, zn: float, ix: float, iy: float) -> None:
    lung_scale = taper(zn, -0.08, 0.40)
    if lung_scale > 0.0:
        for side in (-1.0, 1.0):
            # the right lung's base sits higher (over the liver dome): smaller at the bottom
            scale = lung_scale * (0.92 if side < 0 and zn > 0.3 else 1.0)
            lx, ly, la, lb = side * 0.48 * ix, 0.05 * iy, 0.40 * ix * scale, 0.80 * iy * scale
            paint.ellipse(lx, ly, la, lb, -860.0)
            for u, v, vessel_side, radius, drift in body.vessels:
                if vessel_side == side:
                    vu = u + drift * zn * 6.0
                    if vu * vu + v * v < 0.8:
                        paint.ellipse(lx + vu * la, ly + v * lb, radius, radius, 45.0)
    heart = taper(zn, 0.12, 0.40)
    if heart > 0.0:
        paint.ellipse(0.14 * ix, -0.18 * iy, 0.30 * ix * heart, 0.42 * iy * heart, 42.0, -25.0)
    if zn < 0.36:  # trachea / main bronchi then aortic arch and descending aorta
        if zn < 0.18:
            paint.ellipse(0.0, -0.35 * iy, 9.0, 8.0, -950.0)
        paint.ellipse(0.10 * ix, 0.45 * iy, 12.0, 12.0, 165.0)


def _draw_abdomen(paint: Painter, body: Body, z: float, zn: float, ix: float, iy: float) -> None:
    # bowel first: the solid organs drawn after it push it aside
    for x, y, zc, radius, half, gas in body.bowel:
        if abs(z - zc) < half:
            r = radius * math.sqrt(1.0 - ((z - zc) / half) ** 2)
            paint.ellipse(x, y, r, r * 0.8, -850.0 if gas else 30.0)
            if gas:
                paint.ring(x, y, r, r * 0.8, 45.0, 1.5)
    liver = taper(zn, 0.30, 0.62)
    if liver > 0.0:
        paint.ellipse(-0.42 * ix, -0.02 * iy, 0.52 * ix * liver, 0.72 * iy * liver, body.liver_hu, 15.0)
    spleen = taper(zn, 0.34, 0.52)
    if spleen > 0.0:
        paint.ellipse(0.62 * ix, 0.25 * iy, 0.20 * ix * spleen, 0.36 * iy * spleen, 50.0, -30.0)
    stomach = taper(zn, 0.34, 0.50)
    if stomach > 0.0:
        paint.ellipse(0.30 * ix, -0.35 * iy, 0.22 * ix * stomach, 0.25 * iy * stomach, 25.0)
        paint.ellipse(0.30 * ix, -0.48 * iy, 0.12 * ix * stomach, 0.08 * iy * stomach, -900.0)
    kidney = taper(zn, 0.45, 0.63)
    if kidney > 0.0:
        for side in (-1.0, 1.0):
            kx, ky = side * 0.45 * ix, 0.48 * iy
            paint.ellipse(kx, ky, 0.16 * ix * kidney, 0.26 * iy * kidney, 150.0, side * 20.0)
            paint.ellipse(kx - side * 4.0, ky, 0.06 * ix * kidney, 0.12 * iy * kidney, 20.0, side * 20.0)
    if 0.36 < zn < 0.80:  # aorta and inferior vena cava in the abdomen
        paint.ellipse(0.06 * ix, 0.38 * iy, 11.0, 11.0, 160.0)
        paint.ellipse(-0.14 * ix, 0.36 * iy, 12.0, 10.0, 120.0)


def _draw_pelvis(paint: Painter, zn: float, ix: float, iy: float) -> None:
    wing = taper(zn, 0.68, 0.96)
    if wing > 0.0:
        for side in (-1.0, 1.0):
            paint.ellipse(side * 0.55 * ix, 0.35 * iy, 0.30 * ix * wing, 0.09 * iy, 420.0, side * 35.0)
            paint.ellipse(side * 0.55 * ix, 0.35 * iy, 0.26 * ix * wing, 0.05 * iy, 220.0, side * 35.0)
    bladder = taper(zn, 0.84, 1.02)
    if bladder > 0.0:
        paint.ellipse(0.0, -0.35 * iy, 0.25 * ix * bladder, 0.30 * iy * bladder, 8.0)
    femur = taper(zn, 0.90, 1.10)
    if femur > 0.0:
        for side in (-1.0, 1.0):
            paint.ellipse(side * 0.62 * ix, 0.05 * iy, 22.0 * femur, 22.0 * femur, 650.0)
            paint.ellipse(side * 0.62 * ix, 0.05 * iy, 15.0 * femur, 15.0 * femur, 280.0)


def _draw_spine(paint: Painter, zn: float, ix: float, iy: float) -> None:
    vx, vy = 0.0, 0.68 * iy
    radius = 14.0 + 6.0 * min(max(zn, 0.0), 1.0)
    for side in (-1.0, 1.0):  # paraspinal muscles
        paint.ellipse(side * 0.20 * ix, vy + 0.30 * iy, 0.14 * ix, 0.22 * iy, 52.0)
    if zn < 0.92:
        paint.ellipse(vx, vy, radius, radius * 0.85, 700.0)
        paint.ellipse(vx, vy, radius - 2.5, radius * 0.85 - 2.5, 230.0)
        paint.ellipse(vx, vy + radius + 14.0, 4.0, 14.0, 600.0)  # spinous process
        paint.ellipse(vx, vy + radius + 3.0, 5.0, 4.0, 10.0)  # spinal canal
    if zn < 0.55:  # ribs: oblique, so each shows on some slices only
        for k in range(7):
            angle = math.radians(25.0 + k * 22.0)
            if math.sin(zn * 60.0 + k * 1.7) > 0.1:
                for side in (-1.0, 1.0):
                    rx, ry = side * (ix + 4.0) * math.sin(angle), -(iy + 4.0) * math.cos(angle)
                    paint.ellipse(rx, ry, 5.0, 3.5, 650.0, side * math.degrees(angle))
