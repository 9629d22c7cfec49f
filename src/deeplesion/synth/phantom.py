"""Render CT slices of a synthetic patient (:mod:`~deeplesion.synth.anatomy`) with lesions, in HU.

One slice is rendered in four steps:

1. a tissue label image (uint8) at each of a few heights across the slice thickness, drawn with OpenCV's
   filled polygons in the study's pose (the patient lies a little shifted and rotated in every study);
2. labels -> HU through the study's look-up table (contrast phase, oral contrast); the lung vessels
   blended over the lung parenchyma as the share of each pixel's volume they fill across the whole slab
   (:func:`lung_vessel_share`: thin vessels are thinner than a pixel and than the slab), the liver's
   vessels over the liver in the same way (version 19); lesions painted
   on top from their exact 3D shape; the heights are averaged (a 5 mm slice averages 5 mm of anatomy);
3. tissue texture: smooth random fields, blended with weights that vary slowly along z so neighbouring
   slices agree, scaled per tissue; then a partial-volume blur;
4. correlated noise of the study's level, and the scanner's constant outside the circular field of view.

About 8 ms per 512x512 slice at 5 mm (two heights) and 3.5 ms at 1 mm on one core; the lesion masks
that annotations are measured from use the same function as the drawing (:func:`lesion_field`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from deeplesion.synth.anatomy import (
    IN_PLANE_VESSELS,
    LEVATOR_MM,
    LUNG_VESSEL_Z_EXTENT_MM,
    ORAL_CONTRAST_HU,
    ORGANS,
    RIB_LEVELS,
    TISSUE_HU,
    VESSELS,
    WALL_ORGANS,
    Body,
    Loop,
    Section,
    Tissue,
    Wall,
    bone_sections,
    drawn_lungs,
    femoral_heads,
    harmonic_jitter,
    hilum_opening,
    hip_joint_muscle,
    hip_muscles,
    levator_ani,
    mediastinum,
    organ_outline_to_wall,
    pelvic_ring,
    pelvic_wings,
    ray_exit,
    renal_sinus_extent,
    sacrum_parts,
    smooth_step,
    smooth_window,
    wing_muscles,
)

SHIFT = 4  # OpenCV subpixel bits: coordinates are multiplied by 2**SHIFT
SCALE = 1 << SHIFT


@dataclass(frozen=True)
class SliceGeometry:
    """How a series maps the body frame to pixels.

    Attributes
    ----------
    size
        Image width = height, pixels.
    spacing
        In-plane pixel spacing, mm.
    outside_hu
        Value outside the scanner's circular field of view (-1024 or -3024 in real slices).
    pose
        (angle radians, dx mm, dy mm): the patient's in-plane rotation and shift in this study; a body
        point p appears at R(angle) p + (dx, dy) mm from the image centre.
    """

    size: int
    spacing: float
    outside_hu: float
    pose: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def center_px(self) -> float:
        """Pixel coordinate of the image centre."""
        return (self.size - 1) / 2.0

    def to_px(self, x_mm: float, y_mm: float) -> tuple[float, float]:
        """Body millimetres -> pixel (col, row)."""
        points = self.points_to_px(np.array([[x_mm, y_mm]]))
        return float(points[0, 0]), float(points[0, 1])

    @property
    def px_affine(self) -> npt.NDArray[np.float64]:
        """(3, 2) map of body mm to pixels: ``[x, y, 1] @ px_affine = [col, row]`` (pose, then spacing)."""
        angle, dx, dy = self.pose
        k = 1.0 / self.spacing
        c = self.center_px
        cos, sin = math.cos(angle), math.sin(angle)
        return np.array([[cos * k, sin * k], [-sin * k, cos * k], [dx * k + c, dy * k + c]])

    def points_to_px(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """(N, 2) body (x, y) mm -> (N, 2) pixel (col, row)."""
        affine = self.px_affine
        return np.asarray(points @ affine[:2] + affine[2], dtype=np.float64)

    def to_body(
        self, cols: npt.NDArray[np.float64], rows: npt.NDArray[np.float64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Pixel coordinates (any shape) -> body (x, y) mm."""
        angle, dx, dy = self.pose
        xs = (cols - self.center_px) * self.spacing - dx
        ys = (rows - self.center_px) * self.spacing - dy
        cos, sin = math.cos(angle), math.sin(angle)
        return xs * cos + ys * sin, -xs * sin + ys * cos


@dataclass(frozen=True)
class StudyLook:
    """How one study's images look: contrast phase, oral contrast, noise and sharpness.

    Attributes
    ----------
    phase
        Index into :data:`~deeplesion.synth.anatomy.PHASES` (0 non-contrast, 1 arterial, 2 venous).
    oral_contrast
        Bowel content is bright (positive oral contrast).
    noise_hu
        Standard deviation of the image noise, HU (real slices: about 6-16 in uniform tissue).
    blur_px
        Partial-volume blur (Gaussian sigma), pixels.
    fat_hu
        The patient's fat offset, HU.
    """

    phase: int = 2
    oral_contrast: bool = False
    noise_hu: float = 11.0
    blur_px: float = 0.7
    fat_hu: float = 0.0

    def tables(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(256,) float32 HU and texture amplitude per tissue label."""
        hu = np.full(256, -1000.0, dtype=np.float32)
        amplitude = np.zeros(256, dtype=np.float32)
        for tissue, values in TISSUE_HU.items():
            hu[tissue] = values[self.phase]
            amplitude[tissue] = values[3]
        hu[Tissue.FAT] += self.fat_hu
        hu[Tissue.VISCERAL_FAT] += self.fat_hu
        if self.oral_contrast:
            hu[Tissue.BOWEL_CONTENT] = ORAL_CONTRAST_HU
            amplitude[Tissue.BOWEL_CONTENT] = 35.0
        return hu, amplitude


@dataclass(frozen=True)
class Lesion3D:
    """A lesion: an ellipsoid with a smooth random 3D deformation, and a type-typical appearance.

    Attributes
    ----------
    center
        (x, y, z) mm, body frame.
    semi_axes
        (a, b, c) mm: in-plane semi-axes along the rotated x and y directions, and along z.
    angle
        In-plane rotation of ``a``, radians.
    kind
        Lesion type (one of :data:`~deeplesion.synth.anatomy.REGIONS`).
    look
        Appearance: ``solid``, ``part-solid``, ``hypodense``, ``rim``, ``cyst``, ``node``, ``necrotic``,
        ``lytic``, ``sclerotic``.
    hu
        (3,) HU of the lesion's body per contrast phase.
    rim_hu, core_hu
        (3,) HU per phase of the rim (outer ``rim_width`` of the normalized radius) and of the core
        (inner ``core_fraction``); None when the lesion has none.
    bumps
        (K, 6) deformation terms: direction (3), spatial frequency, phase, amplitude; the surface sits at
        normalized radius ``1 + sum amplitude * cos(frequency * direction . n + phase)``.
    texture
        Amplitude of the lesion's internal texture, HU.
    spicules
        (K, 4) thin strands reaching out from the surface: unit direction (3, body frame) and length
        beyond the surface, mm. They are painted but are not part of the lesion's mask: RECIST measures
        the solid part.
    """

    center: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    angle: float
    kind: str
    look: str = "solid"
    hu: tuple[float, float, float] = (40.0, 60.0, 70.0)
    rim_hu: tuple[float, float, float] | None = None
    core_hu: tuple[float, float, float] | None = None
    rim_width: float = 0.2
    core_fraction: float = 0.5
    bumps: tuple[tuple[float, ...], ...] = ()
    texture: float = 6.0
    spicules: tuple[tuple[float, float, float, float], ...] = ()

    def scaled(self, factor: float) -> Lesion3D:
        """The same lesion grown (factor > 1) or shrunk about its centre."""
        from dataclasses import replace

        a, b, c = self.semi_axes
        return replace(self, semi_axes=(a * factor, b * factor, c * factor))

    def surface(
        self, nu: npt.NDArray[np.float64], nv: npt.NDArray[np.float64], nt: npt.NDArray[np.float64] | float
    ) -> npt.NDArray[np.float64]:
        """Normalized radius of the surface in the unit directions (nu, nv, nt) of the lesion's own axes
        (1 for a plain ellipsoid; see :attr:`bumps`); any shape."""
        surface = np.ones_like(nu)
        for wx, wy, wz, frequency, phase, amplitude in self.bumps:
            surface += amplitude * np.cos(frequency * (wx * nu + wy * nv + wz * nt) + phase)
        return surface

    @property
    def reach_mm(self) -> float:
        """A radius that holds the whole lesion, mm."""
        extra = 1.0 + sum(abs(b[5]) for b in self.bumps)
        return max(self.semi_axes) * extra


def lesion_field(
    lesion: Lesion3D, geometry: SliceGeometry, z: float
) -> tuple[slice, slice, npt.NDArray[np.float64]]:
    """Normalized radius of the lesion's surface at the pixels of the slice at height ``z``.

    Returns
    -------
    (rows, cols, s)
        Slices into the image and the (h, w) float64 ``s``: 0 at the centre, 1 on the surface; pixels
        with ``s <= 1`` are inside. Empty (0, 0) when the slice misses the lesion.
    """
    t = (z - lesion.center[2]) / lesion.semi_axes[2]
    reach = lesion.reach_mm
    if abs(z - lesion.center[2]) > reach:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0))
    col, row = geometry.to_px(lesion.center[0], lesion.center[1])
    reach_px = reach / geometry.spacing + 1.0
    c0, c1 = max(int(col - reach_px), 0), min(int(col + reach_px) + 2, geometry.size)
    r0, r1 = max(int(row - reach_px), 0), min(int(row + reach_px) + 2, geometry.size)
    if c0 >= c1 or r0 >= r1:
        return slice(0, 0), slice(0, 0), np.zeros((0, 0))
    rows_px, cols_px = np.mgrid[r0:r1, c0:c1].astype(np.float64)
    x, y = geometry.to_body(cols_px, rows_px)
    dx, dy = x - lesion.center[0], y - lesion.center[1]
    cos, sin = math.cos(lesion.angle), math.sin(lesion.angle)
    u = (dx * cos + dy * sin) / lesion.semi_axes[0]
    v = (-dx * sin + dy * cos) / lesion.semi_axes[1]
    q = np.sqrt(u * u + v * v + t * t)
    surface = np.ones_like(q)
    if lesion.bumps:
        safe = np.maximum(q, 1e-9)
        surface = lesion.surface(u / safe, v / safe, t / safe)
    return slice(r0, r1), slice(c0, c1), q / np.maximum(surface, 0.2)


def lesion_mask(
    lesion: Lesion3D, geometry: SliceGeometry, z: float
) -> tuple[slice, slice, npt.NDArray[np.bool_]]:
    """The pixels of ``lesion`` on the slice at height ``z`` (see :func:`lesion_field`): (rows, cols,
    (h, w) bool mask)."""
    rows, cols, s = lesion_field(lesion, geometry, z)
    return rows, cols, s <= 1.0


class FieldBank:
    """Spatially correlated random fields (unit standard deviation), cropped at random offsets."""

    MARGIN = 64

    def __init__(self, size: int, sigma_px: float, rng: np.random.Generator, fields: int = 3) -> None:
        import cv2

        side = size + self.MARGIN
        bank = []
        for _ in range(fields):
            white = rng.standard_normal((side, side), dtype=np.float32)
            smooth = cv2.GaussianBlur(white, (0, 0), sigma_px)
            bank.append(smooth / np.float32(smooth.std()))
        self.fields = bank
        self.size = size
        self._crops: list[npt.NDArray[np.float32]] | None = None

    def sample(self, rng: np.random.Generator) -> npt.NDArray[np.float32]:
        """(size, size) float32 field at a random offset (image noise: a new one per slice)."""
        field_ = self.fields[int(rng.integers(len(self.fields)))]
        dy, dx = (int(v) for v in rng.integers(0, self.MARGIN, 2))
        return field_[dy : dy + self.size, dx : dx + self.size]

    def along_z(self, z: float, periods: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """(size, size) float32 blend of the fields whose weights vary smoothly with ``z`` (tissue texture:
        the same in neighbouring slices, different a few centimetres away). ``periods``: (F, 2) period mm
        and phase per field."""
        import cv2

        if self._crops is None:
            self._crops = [np.ascontiguousarray(f[: self.size, : self.size]) for f in self.fields]
        weights = np.cos(2.0 * math.pi * z / periods[:, 0] + periods[:, 1])
        weights /= max(float(np.sqrt((weights**2).sum())), 1e-6)
        out = cv2.addWeighted(self._crops[0], float(weights[0]), self._crops[1], float(weights[1]), 0.0)
        for w, crop in zip(weights[2:], self._crops[2:], strict=True):
            out = cv2.scaleAdd(crop, float(w), out)
        return np.asarray(out, dtype=np.float32)


@dataclass
class Series:
    """What rendering one series needs besides the body: geometry, look, banks, lesions."""

    geometry: SliceGeometry
    look: StudyLook
    thickness: float
    lesions: list[Lesion3D]
    noise: FieldBank
    texture: FieldBank
    texture_periods: npt.NDArray[np.float64]
    fov_mask: npt.NDArray[np.bool_] = field(init=False, repr=False)
    hu_table: npt.NDArray[np.float32] = field(init=False, repr=False)
    amplitude_table: npt.NDArray[np.float32] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        size = self.geometry.size
        c = self.geometry.center_px
        ys, xs = np.ogrid[:size, :size]
        self.fov_mask = (xs - c) ** 2 + (ys - c) ** 2 > (size / 2.0) ** 2
        self.hu_table, self.amplitude_table = self.look.tables()


def make_series(
    geometry: SliceGeometry,
    look: StudyLook,
    thickness: float,
    lesions: list[Lesion3D],
    rng: np.random.Generator,
) -> Series:
    """Prepare the random fields of one series (noise: fine grain; texture: coarser, z-continuous)."""
    noise = FieldBank(geometry.size, 0.85, rng)
    texture = FieldBank(geometry.size, 2.2 * 0.8 / geometry.spacing, rng, fields=4)
    periods = np.column_stack([rng.uniform(25.0, 70.0, 4), rng.uniform(0.0, 2.0 * math.pi, 4)])
    return Series(geometry, look, thickness, lesions, noise, texture, periods)


def sub_heights(z: float, thickness: float) -> list[float]:
    """The heights averaged into a slice of ``thickness`` mm centred at ``z``: one per 2.5 mm, at the
    centres of equal parts of the slab (5 mm: z - 1.25 and z + 1.25; up to 2.5 mm: z alone)."""
    count = max(1, round(thickness / 2.5))
    step = thickness / count
    return [z + (i - (count - 1) / 2.0) * step for i in range(count)]


def render_slice(body: Body, series: Series, z: float, rng: np.random.Generator) -> npt.NDArray[np.int16]:
    """Render one axial slice centred at height ``z`` mm.

    Returns
    -------
    ndarray
        (size, size) int16 HU in [-3024, 3071].
    """
    import cv2

    geometry = series.geometry
    heights = sub_heights(z, series.thickness)
    size = geometry.size
    image = np.zeros((size, size), dtype=np.float32)
    amplitude = np.zeros((size, size), dtype=np.float32)
    # the lungs' vessels show in the parenchyma only (the mediastinum and the organs cover them), the
    # liver's in the liver (its lesions cover them)
    blends = []
    for table, tissue, vessel in (
        (body.vessels, Tissue.LUNG, Tissue.LUNG_VESSEL),
        (body.liver_vessels, Tissue.LIVER, Tissue.LIVER_VESSEL),
    ):
        layer = _vessel_layer(table, geometry, z, series.thickness).ravel()
        # a few percent of a slice, blended one by one; found in a bool mask (15 times faster than uint8)
        pixels = np.flatnonzero(layer != 0)
        share = layer[pixels].astype(np.float32) / np.float32(255.0)
        blends.append((pixels, share, tissue, series.hu_table[vessel]))
    for i, height in enumerate(heights):
        labels = render_labels(body, geometry, height, (heights[0], heights[-1]))
        base = np.asarray(cv2.LUT(labels, series.hu_table), dtype=np.float32)
        flat = base.reshape(-1)
        for vessel_pixels, vessel_share, tissue, vessel_hu in blends:
            inside = labels.ravel()[vessel_pixels] == tissue
            pixels = vessel_pixels[inside]
            flat[pixels] += vessel_share[inside] * (vessel_hu - flat[pixels])
        if i == 0:  # the texture's strength follows the first height's tissues
            amplitude = np.asarray(cv2.LUT(labels, series.amplitude_table), dtype=np.float32)
        _paint_lesions(base, amplitude, series, height)
        image += base
    image /= np.float32(len(heights))
    image += amplitude * series.texture.along_z(z, series.texture_periods)
    image = np.asarray(cv2.GaussianBlur(image, (0, 0), series.look.blur_px), dtype=np.float32)
    image += series.noise.sample(rng) * np.float32(series.look.noise_hu)
    image[series.fov_mask] = geometry.outside_hu
    return np.clip(np.rint(image), -3024, 3071).astype(np.int16)


EDGE_MM = {"hypodense": 2.0, "solid": 1.2, "necrotic": 1.5, "rim": 0.8, "lytic": 1.5, "part-solid": 1.0}
"""How far inside its surface a lesion of each look blends into its surroundings, mm: metastases and
masses have ill-defined margins; cysts, nodes and sclerotic lesions keep sharp ones."""


def _paint_lesions(
    base: npt.NDArray[np.float32], amplitude: npt.NDArray[np.float32], series: Series, z: float
) -> None:
    phase = series.look.phase
    for lesion in series.lesions:
        rows, cols, s = lesion_field(lesion, series.geometry, z)
        inside = s <= 1.0
        if not inside.any():
            continue
        radius = max(min(lesion.semi_axes[:2]), 1.0)
        values = np.full(s.shape, lesion.hu[phase], dtype=np.float32)
        if lesion.rim_hu is not None:
            values[s > 1.0 - lesion.rim_width] = lesion.rim_hu[phase]
        if lesion.core_hu is not None:
            # a core fades into the lesion's body over 1.5 mm instead of ending at a drawn circle
            fade = np.clip((lesion.core_fraction - s) * radius / 1.5 + 0.5, 0.0, 1.0)
            values += (np.float32(lesion.core_hu[phase]) - values) * fade.astype(np.float32)
        if lesion.look == "lytic":  # a few bone fragments remain inside a lytic lesion
            values[(s > 0.55) & (s < 0.62)] = 600.0
        region = base[rows, cols]
        # where a lesion near the skin reaches past the body, it lifts the skin over it
        outside = region == series.hu_table[Tissue.AIR]
        skin = outside & (s > 1.0) & (s <= 1.0 + 2.0 / radius)
        region[skin] = series.hu_table[Tissue.SKIN]
        # the margin: within EDGE_MM of the surface the lesion blends into what is around it (its mask, and
        # so its measurement, still ends at the surface)
        edge = EDGE_MM.get(lesion.look, 0.0)
        weight = np.clip((1.0 - s) * radius / edge, 0.0, 1.0) if edge > 0.0 else np.ones_like(s)
        region[inside] += (values[inside] - region[inside]) * weight[inside].astype(np.float32)
        # larger masses are more heterogeneous: the texture grows with the radius up to x2 at 20 mm (version
        # 16; growing on, a mass of 110 mm across had 3.8 times the texture: a mottle like stool)
        amplitude[rows, cols][inside] = lesion.texture * (1.0 + min(radius, 20.0) / 20.0)
        if lesion.spicules:
            _paint_spicules(base, lesion, series.geometry, z, float(lesion.hu[phase]))


def _paint_spicules(
    base: npt.NDArray[np.float32], lesion: Lesion3D, geometry: SliceGeometry, z: float, hu: float
) -> None:
    """Draw the parts of the lesion's spicules that pass within 1.5 mm of height ``z``: 2 px wide near
    the surface, 1 px further out."""
    import cv2

    cos, sin = math.cos(lesion.angle), math.sin(lesion.angle)
    a, b, c = lesion.semi_axes
    steps = np.linspace(0.0, 1.0, 12)
    for dx, dy, dz, length in lesion.spicules:
        du, dv = dx * cos + dy * sin, -dx * sin + dy * cos
        start = 0.85 / math.sqrt((du / a) ** 2 + (dv / b) ** 2 + (dz / c) ** 2)  # just inside the surface
        reach = start + steps * (length + 0.15 * start)
        heights = lesion.center[2] + reach * dz
        near = np.abs(heights - z) < 1.5
        if near.sum() < 2:
            continue
        points = np.column_stack([lesion.center[0] + reach * dx, lesion.center[1] + reach * dy])[near]
        px = np.rint(geometry.points_to_px(points) * SCALE).astype(np.int32)
        half = max(len(px) // 2, 2)
        cv2.polylines(base, [px[:half]], False, hu, 2, cv2.LINE_8, SHIFT)
        cv2.polylines(base, [px[half - 1 :]], False, hu, 1, cv2.LINE_8, SHIFT)


class Canvas:
    """Fills polygons given in body millimetres into a uint8 label image, in the series' pose."""

    def __init__(self, labels: npt.NDArray[np.uint8], geometry: SliceGeometry) -> None:
        self.labels = labels
        self.geometry = geometry
        self.matrix = geometry.px_affine * SCALE  # body mm -> OpenCV's subpixel units

    def _px(self, points: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
        return np.asarray(np.rint(points @ self.matrix[:2] + self.matrix[2]), dtype=np.int32)

    def section(self, section: Section | None, tissue: Tissue, *, inset_mm: float = 0.0) -> None:
        """Fill a cross-section (shrunk by ``inset_mm`` on every side)."""
        if section is None:
            return
        if inset_mm:
            if section.a <= inset_mm or section.b <= inset_mm:
                return
            # version 14: keep every other field (the body's flat back: the inset fat was an ellipse inside
            # a superellipse skin, which left a skin band several mm thick at the back corners)
            front = None if section.front_b is None else section.front_b - inset_mm
            section = replace(section, a=section.a - inset_mm, b=section.b - inset_mm, front_b=front)
        self.polygon(section.polygon(), tissue)

    def polygon(
        self, points: npt.NDArray[np.float64], tissue: Tissue, *, keep: tuple[Tissue, ...] = ()
    ) -> None:
        """Fill the closed polygon through (N, 2) points mm (nothing for fewer than 3), but for the pixels
        already labelled one of ``keep``."""
        import cv2

        if len(points) < 3:
            return
        if not keep:
            cv2.fillPoly(self.labels, [self._px(points)], int(tissue), cv2.LINE_8, SHIFT)
            return
        inside = np.zeros_like(self.labels)
        cv2.fillPoly(inside, [self._px(points)], 1, cv2.LINE_8, SHIFT)
        fill = inside.astype(bool) & ~np.isin(self.labels, keep)
        self.labels[fill] = int(tissue)

    def circle(self, x: float, y: float, radius: float, tissue: Tissue) -> None:
        """Fill a disc of ``radius`` mm."""
        import cv2

        if radius <= 0.0:
            return
        m = self.matrix
        centre = (round(x * m[0, 0] + y * m[1, 0] + m[2, 0]), round(x * m[0, 1] + y * m[1, 1] + m[2, 1]))
        r = max(round(radius / self.geometry.spacing * SCALE), 1)
        cv2.circle(self.labels, (int(centre[0]), int(centre[1])), r, int(tissue), -1, cv2.LINE_8, SHIFT)

    def circles(
        self, centres: npt.NDArray[np.float64], radii: npt.NDArray[np.float64], tissue: Tissue
    ) -> None:
        """Fill discs at (N, 2) ``centres`` mm of (N,) ``radii`` mm: the same pixels as :meth:`circle` per
        disc, converted to pixels in one step (a small-bowel run is dozens of discs)."""
        import cv2

        keep = radii > 0.0
        centres_px = self._px(centres[keep]).tolist()
        radii_px = np.maximum(np.rint(radii[keep] / self.geometry.spacing * SCALE), 1).astype(int).tolist()
        for (col, row), radius in zip(centres_px, radii_px, strict=True):
            cv2.circle(self.labels, (col, row), radius, int(tissue), -1, cv2.LINE_8, SHIFT)

    def line(self, points: npt.NDArray[np.float64], thickness_mm: float, tissue: Tissue) -> None:
        """A thick open polyline through (N, 2) points mm (ribs, bone plates, the table)."""
        import cv2

        if len(points) < 2:
            return
        width = max(round(thickness_mm / self.geometry.spacing), 1)
        cv2.polylines(self.labels, [self._px(points)], False, int(tissue), width, cv2.LINE_8, SHIFT)

    def segments(
        self,
        starts: npt.NDArray[np.float64],
        ends: npt.NDArray[np.float64],
        thickness_mm: npt.NDArray[np.float64],
        tissue: Tissue,
    ) -> None:
        """Thick straight segments from (N, 2) ``starts`` to (N, 2) ``ends`` mm, each (N,) ``thickness_mm``
        wide: the same pixels as :meth:`line` per segment, drawn in one OpenCV call per pixel width."""
        import cv2

        if len(starts) == 0:
            return
        widths = np.maximum(np.rint(thickness_mm / self.geometry.spacing), 1).astype(int)
        lines = np.stack([self._px(starts), self._px(ends)], axis=1)  # (N, 2, 2) int32
        for width in np.unique(widths):
            chosen = list(lines[widths == width])
            cv2.polylines(self.labels, chosen, False, int(tissue), int(width), cv2.LINE_8, SHIFT)


def render_labels(
    body: Body, geometry: SliceGeometry, z: float, slab: tuple[float, float] | None = None
) -> npt.NDArray[np.uint8]:
    """(size, size) uint8 tissue labels (:class:`~deeplesion.synth.anatomy.Tissue`) at height ``z`` mm.

    ``slab`` (lowest and highest sampled height of the slice being rendered, mm; default ``z`` alone) is
    where the ribs are cut: a rib descends steeply, and cut separately at each sampled height its two
    cuts overlapped as offset rings, averaged into a chain of links (before version 16).
    """
    labels = np.zeros((geometry.size, geometry.size), dtype=np.uint8)
    canvas = Canvas(labels, geometry)
    zn = body.zn(z)
    outline = body.outline(z)
    cavity = body.cavity(z)
    _draw_table(canvas, outline, geometry)
    breasts = _breasts(body, outline, zn)
    for breast in breasts:
        canvas.section(breast, Tissue.SKIN)
    canvas.section(outline, Tissue.SKIN)
    canvas.section(outline, Tissue.FAT, inset_mm=2.0)
    for breast in breasts:  # fat again over the body's skin line at the breast's base, then the gland
        canvas.section(breast, Tissue.FAT, inset_mm=2.0)
        gland = Section(breast.cx, breast.cy + 0.15 * breast.b, 0.55 * breast.a, 0.5 * breast.b, breast.angle)
        canvas.section(gland, Tissue.GLAND)
    lungs = drawn_lungs(body, z)
    wall = body.wall(z, lungs)
    canvas.polygon(wall.outer, Tissue.MUSCLE)
    for plane in wall.planes:
        canvas.line(plane, 1.0, Tissue.FAT)  # thin: a faint seam after the blur, as on real CT
    if zn > 0.52:  # the linea alba between the two rectus muscles: a faint seam (2.5 mm of fat before
        # version 16 drew a dark cut down the front of every abdominal slice)
        canvas.line(np.array([[0.0, cavity.cy], [0.0, -outline.front]]), 1.0, Tissue.FAT)
    _draw_shoulders(canvas, outline, wall, zn)
    _draw_clavicles(canvas, body, cavity, (z, z) if slab is None else slab)
    canvas.section(cavity, Tissue.VISCERAL_FAT)
    _draw_mesenteric_vessels(canvas, body, z, cavity)
    for name in (
        "psoas_R",
        "psoas_L",
        "gluteal_R",
        "gluteal_L",
        "obturator_R",
        "obturator_L",
    ):
        canvas.section(body.organ(name, z), Tissue.MUSCLE)
    _draw_bowel(canvas, body, z, cavity)
    # version 13: the organs under the diaphragm are drawn over the lungs and the heart over both. The
    # diaphragm is a dome, so a slice through it cuts the liver, spleen and stomach with the lung bases
    # round them as crescents; drawn under the lungs, the liver's dome was hidden until zn 0.555 and the
    # lung bases were round black spaces over the upper abdomen
    # version 14: the liver and spleen reach the abdominal wall, except where the lungs lie between them
    # and the ribs (drawn under the lungs; their sections, where lesions lie, over them)
    for name in WALL_ORGANS:
        reaching = organ_outline_to_wall(body, name, z)
        if reaching is not None:
            canvas.polygon(reaching, ORGANS[name][0])
    _draw_lungs(canvas, lungs)
    middle = mediastinum(body, z)
    if middle is not None:  # the mediastinum between the lungs, its organs drawn in it below
        canvas.section(middle, Tissue.VISCERAL_FAT)
    _draw_abdomen(canvas, body, z)
    _draw_heart(canvas, body, z)
    # behind the spine, over the lungs' and kidneys' back edges (the ribs and their muscles are there)
    for name in ("paraspinal_R", "paraspinal_L"):
        muscle = body.organ(name, z)
        canvas.section(muscle, Tissue.MUSCLE)
        if muscle is not None:  # the fat seam between multifidus (medial) and erector spinae (lateral)
            side = 1.0 if muscle.cx > 0.0 else -1.0
            start = np.array([muscle.cx - side * 0.35 * muscle.a, muscle.cy - 0.75 * muscle.b])
            step = np.array([side * 0.45 * muscle.a, 1.5 * muscle.b])
            bulge = np.array([side * 0.12 * muscle.a, 0.0])  # bowed outward, not a ruled line
            seam = np.array([start, start + 0.5 * step + bulge, start + step])
            canvas.line(seam, 1.0, Tissue.FAT)
    _draw_kidneys(canvas, body, z)
    for name in (
        "aorta_ascending",
        "brachiocephalic_trunk",
        "carotid_L",
        "subclavian_L",
        "brachiocephalic_vein_R",
        "aorta",
        "pulmonary_trunk",
        "svc",
        "ivc",
        "portal_vein",
        "iliac_R",
        "iliac_L",
        "esophagus",
    ):
        tube = body.vessel(name, z)
        if tube is not None:
            canvas.circle(*tube, VESSELS[name][0])
    for name, (tissue, *_) in IN_PLANE_VESSELS.items():
        band = body.in_plane_vessel(name, z)
        if band is not None:
            canvas.line(band[0], 2.0 * band[1], tissue)
    _draw_airways(canvas, body, z)
    _draw_bones(canvas, body, z, zn, cavity, wall, (z, z) if slab is None else slab)
    return labels


def _breasts(body: Body, outline: Section, zn: float) -> list[Section]:
    """The breasts at normalized height ``zn``: ellipses on the front of the chest, standing out
    up to 0.7 ``body.breast_mm`` at their middle height (none for a body without)."""
    if body.breast_mm <= 0.0 or not 0.37 <= zn <= 0.50:
        return []
    depth = body.breast_mm * math.sin(math.pi * (zn - 0.37) / 0.13)
    if depth < 3.0:
        return []
    sections = []
    for side in (-1.0, 1.0):
        x = side * 0.45 * outline.a
        # the front of the outline at x (its ellipse without the wobble is close enough for a base)
        y = -outline.front * math.sqrt(max(1.0 - 0.45**2, 0.0))
        sections.append(Section(x, y + 0.3 * depth, 1.3 * depth + 25.0, depth, side * 0.35))
    return sections


def _draw_table(canvas: Canvas, outline: Section, geometry: SliceGeometry) -> None:
    """The patient table: a curved cradle under the back, its two shells meeting at its edges, level in
    the image whatever the patient's pose (it belongs to the scanner, not to the body)."""
    angle = geometry.pose[0]
    half = 1.1 * outline.a
    u = np.linspace(-1.0, 1.0, 41)
    xs = half * u  # scanner mm, relative to the body's shifted centre
    # a cradle (version 9: two nearly flat bands before): the top shell, 14 mm under the back (the pad
    # between), rises 50 mm to its edges; the bottom shell, 25 mm below it in the middle, meets it there
    top = outline.b + 14.0 - 50.0 * u**2
    cos, sin = math.cos(angle), math.sin(angle)
    for ys in (top, top + 25.0 * (1.0 - u**2)):
        # body point p with R p + d = scanner point: p = R^T (scanner - d); here scanner - d = (xs, ys)
        canvas.line(np.column_stack([xs * cos + ys * sin, -xs * sin + ys * cos]), 2.5, Tissue.TABLE)


def _draw_shoulders(canvas: Canvas, outline: Section, wall: Wall, zn: float) -> None:
    """The scapulae (thin blades in the muscles behind the chest wall, thicker at their lateral border)
    and the humeral heads at the top of the chest."""
    for blade in wall.blades:
        canvas.line(blade, 2.0, Tissue.CORTICAL)
        x, y = float(blade[-1, 0]), float(blade[-1, 1])
        canvas.circle(x, y, 5.5, Tissue.CORTICAL)  # the lateral border and the neck of the glenoid
        canvas.circle(x, y, 2.5, Tissue.RIB_MARROW)
        spine = smooth_window(zn, (0.35, 0.37), (0.40, 0.42))
        if spine > 0.2:  # the spine of the scapula leaves the blade toward the midline: the cut is a Y
            limb = 22.0 * spine * np.array([-math.copysign(0.95, x), 0.3])
            canvas.line(np.array([blade[1], blade[1] + limb]), 3.0, Tissue.CORTICAL)
    if 0.33 <= zn <= 0.37:
        radius = 24.0 * math.sin(math.pi * (zn - 0.33) / 0.04)
        for side in (-1.0, 1.0):
            canvas.circle(side * 0.84 * outline.a, 0.05 * outline.b, radius, Tissue.CORTICAL)
            canvas.circle(side * 0.84 * outline.a, 0.05 * outline.b, radius - 3.0, Tissue.TRABECULAR)


CLAVICLE_ZN = (0.385, 0.345)
"""Normalized height of the clavicle's medial end (beside the manubrium's top) and of its lateral end
(toward the acromion, higher)."""
CLAVICLE_MM = (11.0, 6.0)
"""A clavicle's width in the slice and half its height along z, mm."""


def _draw_clavicles(canvas: Canvas, body: Body, cavity: Section, slab: tuple[float, float]) -> None:
    """The clavicles (version 22; none before): each a bar from beside the manubrium's top out past the
    cavity's side, 10 mm in front of the cavity, rising toward the shoulder (:data:`CLAVICLE_ZN`), cut
    like a rib where its height lies within half its height of the ``slab`` (lowest and highest sampled
    height, mm): in front of the upper lungs, a long bar where the slice runs along it."""
    width, half_height = CLAVICLE_MM
    t = np.linspace(0.0, 1.0, 48)
    height = (CLAVICLE_ZN[0] + t * (CLAVICLE_ZN[1] - CLAVICLE_ZN[0])) * body.height_mm
    hit = (height > slab[0] - half_height) & (height < slab[1] + half_height)
    if not hit.any():
        return
    # from beside the manubrium out past the cavity's side, following its front 10 mm out (so the bone
    # keeps 4.5 mm off it) and turning back toward the shoulder
    across = 20.0 + t * (cavity.a - 8.0)
    front = cavity.cy - cavity.b * np.sqrt(np.maximum(1.0 - (across / (cavity.a + 15.0)) ** 2, 0.02)) - 10.0
    for side in (-1.0, 1.0):
        points = np.column_stack([side * across, front])
        canvas.line(points[hit], width, Tissue.CORTICAL)
        canvas.line(points[hit], width - 4.0, Tissue.TRABECULAR)


BOWEL_WALL_MM = 1.6
"""Bowel wall thickness, mm (version 10; 2.2 before drew every loop with a bright ring, and adjacent
loops as overlapping bubbles: a distended real wall is 1-2 mm, blurred by the partial volume)."""


def gas_cap(lumen: npt.NDArray[np.float64], level: float) -> npt.NDArray[np.float64]:
    """The part of a closed (N, 2) ``lumen`` outline (mm) in front of an air-fluid ``level`` (y <= level:
    gas rises to the front of a supine patient), as an (M, 2) outline. Version 13: the lumen's vertices
    behind the level were moved onto it, which also drew a one-pixel line of gas along the level out to
    where the lumen is widest, through the wall and beyond it."""
    following = np.roll(lumen, -1, axis=0)
    front, front_next = lumen[:, 1] <= level, following[:, 1] <= level
    crosses = front != front_next
    rise = following[:, 1] - lumen[:, 1]
    t = np.where(crosses, (level - lumen[:, 1]) / np.where(crosses, rise, 1.0), 0.0)
    crossing = lumen + t[:, None] * (following - lumen)
    # each edge contributes its start (when in front) and then its crossing of the level (when it has one)
    points = np.stack([lumen, crossing], axis=1).reshape(-1, 2)
    keep = np.stack([front, crosses], axis=1).reshape(-1)
    return np.asarray(points[keep], dtype=np.float64)


@dataclass
class BowelPiece:
    """One small-bowel loop as a slice cuts it, for :func:`_draw_packed_bowel`: a union of discs (one for a
    loop cut across, dozens along a run), what fills it and what is drawn inside it."""

    centres: npt.NDArray[np.float64]  # (K, 2) disc centres, mm
    radii: npt.NDArray[np.float64]  # (K,) disc radii to the wall's outer surface, mm
    content: Tissue  # the lumen's content; BOWEL_WALL for a collapsed loop, all wall
    gas_level: float | None = None  # gas fills the lumen in front of (y <=) this level, mm
    # (M, 2) starts and ends of lines of wall drawn inside the lumen (the jejunum's folds, a collapsed
    # loop's slit of fluid), their widths mm and their tissue
    marks: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], Tissue] | None = (
        None
    )


def _draw_bowel(canvas: Canvas, body: Body, z: float, cavity: Section) -> None:
    """The bowel at height ``z`` mm: each colon drawn whole (:func:`_draw_colon`), then the small-bowel
    loops the slice cuts (:class:`BowelPiece`) packed against one another and the colon
    (:func:`_draw_packed_bowel`)."""
    zn = body.zn(z)
    # the ascending and descending colon leave the flanks below the kidneys for the iliac fossae, in front
    # of and inside the iliac wings (zn 0.64-0.74; a smooth step, so that neighbouring slices agree)
    fossa = smooth_step(zn, 0.64, 0.74)
    colon = np.zeros_like(canvas.labels)  # the colon's pixels, which the small bowel packs against
    pieces: list[BowelPiece] = []
    for loop in body.loops:
        t = (z - loop.z_mid) / loop.half_length
        if abs(t) >= 1.0:
            continue
        r = loop.radius * math.sqrt(1.0 - t * t) * (1.0 if loop.colon else 0.9 + 0.2 * abs(math.sin(z * 0.2)))
        offset = z - loop.z_mid
        x = (loop.cx + loop.drift_x * offset) * cavity.a
        y = cavity.cy + (loop.cy + loop.drift_y * offset) * cavity.b
        if loop.colon and abs(loop.cx) > 0.5:
            x *= 1.0 - 0.3 * fossa
            y -= 0.35 * fossa * cavity.b
        content = Tissue.BOWEL_CONTENT if loop.opacified else Tissue.BOWEL_FLUID
        if loop.colon:
            _draw_colon(canvas, loop, x, y, r, z)
            Canvas(colon, canvas.geometry).section(Section(x, y, r, r, 0.0, loop.haustra), Tissue.BOWEL_WALL)
            continue
        if loop.collapsed:
            # an empty loop: a small knot of wall around a slit of fluid
            r = max(0.5 * r, min(r, 4.0))  # tapers with the loop's ends, as r does
            slit = (np.array([[x - 0.4 * r, y]]), np.array([[x + 0.4 * r, y]]), np.array([1.0]), content)
            pieces.append(BowelPiece(np.array([[x, y]]), np.array([r]), Tissue.BOWEL_WALL, marks=slit))
        elif loop.run_mm > 0.0:
            # small bowel runs within the slice for a while: a curved sausage, not a disc
            jejunum = loop.cx > -0.2 and loop.z_mid < 0.72 * body.height_mm  # upper left: folds show
            pieces.append(
                _bowel_run(loop, x, y, r, math.sqrt(1.0 - t * t) * loop.run_mm, z, content, jejunum)
            )
        else:
            inner = r - BOWEL_WALL_MM
            level = _gas_level(y, inner, loop.gas) if loop.gas > 0.0 and inner > 1.0 else None
            pieces.append(BowelPiece(np.array([[x, y]]), np.array([r]), content, level))
    _draw_packed_bowel(canvas, pieces, colon.astype(bool))


def _gas_level(y: float, inner: float, share: float) -> float:
    """The air-fluid level (body y, mm) in a lumen of radius ``inner`` mm centred at ``y``, when gas fills
    ``share`` of its diameter: gas rises to the front (smaller y) of a supine patient."""
    return y - inner + 2.0 * inner * share


def _draw_colon(canvas: Canvas, loop: Loop, x: float, y: float, r: float, z: float) -> None:
    """A colon at (``x``, ``y``) mm of radius ``r`` mm: a lobulated wall (the haustra) round stool
    mottled with small bubbles of gas, gas above a level where it has some."""
    wall = Section(x, y, r, r, 0.0, loop.haustra)
    canvas.section(wall, Tissue.BOWEL_WALL)
    inner = r - BOWEL_WALL_MM
    if inner <= 1.0:
        return
    canvas.section(wall, Tissue.STOOL, inset_mm=BOWEL_WALL_MM)
    if loop.gas > 0.0:
        lumen = Section(x, y, inner, inner, 0.0, loop.haustra).polygon()
        canvas.polygon(gas_cap(lumen, _gas_level(y, inner, loop.gas)), Tissue.GAS)
    if len(loop.bubbles):
        dz = z - (loop.z_mid + loop.bubbles[:, 2])
        seen = np.abs(dz) < loop.bubbles[:, 3]
        for u, v, d, radius in zip(
            *loop.bubbles[seen].T[[0, 1]], dz[seen], loop.bubbles[seen, 3], strict=True
        ):
            canvas.circle(x + u * inner, y + v * inner, math.sqrt(radius * radius - d * d), Tissue.GAS)


def _bowel_run(
    loop: Loop, x: float, y: float, r: float, length: float, z: float, content: Tissue, folds: bool
) -> BowelPiece:
    """A small-bowel segment cut along its course: discs along a bent line, close enough to merge, with
    ``folds`` (the jejunum's) across an opacified lumen. Gas, where a loop has some, is drawn only where a
    loop is cut across: a strip along a whole run looked like a drawn line."""
    bend = 0.9 * math.sin(loop.z_mid * 0.37 + z * 0.02)
    s = np.linspace(-0.5, 0.5, 9)
    angles = loop.heading + bend * s
    xs = x + length * s * np.cos(angles)
    ys = y + length * s * np.sin(angles)
    # its calibre varies along the run by up to a fifth either way (version 9: a tube of one width looked
    # drawn)
    dense = np.linspace(-0.5, 0.5, max(int(length / (0.5 * r)) + 2, 3))
    along_xy = np.column_stack([np.interp(dense, s, xs), np.interp(dense, s, ys)])
    calibre = r * (1.0 + 0.2 * np.sin(loop.z_mid * 0.11 + 7.0 * dense))
    piece = BowelPiece(along_xy, calibre, content)
    lumen = 2.0 * (r - BOWEL_WALL_MM)
    if folds and content == Tissue.BOWEL_CONTENT and lumen > 6.0:
        # the folds of the jejunum across its lumen, every 5 mm: its feathery look with oral contrast
        along = np.cumsum(np.r_[0.0, np.hypot(np.diff(xs), np.diff(ys))])
        marks = np.arange(2.5, along[-1] - 1.0, 5.0)
        if len(marks):
            centres = np.column_stack([np.interp(marks, along, xs), np.interp(marks, along, ys)])
            heading = np.interp(marks, along, angles) + 0.5 * math.pi
            half = 0.5 * lumen * np.column_stack([np.cos(heading), np.sin(heading)])
            piece.marks = (centres - half, centres + half, np.full(len(marks), 0.8), Tissue.BOWEL_WALL)
    return piece


def _draw_packed_bowel(canvas: Canvas, pieces: list[BowelPiece], colon: npt.NDArray[np.bool_]) -> None:
    """Draw small-bowel loops pressed against one another and against the colon (version 21). Each pixel
    inside any loop belongs to the loop whose surface it lies deepest inside (the greatest distance in from
    the edge of its union of discs), so two loops that overlap meet along one flat wall of twice
    :data:`BOWEL_WALL_MM`, as real loops packed in the abdomen do. Versions 8-20 drew loop after loop, each
    a full ring over the ones before: every later loop cut a round bite out of its neighbours' lumens, and
    the abdomen looked like bubble wrap. ``colon``: (size, size) pixels the colon already holds, kept."""
    if not pieces:
        return
    import cv2

    geometry = canvas.geometry
    size = geometry.size
    wall_px = BOWEL_WALL_MM / geometry.spacing
    # every loop's discs in pixels at once, and each loop's box (low inclusive, high exclusive)
    counts = [len(piece.radii) for piece in pieces]
    first = np.r_[0, np.cumsum(counts)[:-1]]
    centres = geometry.points_to_px(np.concatenate([piece.centres for piece in pieces]))
    radii = np.concatenate([piece.radii for piece in pieces]) / geometry.spacing
    low = np.floor(np.minimum.reduceat(centres - radii[:, None], first)).astype(int) - 1
    high = np.ceil(np.maximum.reduceat(centres + radii[:, None], first)).astype(int) + 2
    low, high = np.clip(low, 0, size), np.clip(high, 0, size)
    fixed = np.rint((centres - np.repeat(low, counts, axis=0)) * SCALE).astype(int).tolist()
    fixed_radii = np.maximum(np.rint(radii * SCALE), 1).astype(int).tolist()
    (left, top), (right, bottom) = low.min(axis=0).tolist(), high.max(axis=0).tolist()
    if right <= left or bottom <= top:
        return
    boxes = [(lo, hi) for lo, hi in zip(low.tolist(), high.tolist(), strict=True)]
    # the greatest depth (pixels) inside a loop's surface (0 outside every loop), and whose it is; depths
    # from a distance transform of each loop's mask in its box: far cheaper
    # than exact distances to each of a run's dozens of discs (a 5x5 mask: within 2%, a quarter of the
    # exact transform's time)
    best = np.zeros((bottom - top, right - left), dtype=np.float32)
    owner = np.full(best.shape, -1, dtype=np.int16)
    for i, ((x0, y0), (x1, y1)) in enumerate(boxes):
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        for k in range(first[i], first[i] + counts[i]):
            cv2.circle(mask, fixed[k], fixed_radii[k], 1, -1, cv2.LINE_8, SHIFT)
        depth = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_5)
        window = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        here = best[window]
        owner[window][depth > here] = i
        np.maximum(here, depth, out=here)
    region = (slice(top, bottom), slice(left, right))
    inside = (best > 0.0) & ~colon[region]
    # where two loops meet: each pixel's owner differs from its right or lower neighbour's; the wall is
    # what lies within a wall's width of the owner's surface or of that line (so it is one wall thick on
    # each side of it, and widens into the outer walls where the surfaces meet)
    meet = np.zeros(best.shape, dtype=np.uint8)
    meet[:, 1:] |= (owner[:, 1:] != owner[:, :-1]) & inside[:, 1:] & inside[:, :-1]
    meet[1:, :] |= (owner[1:, :] != owner[:-1, :]) & inside[1:, :] & inside[:-1, :]
    to_meet = cv2.distanceTransform(1 - meet, cv2.DIST_L2, cv2.DIST_MASK_5)
    labels = canvas.labels[region]
    contents = np.array([int(piece.content) for piece in pieces], dtype=np.uint8)
    lumen = inside & (best > wall_px) & (to_meet >= wall_px)
    labels[inside] = int(Tissue.BOWEL_WALL)
    labels[lumen] = contents[owner[lumen]]
    drawn = np.zeros((size, size), dtype=np.uint8)  # one loop's marks at a time
    for i, piece in enumerate(pieces):
        if piece.marks is None and piece.gas_level is None:
            continue
        (x0, y0), (x1, y1) = boxes[i]
        window = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
        mine = lumen[window] & (owner[window] == i)
        if piece.marks is not None:  # kept inside the loop's own lumen
            starts, ends, widths, tissue = piece.marks
            Canvas(drawn, geometry).segments(starts, ends, widths, tissue)
            labels[window][mine & (drawn[y0:y1, x0:x1] != 0)] = int(tissue)
            drawn[y0:y1, x0:x1] = 0  # the marks lie inside the loop's discs, so inside its box
        if piece.gas_level is not None:
            rows, cols = np.nonzero(mine)
            _, y = geometry.to_body((cols + x0).astype(np.float64), (rows + y0).astype(np.float64))
            front = y <= piece.gas_level
            labels[window][rows[front], cols[front]] = int(Tissue.GAS)


def _draw_abdomen(canvas: Canvas, body: Body, z: float) -> None:
    """The organs under the diaphragm (:data:`~deeplesion.synth.anatomy.UNDER_DIAPHRAGM`, in that order),
    then the bladder with the uterus or prostate behind it."""
    stomach = body.organ("stomach", z)
    if stomach is not None:
        canvas.section(stomach, Tissue.BOWEL_WALL)
        canvas.section(stomach, Tissue.BOWEL_CONTENT, inset_mm=3.0)  # oral contrast reaches it first
        if stomach.a > 6.0 and stomach.b > 6.0:
            # gas rises to the front over a flat air-fluid level (version 13; an ellipse of gas before)
            lumen = replace(stomach, a=stomach.a - 3.0, b=stomach.b - 3.0).polygon()
            level = float(lumen[:, 1].min()) + body.stomach_gas * float(np.ptp(lumen[:, 1]))
            canvas.polygon(gas_cap(lumen, level), Tissue.GAS)
    liver = body.organ("liver", z)
    if liver is not None:
        canvas.section(liver, Tissue.LIVER)
    canvas.section(body.organ("gallbladder", z), Tissue.BILE)
    canvas.section(body.organ("spleen", z), Tissue.SPLEEN)
    canvas.section(body.organ("pancreas", z), Tissue.PANCREAS)
    sling = levator_ani(body, z)
    if sling is not None:
        canvas.line(sling, LEVATOR_MM, Tissue.MUSCLE)
    canvas.section(body.organ("pelvic_organ", z), Tissue.PELVIC_ORGAN)
    rectum = body.vessel("rectum", z)
    if rectum is not None:
        # version 13: defined since version 2 but never drawn (the pelvis behind the bladder was all fat)
        x, y, radius = rectum
        canvas.circle(x, y, radius, Tissue.BOWEL_WALL)
        canvas.circle(x, y, radius - 2.5, Tissue.STOOL)
        lumen = Section(x, y, radius - 2.5, radius - 2.5).polygon()
        canvas.polygon(gas_cap(lumen, y - 0.4 * radius), Tissue.GAS)
    bladder = body.organ("bladder", z)
    if bladder is not None:
        canvas.section(bladder, Tissue.BOWEL_WALL)
        canvas.section(bladder, Tissue.URINE, inset_mm=2.5)


def _draw_kidneys(canvas: Canvas, body: Body, z: float) -> None:
    """The kidneys, over the back muscles (version 12: the paraspinal muscles, drawn after the organs,
    hid the back half of each kidney, which showed as a small lump beside the spine; kidney lesions are
    placed in the part outside those muscles, which is drawn either way)."""
    for name in ("kidney_R", "kidney_L"):
        kidney = body.organ(name, z)
        if kidney is not None:
            _draw_perirenal_fat(canvas, kidney)
            canvas.section(kidney, Tissue.KIDNEY)
            _draw_pyramids(canvas, kidney)
            extent = renal_sinus_extent(body, name, z)
            if extent > 0.0:  # the poles are solid parenchyma
                _draw_renal_sinus(canvas, body, kidney, hilum_opening(body, name, z), extent, z)


PERIRENAL_FAT_MM = (6.0, 3.0)
"""The fat round a kidney: a margin of the first (mm) round its section, shifted by the second toward the
back and the flank, so that it is thin in front and toward the spine and thick behind and outside."""
PERIRENAL_KEEP = (Tissue.LIVER, Tissue.SPLEEN, Tissue.BILE, Tissue.VEIN, Tissue.ARTERY)
"""What the perirenal fat is not drawn over: the liver and spleen with their vessels and the gallbladder,
whose lesion regions must show their own tissue (a real kidney meets the liver with little fat between)."""


def _draw_perirenal_fat(canvas: Canvas, kidney: Section) -> None:
    """Fat round a kidney (version 16: kidneys lay against muscle, bowel and liver, round balls that read
    as bowel loops; real kidneys sit in their perirenal fat)."""
    margin, shift = PERIRENAL_FAT_MM
    outward = 1.0 if kidney.cx > 0.0 else -1.0
    fat = replace(
        kidney,
        cx=kidney.cx + outward * shift,
        cy=kidney.cy + shift,
        a=kidney.a + margin,
        b=kidney.b + margin,
    )
    canvas.polygon(fat.polygon(), Tissue.VISCERAL_FAT, keep=PERIRENAL_KEEP)


def _draw_mesenteric_vessels(canvas: Canvas, body: Body, z: float, cavity: Section) -> None:
    """Small vessels cut across in the abdominal and pelvic fat (organs and bowel are drawn over them)."""
    rows = body.mesenteric
    near = rows[np.abs(rows[:, 2] - z) < rows[:, 3]]
    for cx, cy, _, _, radius in near:
        canvas.circle(cx * cavity.a, cavity.cy + cy * cavity.b, radius, Tissue.VEIN)


def _draw_renal_sinus(
    canvas: Canvas, body: Body, kidney: Section, opening: float, extent: float, z: float
) -> None:
    """The renal sinus: fat round the major calyces, which reach toward the pyramids, with small vessels
    in it; at the hilum's height (``opening`` 0-1) its opening toward the midline with the renal pelvis
    inside and the renal vein running to the IVC. ``extent`` (0-1, :func:`renal_sinus_extent`) shrinks the
    sinus toward the poles. Version 15: the sinus was an ellipse in the middle of every slice of the
    kidney, which drew the kidney as a ring round a round dark hole, poles included (version 11 had
    already opened it at the hilum)."""
    medial = 1.0 if kidney.cx < 0 else -1.0  # along the kidney's own first axis
    cos, sin = math.cos(kidney.angle), math.sin(kidney.angle)
    size = 0.55 + 0.45 * extent

    def to_body(u: float, v: float) -> tuple[float, float]:
        """The kidney's own axes (u toward the hilum, v along its second axis), mm, to the body frame."""
        return kidney.cx + medial * u * cos - v * sin, kidney.cy + medial * u * sin + v * cos

    depth = (0.25 + 0.55 * opening) * kidney.a  # at the hilum the sinus reaches past the kidney's edge
    cx, cy = to_body(depth, 0.0)
    # the kidney's own random outline, damped, makes each sinus a little different (no random draw here:
    # the slices of a body are rendered independently)
    wobble = 0.6 * kidney.harmonics
    jitter = harmonic_jitter(kidney.harmonics, 25.0)  # the amplitudes are at most 0.04
    canvas.section(
        Section(
            cx,
            cy,
            (0.3 + 0.12 * opening) * size * kidney.a,
            (0.36 - 0.06 * opening) * size * kidney.b,
            kidney.angle,
            wobble,
        ),
        Tissue.RENAL_SINUS,
    )
    # the major calyces: fat-lined stalks from the sinus toward the pyramids (:func:`_draw_pyramids` fans
    # them over +-1.6 rad from the side away from the hilum), each ending in a cup of urine
    small = min(kidney.a, kidney.b)
    for k, fan in enumerate((-1.1, 0.0, 1.1)):
        fan += 0.3 * float(jitter[(2 * k) % len(jitter)])
        reach = size * (0.36 + 0.08 * float(jitter[(2 * k + 1) % len(jitter)]))
        u, v = depth - 0.2 * kidney.a - reach * kidney.a * math.cos(fan), reach * kidney.b * math.sin(fan)
        end = to_body(u, v)
        canvas.line(np.array([[cx, cy], end]), 0.26 * size * small, Tissue.RENAL_SINUS)
        canvas.circle(end[0], end[1], 0.08 * small, Tissue.URINE)
    for along in (-0.12, 0.14):  # segmental vessels in the sinus fat
        vessel = to_body(depth + 0.05 * kidney.a, along * kidney.b)
        canvas.circle(vessel[0], vessel[1], 1.6, Tissue.VEIN)
    if opening < 0.3:
        return
    pelvis = to_body(depth + 0.12 * kidney.a, 0.0)
    canvas.section(Section(pelvis[0], pelvis[1], 0.2 * kidney.a, 0.16 * kidney.b, kidney.angle), Tissue.URINE)
    ivc = body.vessel("ivc", z)
    through = (opening - RENAL_VEIN_OPENING) / (1.0 - RENAL_VEIN_OPENING)  # 1 through the vein's middle
    if ivc is None or through <= 0.0:
        return
    # the vein leaves in front of the pelvis; the aorta and IVC are drawn over its ends later. A tube cut
    # across its height: as wide as the vein where the slice passes through its middle (version 20 drew a
    # straight bar 4-8 mm wide wherever the sinus was open, over about 30 mm of height)
    width = RENAL_VEIN_MM * math.sqrt(1.0 - (1.0 - through) ** 2)
    hilum = np.array([cx + 0.12 * kidney.b * sin, cy - 0.12 * kidney.b * cos])  # minus the 2nd axis: forward
    to_ivc = np.asarray(ivc[:2])
    aorta = body.vessel("aorta", z)
    if aorta is None or kidney.cx < 0.0:  # the right kidney's vein is short and straight
        canvas.line(np.array([hilum, to_ivc]), width, Tissue.VEIN)
        return
    # the left one crosses in front of the aorta: a curve through a point just in front of it (a quadratic
    # Bezier whose middle is that point)
    front = np.array([aorta[0], aorta[1] - aorta[2] - 0.5 * width - 1.0])
    control = 2.0 * front - 0.5 * (hilum + to_ivc)
    t = np.linspace(0.0, 1.0, 9)[:, None]
    curve = (1.0 - t) ** 2 * hilum + 2.0 * t * (1.0 - t) * control + t**2 * to_ivc
    canvas.line(curve, width, Tissue.VEIN)


RENAL_VEIN_MM = 9.0
"""Width of a renal vein, mm (real ones measure about 6-10 mm across)."""
RENAL_VEIN_OPENING = 0.75
"""The renal vein shows where :func:`~deeplesion.synth.anatomy.hilum_opening` exceeds this: over a quarter
of the hilum's half height either way, 10-11 mm of height on four random bodies, about what a vein of
:data:`RENAL_VEIN_MM` running across to the IVC fills."""


def _draw_pyramids(canvas: Canvas, kidney: Section) -> None:
    """The medullary pyramids: small ellipses in a fan between the cortex and the renal sinus (not in the
    poles, where a slice cuts mostly cortex)."""
    if min(kidney.a, kidney.b) < 12.0:
        return
    hilum = -1.0 if kidney.cx > 0 else 1.0  # the sinus opens toward the midline
    cos, sin = math.cos(kidney.angle), math.sin(kidney.angle)
    for fan in np.linspace(-1.6, 1.6, 5):
        # angle 0 points away from the hilum, in the kidney's own axes
        u, v = -hilum * math.cos(fan), math.sin(fan)
        cu, cv = 0.42 * kidney.a * u - 0.1 * hilum * kidney.a, 0.5 * kidney.b * v
        canvas.section(
            Section(
                kidney.cx + cu * cos - cv * sin,
                kidney.cy + cu * sin + cv * cos,
                0.34 * min(kidney.a, kidney.b),
                0.2 * min(kidney.a, kidney.b),
                kidney.angle + math.atan2(v * kidney.b, u * kidney.a),
            ),
            Tissue.RENAL_MEDULLA,
        )


def _draw_lungs(canvas: Canvas, lungs: dict[float, npt.NDArray[np.float64]]) -> None:
    """The lungs' parenchyma; their vessels are a partial-volume layer (:func:`lung_vessel_share`)."""
    for outline in lungs.values():
        canvas.polygon(outline, Tissue.LUNG)


def _draw_heart(canvas: Canvas, body: Body, z: float) -> None:
    """The heart on the diaphragm: over the lungs and over the liver's dome beside it."""
    heart = body.organ("heart", z)
    if heart is not None:
        canvas.section(heart, Tissue.VISCERAL_FAT)
        canvas.section(heart, Tissue.MYOCARDIUM, inset_mm=4.0)
        cos, sin = math.cos(heart.angle), math.sin(heart.angle)
        for du, dv, su, sv, blood in HEART_CHAMBERS:
            cx = heart.cx + du * heart.a * cos - dv * heart.b * sin
            cy = heart.cy + du * heart.a * sin + dv * heart.b * cos
            canvas.section(Section(cx, cy, heart.a * su, heart.b * sv, heart.angle), blood)


HEART_CHAMBERS = (
    (0.30, 0.24, 0.44, 0.32, Tissue.ARTERY),  # left ventricle, toward the apex and back: thick walls
    (0.18, -0.44, 0.40, 0.22, Tissue.VEIN),  # right ventricle, in front of it past the septum
    (-0.45, 0.42, 0.22, 0.26, Tissue.ARTERY),  # left atrium, at the back of the base
    (-0.58, -0.22, 0.28, 0.30, Tissue.VEIN),  # right atrium, at the base on the patient's right
)
"""The heart's four chambers (version 24): centre (along the heart's long axis toward the apex, and
across it toward the back) and half-axes in the heart section's half-axes, and the blood in them (the
left heart's arterial, the right heart's venous; in a portal-venous study both about 150-165 HU). Apart
by 3-6 mm of myocardium: the septa. Before, two blood ellipses in one oval of muscle."""


def _vessels_in_slab(vessels: npt.NDArray[np.float64], low: float, high: float) -> npt.NDArray[np.float64]:
    """The rows of a vessel table (:attr:`Body.vessels`, :attr:`Body.liver_vessels`: sorted by group, then
    lowest height) that reach into the slab from ``low`` to ``high`` mm, radius included: the candidates,
    whose lowest point lies from :data:`LUNG_VESSEL_Z_EXTENT_MM` below ``low`` up to ``high``, found by
    bisection per group (a mask over all 20,000 pieces cost more than drawing them), less those whose
    highest point is below ``low``."""
    blocks = []
    for group in VESSEL_GROUPS:
        first = int(np.searchsorted(vessels[:, 0], group, side="left"))
        last = int(np.searchsorted(vessels[:, 0], group, side="right"))
        block = vessels[first:last]
        start = int(np.searchsorted(block[:, 8], low - LUNG_VESSEL_Z_EXTENT_MM))
        stop = int(np.searchsorted(block[:, 8], high, side="right"))
        blocks.append(block[start:stop])
    near = np.concatenate(blocks)
    return near[np.maximum(near[:, 3], near[:, 6]) + near[:, 7] >= low]


VESSEL_GROUPS = (-1.0, 0.0, 1.0)
"""The groups of the vessel tables: the right lung's, the liver's, the left lung's."""
LUNG_VESSEL_STEPS = 2
"""Parts each vessel piece within a slab is drawn in, each with its own partial volume."""
LUNG_VESSEL_LEVELS = 32
"""Grey levels of the vessel layer's drawing (one OpenCV call per level and line width)."""


def lung_vessel_share(
    body: Body, geometry: SliceGeometry, z: float, thickness: float
) -> npt.NDArray[np.float32]:
    """The share of each pixel's volume that the lung vessels fill, over the slab of ``thickness`` mm
    centred at height ``z`` mm: the partial-volume layer :func:`render_slice` blends over the lungs.

    A vessel piece of diameter d whose centre line rises at angle phi to the slice plane fills, where its
    centre line passes, d / cos(phi) of the slab's height: a fine vessel lying in a 5 mm slice shows as a
    faint grey line (d = 1 mm: a fifth), a steep or thick one as a full dot or band. Each piece is drawn
    along the part of its centre line within the slab, anti-aliased, so a vessel under a pixel wide shows
    as a line of that fraction of the pixel. Version 16; before, the vessels were tissue labels drawn
    where the centre line lay within a radius of each of the slice's sampled heights: every fine vessel
    at full contrast in pixel steps, broken into dashes wherever it left those thin planes.

    Returns
    -------
    ndarray
        (size, size) float32 in [0, 1].
    """
    return _vessel_layer(body.vessels, geometry, z, thickness).astype(np.float32) / np.float32(255.0)


def liver_vessel_share(
    body: Body, geometry: SliceGeometry, z: float, thickness: float
) -> npt.NDArray[np.float32]:
    """As :func:`lung_vessel_share`, for the liver's vessels
    (:func:`~deeplesion.synth.anatomy.liver_vessel_tree`): (size, size) float32 in [0, 1], blended over
    the liver by :func:`render_slice`."""
    return _vessel_layer(body.liver_vessels, geometry, z, thickness).astype(np.float32) / np.float32(255.0)


def _vessel_layer(
    vessels: npt.NDArray[np.float64], geometry: SliceGeometry, z: float, thickness: float
) -> npt.NDArray[np.uint8]:
    """:func:`lung_vessel_share` as drawn, for the (M, 9) vessel table ``vessels`` (:attr:`Body.vessels`
    or :attr:`Body.liver_vessels`): (size, size) uint8, 255 for a full pixel."""
    import cv2

    half = thickness / 2.0
    pieces = _vessels_in_slab(vessels, z - half, z + half)
    size = geometry.size
    layer = np.zeros((size, size), dtype=np.uint8)
    if len(pieces) == 0:
        return layer
    start, end, radius = pieces[:, 1:4], pieces[:, 4:7], pieces[:, 7]
    rise = end[:, 2] - start[:, 2]
    flat = np.abs(rise) < 1e-6
    safe = np.where(flat, 1.0, rise)
    # the centre line's parameters where it crosses the slab's faces (widened by the radius), ordered
    t0 = (z - half - radius - start[:, 2]) / safe
    t1 = (z + half + radius - start[:, 2]) / safe
    low = np.where(flat, 0.0, np.clip(np.minimum(t0, t1), 0.0, 1.0))
    high = np.where(flat, 1.0, np.clip(np.maximum(t0, t1), 0.0, 1.0))
    cut = np.where(flat, np.abs(start[:, 2] - z) < half + radius, high > low)
    # each cut piece in LUNG_VESSEL_STEPS parts, each filling the share of the slab's height that the
    # vessel's vertical extent at its middle overlaps: a vessel fades in and out of the slab instead of
    # ending in a square cut
    steps = (np.arange(LUNG_VESSEL_STEPS + 1) / LUNG_VESSEL_STEPS)[None, :]
    start, end, radius = start[cut], end[cut], radius[cut]
    bounds = low[cut, None] + steps * (high[cut] - low[cut])[:, None]  # (M, steps + 1)
    low, high = bounds[:, :-1].ravel(), bounds[:, 1:].ravel()
    start, end, radius = (np.repeat(array, LUNG_VESSEL_STEPS, axis=0) for array in (start, end, radius))
    direction = end - start
    length = np.maximum(np.linalg.norm(direction, axis=1), 1e-6)
    cos_rise = np.linalg.norm(direction[:, :2], axis=1) / length
    diameter = 2.0 * radius
    reach = radius / np.maximum(cos_rise, 1e-3)  # half the vessel's vertical extent
    middle = start[:, 2] + 0.5 * (low + high) * direction[:, 2]
    overlap = np.minimum(middle + reach, z + half) - np.maximum(middle - reach, z - half)
    depth_share = np.clip(overlap / thickness, 0.0, 1.0)
    cut = depth_share > 0.0
    width_px = diameter / geometry.spacing
    # under a pixel wide: a one-pixel line carrying the vessel's share of the pixel; wider: a tube, whose
    # depth falls off toward its edges (drawn as its width rounded up at 0.6 of the centre's value under a
    # core half as wide at the full value). The centre's value is set so that the amount of vessel across
    # the line is its width times its depth share whatever the pixel spacing: rounding the width to whole
    # pixels alone made a 1.1 mm vessel twice as heavy at 0.73 mm pixels as at 0.74 mm
    widths = np.maximum(np.ceil(width_px - 1e-6), 1).astype(int)
    tube = widths >= 2
    across = np.where(tube, 0.6 * (widths - widths // 2) + widths // 2, 1.0)  # pixels x value per line
    value = np.minimum(depth_share * width_px / across, 1.0)
    value = np.concatenate([np.where(tube, 0.6 * value, value), value[tube]])
    widths = np.concatenate([widths, np.maximum(widths[tube] // 2, 1)])
    keep = np.concatenate([cut, cut[tube]])
    low, high = np.concatenate([low, low[tube]]), np.concatenate([high, high[tube]])
    start, direction = np.concatenate([start, start[tube]]), np.concatenate([direction, direction[tube]])
    levels = np.clip(np.rint(value * LUNG_VESSEL_LEVELS), 0, LUNG_VESSEL_LEVELS).astype(int)
    keep &= levels > 0
    a = start[keep, :2] + low[keep, None] * direction[keep, :2]
    b = start[keep, :2] + high[keep, None] * direction[keep, :2]
    matrix = geometry.px_affine * SCALE
    lines = np.rint(np.stack([a, b], axis=1) @ matrix[:2] + matrix[2]).astype(np.int32)  # (N, 2, 2)
    widths, levels = widths[keep], levels[keep]
    # fainter first: an anti-aliased line blends over what is drawn, so the brighter vessels end on top;
    # one OpenCV call per grey level and width
    order = np.lexsort((widths, levels))
    lines, widths, levels = lines[order], widths[order], levels[order]
    breaks = np.flatnonzero(np.diff(levels * 1024 + widths)) + 1
    for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(lines)], strict=True):
        colour = round(255 * int(levels[first]) / LUNG_VESSEL_LEVELS)
        cv2.polylines(layer, lines[first:last], False, colour, int(widths[first]), cv2.LINE_AA, SHIFT)
    return layer


def _draw_airways(canvas: Canvas, body: Body, z: float) -> None:
    for name in ("trachea", "bronchus_R", "bronchus_L"):
        tube = body.vessel(name, z)
        if tube is not None:
            canvas.circle(tube[0], tube[1], tube[2] + 1.5, Tissue.CARTILAGE)
            canvas.circle(*tube, Tissue.AIRWAY)


def _draw_bones(
    canvas: Canvas,
    body: Body,
    z: float,
    zn: float,
    cavity: Section,
    wall: Wall,
    slab: tuple[float, float],
) -> None:
    vertebral_body = body.vertebral_body(z)
    if vertebral_body is not None:
        _draw_vertebra(canvas, vertebral_body, z, zn)
    _draw_ribs(canvas, body, slab, cavity, wall)
    wings = pelvic_wings(body, z)
    for muscle in wing_muscles(wings):
        canvas.section(muscle, Tissue.MUSCLE)
    for muscle in hip_muscles(body, z):  # the femur sits in muscle
        canvas.section(muscle, Tissue.MUSCLE)
    hips = femoral_heads(body, z)
    # the plates (sacrum, iliac wings, sternum): a wing's parts overlap, so all the cortex first and
    # then all the marrow, which leaves no cortex lines inside a wing
    sacrum = sacrum_parts(body, z)
    plates = bone_sections(body, z, wings=wings, sacrum=sacrum)[1 if vertebral_body is not None else 0 :]
    for section in plates:
        canvas.section(section, Tissue.CORTICAL)
    # version 23: an iliac wing's plate is compact bone through (its marrow in the soft-tissue window
    # was a grey mottle inside a white rim; real wings are white plates), the thick bone above the hip
    # socket keeps its marrow
    compact = {id(part) for part in wings if part.b < WING_MARROW_MM}
    for section in plates:
        inner = Tissue.ARCH if id(section) in compact else Tissue.TRABECULAR
        canvas.section(section, inner, inset_mm=2.5)
    if sacrum and sacrum[0].a > 10.0:
        # the sacral canal: a flat triangle behind the body under a thin roof of lamina; small foramina in
        # the front of the alae, by the body (version 10: a round canal in the middle of the bone and a
        # foramen in the middle of each ala made the sacrum a row of rings)
        middle = sacrum[0]
        back = middle.cy + middle.b - 2.5
        canal = np.array([[-0.42, 0.0], [0.42, 0.0], [0.0, 0.42]]) * middle.a
        canvas.polygon(canal + np.array([0.0, back - 0.42 * middle.a]), Tissue.CSF)
        crest = np.array([[0.0, middle.cy + middle.b - 1.0], [0.0, middle.cy + middle.b + 9.0]])
        canvas.line(crest, 4.0, Tissue.ARCH)  # the median crest: the fused spinous processes
        for ala in sacrum[1:]:
            toward_body = -1.0 if ala.cx > 0.0 else 1.0
            canvas.circle(ala.cx + toward_body * 0.45 * ala.a, ala.cy - 0.35 * ala.b, 2.5, Tissue.CSF)
    for bone in pelvic_ring(body, z):
        canvas.section(bone, Tissue.CORTICAL)
        canvas.section(bone, Tissue.TRABECULAR, inset_mm=2.5)
    for x, y, radius in hips:
        _draw_hip(canvas, x, y, radius, zn)


WING_MARROW_MM = 7.0
"""Iliac wing parts thinner than this (half-thickness, mm) are compact bone inside their cortex
(:data:`~deeplesion.synth.anatomy.Tissue.ARCH`); thicker ones hold marrow."""


def _draw_vertebra(canvas: Canvas, vertebral_body: Section, z: float, zn: float) -> None:
    """One vertebra (:meth:`~deeplesion.synth.anatomy.Body.vertebral_body`) at height ``z`` mm, normalized
    ``zn``: the body (or its disc, at the level boundaries), its back border hollowed by the spinal canal;
    the posterior arch of version 9: pedicles back from the body, laminae meeting in a V behind the canal,
    a spinous process tapering backward, articular facets at the pedicle-lamina corners and, in the lumbar
    spine (zn > 0.6, mid-vertebra), transverse processes; every part of the arch solid compact bone
    (:attr:`~deeplesion.synth.anatomy.Tissue.ARCH`, version 21). The canal is round in the chest and
    triangular lower down."""
    level_mm = 16.0 if zn < 0.34 else 24.0 if zn < 0.6 else 32.0
    in_disc = ((z / level_mm) % 1.0) < 5.0 / level_mm
    lumbar = zn > 0.6
    x, y, radius = vertebral_body.cx, vertebral_body.cy, vertebral_body.a
    back = y + vertebral_body.b  # the body's back border
    corner_x, corner_y = 11.5, 10.0  # where pedicle, lamina, facet (and transverse process) meet, from back
    spinous = np.array([[x, back + 17.0], [x, back + 26.0], [x, back + 34.0]])
    pedicles = [
        np.array([[x + side * 9.0, back - 2.0], [x + side * corner_x, back + corner_y]]) for side in (-1, 1)
    ]
    # version 21: each part of the arch one solid stroke of compact bone. Versions 17-20 drew each as a
    # cortex (1050 HU) round marrow: hollow tubes whose profile across the spinous process dipped 640 HU
    # between two bright walls, where the shared real slices show one peak of about 690 HU (dip 27 HU)
    parts: list[tuple[npt.NDArray[np.float64], float]] = []  # (points or centre, width) mm
    for side, pedicle in zip((-1.0, 1.0), pedicles, strict=True):
        parts.append((pedicle, 4.5))
        parts.append((np.array([pedicle[1], [x, back + 18.0]]), 3.0))  # lamina
        parts.append((np.array([[x + side * (corner_x + 2.5), back + corner_y + 1.0]]), 6.0))  # facet
        if lumbar and (z / level_mm) % 1.0 > 0.55:
            tip = [x + side * (corner_x + 1.1 * radius), back + corner_y + 3.0]
            parts.append((np.array([pedicle[1], tip]), 3.5))  # transverse process
    parts.append((spinous[:2], 4.0))
    parts.append((spinous[1:], 3.0))
    for points, width in parts:
        if len(points) == 1:
            canvas.circle(float(points[0, 0]), float(points[0, 1]), width / 2.0, Tissue.ARCH)
        else:
            canvas.line(points, width, Tissue.ARCH)
    if in_disc:
        canvas.section(vertebral_body, Tissue.DISC)
    else:
        canvas.section(vertebral_body, Tissue.CORTICAL)
        canvas.section(vertebral_body, Tissue.TRABECULAR, inset_mm=0.9)  # a thin cortex
    if lumbar:
        canal = np.array([[-9.0, -1.5], [9.0, -1.5], [5.0, 10.5], [0.0, 13.5], [-5.0, 10.5]])
    else:
        angles = np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False)
        canal = np.column_stack([7.5 * np.cos(angles), 5.0 + 7.0 * np.sin(angles)])
    middle = canal.mean(axis=0)
    rim = middle + (canal - middle) * 1.12  # a cortex rim round the canal where it hollows the body
    canvas.polygon(rim + np.array([x, back]), Tissue.CORTICAL if not in_disc else Tissue.DISC)
    canvas.polygon(canal + np.array([x, back]), Tissue.CSF)


ACETABULUM_MM = (7.0, 16.0)
"""Thickness of the hip socket's bone in front of the head's medial point and behind it, mm (version 26),
where the muscle round the joint leaves room (:data:`SOCKET_MARGIN_MM`)."""
SOCKET_MARGIN_MM = 2.5
"""The socket's bone stays this far inside the muscle round the joint, mm."""


def _draw_hip(canvas: Canvas, x: float, y: float, radius: float, zn: float) -> None:
    """One hip at normalized height ``zn``: the femoral head (centre x, y mm, radius mm; a thin cortex
    round marrow) under a joint line in the acetabular roof above zn 0.81; down to zn 0.855 the socket
    (acetabulum, a wedge of bone :data:`ACETABULUM_MM` deep) cups its medial side behind a thin joint
    space;
    below zn 0.845 the neck runs out laterally and a little forward to the greater trochanter."""
    side = 1.0 if x > 0.0 else -1.0
    if zn < 0.81:  # the dome of the head under the acetabular roof (the iliac wing's lower end): a joint line
        canvas.circle(x, y, radius + 1.5, Tissue.CARTILAGE)
    elif zn <= 0.855:
        # the socket (acetabulum) round the head's medial side behind 2 mm of cartilage: one wedge of bone,
        # thin in front (the anterior column), thick behind and toward the pelvis (the posterior column,
        # down to the ischium), cortex round marrow (version 26; before, two concentric arcs of even depth,
        # which read as a double ring round the head where a real socket is solid bone)
        medial = math.pi if side > 0.0 else 0.0
        phi = np.linspace(-1.9, 1.9, 24)
        direction = np.column_stack([np.cos(medial - side * phi), np.sin(medial - side * phi)])
        centre = np.array([x, y])
        canvas.line(centre + (radius + 1.0) * direction, 2.0, Tissue.CARTILAGE)
        behind = np.clip(phi / 1.9, 0.0, 1.0)  # 0 in front of the medial point, 1 at the back
        depth = ACETABULUM_MM[0] + (ACETABULUM_MM[1] - ACETABULUM_MM[0]) * np.sin(0.5 * math.pi * behind)
        # inside the muscle round the joint, which the pelvic lesion region leaves out (a lesion painted
        # there would lie in bone)
        room = ray_exit(centre, direction, hip_joint_muscle(x, y, radius).polygon()) - SOCKET_MARGIN_MM
        inner = np.full(len(phi), radius + 2.0)
        outer = np.minimum(inner + depth, np.maximum(room, inner + 3.0))

        def band(
            near: npt.NDArray[np.float64], far: npt.NDArray[np.float64], keep: slice
        ) -> npt.NDArray[np.float64]:
            """Outline between ``near`` and ``far`` mm from the centre along ``direction[keep]``."""
            rays = direction[keep]
            return np.concatenate([centre + near[keep, None] * rays, (centre + far[keep, None] * rays)[::-1]])

        canvas.polygon(band(inner, outer, slice(None)), Tissue.CORTICAL)
        canvas.polygon(band(inner + 1.5, outer - 1.5, slice(2, -2)), Tissue.TRABECULAR)  # cortex round marrow
    if zn >= 0.845:
        grow = min((zn - 0.845) / 0.03, 1.0)
        trochanter = (x + side * (radius + 16.0), y + 4.0)
        neck = np.array([[x, y], trochanter])
        canvas.line(neck, 1.5 * radius, Tissue.CORTICAL)
        canvas.line(neck, 1.5 * radius - 3.0, Tissue.TRABECULAR)
        canvas.circle(*trochanter, 12.0 + 6.0 * grow, Tissue.CORTICAL)
        canvas.circle(*trochanter, 10.5 + 6.0 * grow, Tissue.TRABECULAR)
    canvas.circle(x, y, radius, Tissue.CORTICAL)
    canvas.circle(x, y, radius - 1.5, Tissue.TRABECULAR)


RIB_CORTEX_MM = 0.8
"""A rib's cortex, mm: the cut of a rib is cortex round marrow, less this on every side (version 17: 1.25
mm, a bright ring: the 90th percentile of the flank ribs' cuts was 844 HU, real 537), and never less
than a pixel (drawn in whole pixels, 0.8 mm at 0.75 mm pixels could leave marrow touching the lung)."""
RIB_DEPTH_MM = 1.0
"""Gap between where the chest wall begins (:func:`~deeplesion.synth.anatomy.chest_wall_start`) and a
rib's inner surface, mm, plus up to 2 mm per rib (:attr:`Body.ribs`): the ribs lie on the pleura, the
intercostal muscles between them."""
RIB_WIDTH = 0.5
"""A rib's width in the slice's plane as a share of its thickness (:attr:`Body.ribs`: 3-4.75 mm; version
17: 0.75)."""


RIB_HEAD_ZN = (0.34, 0.5905)
"""Normalized height of the first and the twelfth rib's head, the others evenly between (version 22; the
first started at 0.365 below the lung apex at 0.335, 20.5 thousandths apart, so that a slice at zn 0.40 cut
at most two ribs a side: the upper lungs lay in a ring of muscle without bone)."""
UPPER_RIB_DROP = (0.55, 0.65, 0.78, 0.9, 1.0)
"""Factors on how far the first ribs descend from back to front (:attr:`Body.ribs`), the last for all
below: the upper ribs are short and end at the manubrium and the sternum's top."""
UPPER_RIB_HEIGHT = (2.4, 2.2, 1.8, 1.4, 1.15, 1.0)
"""Factors on the first ribs' height along z, the last for all below: the first ribs are broad flat
bands. With :data:`UPPER_RIB_DROP` and the clavicles they ring the upper lungs as on real slices
(``tests/test_synth_realism.py``: bone in 0.61, 0.62 and 0.73 of the sectors round the lungs at zn 0.37,
0.40 and 0.43; real upper-chest slices 0.66, 0.56-0.92)."""


def rib_course(phi: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """How far along its descent (0 at its head, 1 at its lowest) a rib is at the angle ``phi`` (radians
    from the back, any shape).

    A smooth step from phi 0.15 pi to 0.85 pi: nearly level beside the spine and in front, steepest at
    the flank. Version 17's ``(phi / pi) ** 1.4`` descended half as steeply at the flank, where each slice
    then cut few, long ribs: at zn 0.55-0.64, 4.3 cuts per slice within 50 degrees of the sides, 32 mm
    long (median) and 191 mm^2 in area; the 29 shared real series at zn 0.52-0.66 show 8.7 cuts, 17 mm
    and 57 mm^2 (version 18: 9.1, 16 mm, 79 mm^2)."""
    t = np.clip((phi / math.pi - 0.15) / 0.7, 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t))


def _draw_ribs(canvas: Canvas, body: Body, slab: tuple[float, float], cavity: Section, wall: Wall) -> None:
    """Twelve ribs per side, each a curve that descends from the spine to the front: an axial slice cuts
    each rib where the curve passes within half the rib's height of the ``slab`` (lowest and highest
    height sampled, mm; one cut for the whole slice, version 16), so a few segments show
    around the chest wall, longer where the rib runs flat. Each rib has its own start, depth in the wall,
    thickness, height and descent (:attr:`Body.ribs`); a thin cortex round fatty marrow, just outside where
    the chest wall begins (version 12: 1.5 mm of cortex round trabecular bone, up to 10 mm out, drew white
    bars that lay in the fat behind the back and left pockets of lung beside their ends)."""
    phi = np.linspace(0.15, 0.95 * math.pi, 64)
    sin, cos, course = np.sin(phi), np.cos(phi), rib_course(phi)  # shared by all 24 ribs
    centre = np.array([cavity.cx, cavity.cy])
    # where the wall begins, as a function of the angle round the cavity's centre (periodic)
    offset_from_centre = wall.inner - centre
    wall_angle = np.arctan2(offset_from_centre[:, 1], offset_from_centre[:, 0])
    wall_reach = np.hypot(offset_from_centre[:, 0], offset_from_centre[:, 1])
    walls: dict[float, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
    for level in range(RIB_LEVELS):
        end = 0.85 if level < 7 else 0.72 - 0.05 * (level - 7)
        for index, side in enumerate((1.0, -1.0)):
            dz, offset, thickness, half_height, descent = body.ribs[index * RIB_LEVELS + level]
            head = RIB_HEAD_ZN[0] + level * (RIB_HEAD_ZN[1] - RIB_HEAD_ZN[0]) / (RIB_LEVELS - 1)
            z0 = (head + body.rib_phase) * body.height_mm + dz
            drop = 0.11 * body.height_mm * descent * UPPER_RIB_DROP[min(level, len(UPPER_RIB_DROP) - 1)]
            half_height *= UPPER_RIB_HEIGHT[min(level, len(UPPER_RIB_HEIGHT) - 1)]
            if not (z0 - 10.0 < slab[1] and slab[0] < z0 + drop + 10.0):
                continue
            # the rib's height falls monotonically from back to front, so the hits are one run
            height = z0 + drop * course
            hit = (height > slab[0] - half_height) & (height < slab[1] + half_height)
            if not hit.any():
                continue
            if side not in walls:  # toward the cavity's edge at the ribs' angles, and where the wall begins
                directions = np.column_stack([side * cavity.a * sin, cavity.b * cos])
                directions /= np.hypot(directions[:, 0], directions[:, 1])[:, None]
                angle = np.arctan2(directions[:, 1], directions[:, 0])
                walls[side] = directions, np.interp(angle, wall_angle, wall_reach, period=2.0 * math.pi)
            directions, reach = walls[side]
            width = RIB_WIDTH * thickness
            depth = 0.5 * width + RIB_DEPTH_MM + 2.0 * min(max((offset - 3.0) / 7.0, 0.0), 1.0)
            points = centre + directions * (reach + depth)[:, None]
            bone = hit & (phi <= end * math.pi)
            cartilage = hit & (phi > end * math.pi) & (level < 7)
            if cartilage.any():
                canvas.line(points[cartilage], 0.8 * width, Tissue.CARTILAGE)
            if bone.any():
                canvas.line(points[bone], width, Tissue.CORTICAL)
                # where the slab reaches the rib's upper or lower cortex, the cut is cortex and marrow in
                # partial volume, brighter than marrow: the ends of an oblique cut (version 16; a ring of
                # cortex round marrow all along drew ribs as hollow links)
                inner = width - 2.0 * max(RIB_CORTEX_MM, canvas.geometry.spacing)
                canvas.line(points[bone], inner, Tissue.TRABECULAR)
                marrow = bone & (height - half_height + RIB_CORTEX_MM <= slab[0])
                marrow &= height + half_height - RIB_CORTEX_MM >= slab[1]
                if marrow.any():
                    canvas.line(points[marrow], inner, Tissue.RIB_MARROW)


__all__ = [
    "Canvas",
    "FieldBank",
    "Lesion3D",
    "Series",
    "SliceGeometry",
    "StudyLook",
    "lesion_field",
    "lesion_mask",
    "make_series",
    "render_labels",
    "render_slice",
    "sub_heights",
]
