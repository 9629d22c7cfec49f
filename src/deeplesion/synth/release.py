"""A synthetic DeepLesion release in the exact official layout (``deeplesion synth``).

What is written under the output folder::

    DL_info.csv                        the catalog's writer: exact header and cell formats
    Images_png/<PPPPPP_SS_RR>/<NNN>.png 16-bit grey, value = HU + 32768, %03d slice numbers
    Images_png_01.zip ...              with ``zips``: whole series folders, sorted members, fixed times
    MD5_checksums.txt                  with ``zips``: ``<md5>  <name>`` per zip and DL_info.csv
    synth-manifest.json                the parameters and every planted quirk (code and place)

Annotations are measured on the lesion actually drawn on the key slice (RECIST from its mask), so a
detector trained here learns what the CSV says. The same seed gives the same files within one
installation (OpenCV's PNG encoder is part of that installation).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from deeplesion.catalog import (
    BOX_PADDING_PX,
    DEFAULT_FILE_NAME,
    Lesion,
    LesionType,
    Split,
    dl_info_text,
    from_lesions,
)
from deeplesion.errors import UsageError
from deeplesion.io import file_digest, staged_dir
from deeplesion.measure import recist_from_mask
from deeplesion.names import IMAGES_DIR, key_file_name, series_folder, slice_path
from deeplesion.slices import encode_slice, read_slice_hu
from deeplesion.synth.anatomy import PHASE_WEIGHTS, PHASES, Body, random_body
from deeplesion.synth.lesions import (
    RowHerd,
    SizeHerd,
    Strata,
    draw_long_mm,
    feret_at_centre,
    make_lesion,
    normalized_location,
    real_stats,
    type_height_range,
)
from deeplesion.synth.phantom import (
    Lesion3D,
    SliceGeometry,
    StudyLook,
    lesion_mask,
    make_series,
    render_slice,
)

log = logging.getLogger(__name__)

MANIFEST_NAME = "synth-manifest.json"
CHECKSUMS_NAME = "MD5_checksums.txt"
GENERATOR_VERSION = 26
"""The synthetic release's content version, in ``synth-manifest.json``: raised whenever the same seed and
options give other images or rows (1: v0.1's schematic phantom; 2: the realistic anatomy and lesions;
3: ``Normalized_lesion_location`` carries the real rows' measurement noise, images unchanged; 4: types
dealt by rows and locations herded to the real means, bone lesions also in the sternum and femoral
heads, larger lungs with vessel streaks, the spine further forward, small bowel as curved runs; 5: same
plans and rows, richer images: layered body wall, liver and mesenteric vessels, renal pyramids, colon
stool with air-fluid levels, a sigmoid colon, uterus or prostate, sacral canal, breasts; spiculated
lung nodules, calcified nodes and granulomas, skin lifted over lesions that reach past it; 6: each rib
its own start, depth, thickness, height and descent, iliac wings flaring forward from the sacroiliac
joints and thickening into the bone above the hip sockets, which can move bone and pelvis lesions; 7: the
same plans and rows, noise 10-18 HU per study instead of 8-14, which brings the noise measured in fat to
the real slices' median); 8: images closer to real CT, and rows that move with the field of view:
oral contrast reaches 60% of the small-bowel loops (the others hold grey fluid), 30% of the loops are
collapsed, 40 more loops, small-bowel gas a little over the fluid instead of most of the lumen, folds
across the opacified jejunum; the colon holds mottled stool under a smaller gas cap in a lobulated lumen
and lies in front of the iliac wings (it sat in them); the iliac wings are curved plates lined by the
iliacus muscle; trabecular bone 200 HU (240) inside a thinner cortex; the posterior arch is pedicles and
laminae around the canal; a fat seam in the back muscles; thinner fat planes in the body wall. Lesions:
metastases and masses blend into their surroundings within 1-2 mm of the surface (cysts, nodes and
sclerotic lesions keep sharp edges), cores fade in, larger lesions are more heterogeneous. The field of
view fits the body's width over the scanned range tightly, as real scans do (a 5-20% margin around the
pelvis made every body look small), so the pixel spacing, and with it every row's pixel values, changed;
lesions and their millimetre sizes are placed as before, except bone lesions in the wings' new shape);
9: the back lies flat on the table (the skin outline's back half a superellipse, exponent 2.3-2.8 per
patient: real backs are 0.73 of the body's width at a tenth of its depth above the table, an ellipse
0.60); the sacrum is a body with alae, foramina and a canal (an ellipse); each femoral head is a ball
with a thin cortex cupped by the acetabulum on its medial side (concentric rings), its neck runs out to
the greater trochanter below, and the femur lies in muscle; below the iliac crests the flank and back
muscles give way to the hip and gluteal muscles (an even ring of wall muscle round the pelvis), and
above them the wall thins between the rectus and the flank muscles (the linea semilunaris); vertebrae
have a V-shaped posterior arch with facets and a canal that hollows the body's back (a ring); small-bowel
runs vary in calibre along their course (one width); collapsed bowel loops taper at their ends; the
table is a curved cradle of two thin shells (two nearly flat bands). The
field of view is 0.97-1.25 times the body's widest width (0.90-1.02): one slice per real series, bodies
span 0.77 of the width; version 8's 0.99 was the median over all 137 shared slices, 90 of them one
patient's. This changes the spacing and so every row's pixel values; bone lesions move with the
sacrum's and femoral heads' new shapes (a head's region is now the ball), soft-tissue lesions with the
flatter back; 10: the lungs reach the chest wall (a band of fat lay between them and the ribs, and at
the bases they were small round spaces beside the spine: now crescents in the posterior recesses round
the liver and spleen); the iliac wings are thick at both ends and thin in the middle (an even bar); the
sacrum is deeper, its canal a triangle behind the body under a thin roof with the median crest behind it
and small foramina at the front of the alae (a round canal in the middle and a foramen in each ala made
a row of rings); bowel walls 1.6 mm (2.2: every loop a bright ring). Lung lesions are placed as before
(in the lungs' sections, which the drawn lungs contain); mediastinal, liver, kidney, abdominal and
soft-tissue lesions are kept out of the drawn lungs (a soft-tissue lesion could land in a posterior
recess before); bone lesions and their neighbours move with the wings' and sacrum's new shapes;
11: the same plans, rows and lesions, other images: each lung's vessels are two branching trees (the
arteries and the veins) from the hilum, tapering and winding, cut by each slice into lines and dots
(900 separate streaks drew bright blobs: in lung slices they filled 7.8% of the lung in 58 separate cuts
per 100 cm^2, real slices 3.1% in 32; now 5.7% in 33, ``deeplesion.synth.realism.lung_vessels``); the
descending aorta, the IVC and the oesophagus lie beside the vertebral body (the aorta's keyframes put it
over the bone, which hid it from the mid-chest down); 35 more small-bowel loops between the organs of the
upper abdomen (zn 0.585-0.66, where the cavity was mostly fat); the renal sinus opens toward the midline
at the hilum, with the renal pelvis and the renal vein (an ellipse inside the kidney drew a ring);
12: the same plans, rows and lesions, other images: ribs are thin rings of cortex round fatty marrow,
lying on the lungs (1.5 mm of cortex round trabecular bone, up to 10 mm out from the cavity, drew white
bars that lay in the fat behind the back, with pockets of lung beside their ends); the chest wall is at
least 12 mm of muscle; over the upper chest the shoulder-girdle muscles round the scapulae and the
pectoral muscles replace most of the subcutaneous fat, and each scapula is a thin blade in them (a
7 mm bar along the back before); where the lungs' posterior recesses reach past the cavity the wall
begins at the lung (the lung touched the subcutaneous fat there); the kidneys are drawn over the back
muscles (which hid the back half of each kidney);
13: the thorax-abdomen junction and the pelvis, and lesions kept where their organ shows: the organs
under the diaphragm are drawn over the lung bases and the heart over both (the lungs hid the liver's dome
until zn 0.555, and the lung bases were round black spaces over the upper abdomen); the liver's dome
rises to zn 0.515, the heart ends at 0.558, the stomach (an air-fluid level over its contents, 5-40% of
its depth per patient; an ellipse of gas before) and the spleen (a long oval along the wall) are larger
and fill the left upper abdomen, the liver's right lobe reaches lower, the kidneys have an ellipsoid's
profile along z (a diamond's before: sections half the real area), the pancreas runs from the splenic
hilum down to its head, and the duodenum (descending and horizontal parts) and the rectum (defined, never
drawn) are drawn; the gluteal muscles lie behind the hips and reach toward the midline (they sat beside
the hips); femoral heads 23 mm in radius (26); a gas cap is the lumen cut at its level (the lumen's
vertices behind the level were moved onto it, drawing a line of gas through the bowel wall). Lesions:
the lung region excludes the organs drawn over the lungs, the liver region the vertebra and the organs
drawn after the liver (the liver's section reached over the spine and the canal: a liver lesion could lie
in bone), the mediastinum the organs under the diaphragm, the abdomen and pelvis the psoas, iliacus,
gluteal, obturator and hip muscles, the pelvis the femoral heads and ischia (it held them: a pelvic
lesion could lie in a femoral head), and no lesion reaches further than 215 mm from the body's axis (a
267 mm abdominal mass reached past the widest field of view the release gives), and a lesion stops
growing at the longest real lesion, 342.5 mm (compounded growth reached a 487 mm row). This moves
placements, and so rows and every random draw after them;
14: the abdomen's deep fat: the liver and spleen reach the abdominal wall on their sides of the body
where no lung lies between (a band of fat 15-30 mm wide lay round them), the liver's left lobe ends 0.2
of the cavity's half width left of the midline at zn 0.56-0.60 (0.28-0.38: half the abdomen), the
small-bowel loops spread out toward the flanks and the front wall (a ring of fat lay between them and the
wall); the subcutaneous fat keeps the flat back's shape (it was an ellipse inside the skin's superellipse,
leaving a skin band several mm thick at the back's corners); at the hips the gluteal muscles fill the
sides and back out to the subcutaneous fat (the wall ended there and the pelvis was mostly fat round small
hip muscles), the obturator internus lines the pelvic side wall, the bladder reaches down to the
symphysis, and the pubic bones close the pelvic ring in front (zn 0.85-0.90). Liver lesions may lie in the
liver as drawn out to the wall, abdominal, mediastinal and lung lesions stay out of it, pelvic lesions out
of the pubic bones and the larger bladder, so placements and rows change;
15: the kidneys' sinus: only the middle of a kidney's height holds it (the poles are solid parenchyma),
irregular, with three major calyces reaching toward the pyramids, cups of urine at their ends and
segmental vessels in its fat (an ellipse in every slice of the kidney drew a ring round a round dark
hole); the flank muscles swell and thin along the flank, and the two fat planes between them wander
across the muscle and cover different stretches per patient and side (two planes at fixed shares of an
even wall drew three layers as parallel as tree rings); images only: plans, placements and rows are
version 14's;
16: the lung vessels: each tree fans out from the hilum (a node lies on the line from the hilum to the
centroid of the points it feeds, a branch forks into a side branch and a continuation; half-way splits
along alternating axes drew a tangle of right-angled turns), thick trunks near the hilum, thinner
branches elsewhere; each vessel is drawn with the share of the slab it fills (partial volume, anti-aliased,
fading where it leaves the slab), so fine vessels lying in a 5 mm slice are faint grey lines and steep ones
dots (they were tissue labels where the centre line lay within a radius of the slice's sampled heights:
full contrast in pixel steps, broken into dashes); a thick slice cuts each rib once over the heights it
samples, with marrow only where the slab lies inside the rib's marrow and partial-volume bone toward the
ends of an oblique cut (each height cut the rib at its own place, and the two rings of cortex averaged
into a chain of links); a lesion's texture stops growing with its radius at 20 mm (a 110 mm mass was
mottled like stool); the kidneys lie in perirenal fat, thin in front and thick behind and outside (they
lay against muscle, bowel and liver like round loops; the fat is never drawn over the liver or spleen);
the liver's vessels are thinner and shorter (a score of thick bright streaks in every slice); the
vertebrae's trabecular bone is less mottled (texture 25 HU, was 45); images only: plans, placements and
rows are version 14's;
17: a vessel's line weight no longer jumps with the pixel spacing (its width was rounded to whole pixels,
so a 1.1 mm vessel weighed twice as much at 0.73 mm pixels as at 0.74 mm); the trees supply 600 points
each (were 1,200) spread out to 0.97 of the lung's section (0.85 left the periphery empty), with
terminals of 0.35 mm radius (0.55) thickening by Murray's law toward the hilum (exponent 1/3, was 0.1):
fewer, longer branches reaching the pleura, where the hila were crowded by a web of fine ones; the
vertebral arch's laminae, facets and transverse processes are cortex round marrow (they were solid
cortex), the vertebral body's cortex is 0.9 mm (1.3) and the canal's rim thinner: a 5 mm slice showed 2.7
times the real area above 500 HU round the spine, now 1.5 times; the kidneys are ovals of aspect about
1.45 whose long axis runs 35 degrees from front-to-back with the hilum toward the front and the midline,
centred further out and further forward (they were nearly round, aspect 1.1, 13 mm closer to the spine
than the real ones), and the kidney region leaves out the iliac wings and the iliacus over a lower pole;
the kidney lesions move with their kidneys, so placements and rows differ from version 16's;
18: below the chest the subcutaneous fat is 2-22 mm at the flanks (6-40), half as much again in front,
and lies outside a cavity of fixed size, so a thin patient's body is narrower (the cavity grew as the
fat thinned): flanks 12 mm (real 11, version 17 25), front/flanks 1.18 (real 1.21, version 17 0.65); the
field of view and the pixel spacing follow the narrower bodies, and lesions near the skin move with it,
so rows differ from version 17's; the ribs descend most steeply at the flank (a smooth step from back to
front; a power curve put most of the descent in front), neighbouring ribs differ less in height and
descent (they could cross), and are narrower in the slice's plane with a thinner cortex: within 50 degrees
of the sides a slice at zn 0.55-0.64 cuts 9.1 ribs, 16 mm long (real 8.7 and 17; version 17 4.3 and 32,
a few long bright bars); lumbar vertebral bodies 0.7 times as deep as wide (0.85 at every height: 36
mm deep along the midline, real 29, now 28), the tubes beside them (aorta, IVC, oesophagus) pushed off
the oval rather than a circle, which moves bone lesions in the vertebral bodies; the normalized location
is measured in the standard outline at the patient's scale (``Body.location_frame``), not the drawn skin,
so that it does not move with the fat; ``--quirks`` plants its missing, truncated and 8-bit slices away
from the key slices' context where the run allows;
19: the same plans, rows and lesions, other images: the liver's vessels are two branching trees (the
portal vein's from the porta hepatis, the hepatic veins' from the IVC under the diaphragm) grown as the
lungs' are and blended over the liver as a partial-volume layer, 190 HU in the portal-venous phase (90
streaks of vein label pointing at the IVC, 150 HU, drew fewer, blunter and fainter cuts): at zn 0.50-0.62
10.5 cuts per 100 cm^2 of liver, 12 mm^2, peaks 63 HU above the parenchyma (real 9.8, 13 mm^2, 62 HU;
version 18 6.3, 21 mm^2, 51 HU; ``deeplesion.synth.realism.liver_vessels``);
20: the same plans, rows and lesions, other images: trabecular bone (vertebral bodies, pelvis, femoral
heads, the arch's marrow) 30 HU brighter with more texture (38 HU, was 25): in the middle of the
vertebral body 202 HU, 20 HU of fine and 19 of coarse variation (real 205, 22, 18; version 19 184, 15,
13);
21: the same plans, rows and lesions, other images: the vertebral arch solid bone of 550 HU in thinner
strokes (cortex round marrow drew hollow tubes), small-bowel loops packed so that neighbours share one
flat wall (each was drawn whole over the loops before it), renal veins over 10-12 mm of height, the left
one in front of the aorta (a bar across the spine over 30 mm);
22: the upper chest: the lungs larger just below the apex (zn 0.345-0.37) and reaching the chest wall
from further above zn 0.44 (small lungs lay in a ring of fat), the first rib's head at the lung apex (zn
0.34; 0.365), the upper ribs broader and shorter, the clavicles (none), the scapulae across the chest
wall's posterolateral corner (along the back): bone in 0.63 of the sectors round the upper lungs, real
0.66 (version 21 0.25); lung lesions are placed in the lungs' sections and the drawn lungs bound the
mediastinum and soft-tissue regions, so some placements and rows differ from version 21's;
23: the pelvis: the iliac wings longer and reaching back and in to beside the spinous processes (their
back ends stopped at the sacrum's side), thinner (3-5 mm half-thickness, 5-8 before), compact bone in
their thin parts (marrow drew a grey mottle inside a white rim), the posterior ilium thickest; the
sacrum's alae run straight out to the ilium's inner face, 5 mm short of it (the joint showed nowhere in
the soft-tissue window), and the gluteus medius on the wings' outer face (they lay in fat): slope 47.7
degrees, length 0.82 of the body's half-width, 8.8 mm thick, back ends 0.83 deep and 0.28 out; real 47.8,
0.80, 8.7, 0.81, 0.30 (version 22 0.60 long, back ends 0.72 deep, 0.41 out). Bone lesions placed in a
wing move with it and pelvic lesions stay out of the new muscle, so some rows differ from version 22's.
In the upper mediastinum the aortic arch is a bar from the ascending aorta, left of the trachea, to the
descending aorta (a tube moving front to back with height, across the trachea), the pulmonary arteries
run from the trunk to the hila (none), the arch has its branches and the left brachiocephalic vein, and
the ascending aorta, pulmonary trunk and SVC lie side by side 30-40 mm in front of the trachea (they
overlapped it): between the lungs at zn 0.42-0.46 fat is 0.31 of the tissue (version 22 0.42; real, the
7 regressor slices from the arch to the heart, 0.12), the lungs 48 mm apart (real 70): still too much
fat, the lungs' medial outlines being ellipses;
24: the mediastinum from the lung apices to the heart is a lens drawn over larger lung sections (the lungs
meet it and each other in front, 2.5 mm apart), the great vessels larger (ascending aorta 34 mm across,
30 before), the lung vessel trees start just outside the lens (where the hila are; their trunks lay
under it) and supply only lung the lens leaves: between the lungs at zn 0.42-0.46 fat 0.24 of the tissue,
the lungs 63 mm apart (version 23 0.30 and 47 mm; real 0.12 and 70 mm; ``mediastinal_fat`` in the realism
tests); 2.0% of the lung above -500 HU on 5 mm slices (real 2.5%). The heart has four chambers apart by
their septa (two blood ellipses in one oval of muscle before; images only). Lesions of the four types
under 10% of the real rows choose among 48 candidate places, not 16 (small types ended up to 0.07 from
the real mean location on some seeds), and long diameters are dealt by rows (:class:`SizeHerd`), not one
golden-ratio point per lesion. Every plan is drawn anew: all rows differ from version 23's;
25: the lower pelvis holds organs and muscle: the bladder reaches down to zn 0.90 (0.885), the prostate
or uterus and cervix is an organ of its own from behind the bladder down to the pelvic floor (zn 0.81-
0.915), the levator ani's sling runs round the rectum (zn 0.855-0.93; the rectum reaches 0.93), the hip
flexors lie in front of each hip out to the pubic bone: in the middle of the slice at zn 0.80-0.89 fat is
0.25 of the tissue (version 24 0.46; real, the 6 regressor slices through the hips, 0.19;
``pelvic_middle_fat`` in the realism tests). A type whose planned rows end up further than 0.035 from
the real mean location has a lesion moved to another of its offered places (:func:`_repair_locations`;
40 patients, seeds 0-11: every type within 0.05 on all 12, 11 before; ``--patients 40 --seed 0`` and
1, ``--patients 100 --seed 0`` and ``--patients 120 --seed 2026`` need no move). The pelvic lesion
region changed, so the plans differ from version 24's (the same numbers of rows at 40 and 120 patients,
some pelvic lesions elsewhere);
26: the hip socket is one wedge of bone round the head's medial side, about 7 mm deep in front and 12.5
mm behind (version 25: two concentric arcs 6 mm deep all round, a double ring round the head), inside a
larger muscle round the joint (:func:`~deeplesion.synth.anatomy.hip_joint_muscle`), which the pelvic
lesion region leaves out: a lesion there would lie in the socket's bone. The plans of ``--patients 40
--seed 0``, ``--patients 100 --seed 0`` and ``--patients 120 --seed 2026`` are version 25's (hashed);
another plan may move a pelvic lesion that lay where the muscle now is.
A release of another version is not reused by ``deeplesion demo``."""
QUIRK_CONTEXT_MM = 12.0
"""The file-level quirks (a missing, a truncated, an 8-bit slice) are planted further than this from every
key slice of their series where the run allows: beyond the +-8 mm that a 9-slice 2 mm context reads."""
ZIP_TIMESTAMP = (2018, 7, 27, 0, 0, 0)  # the date the release was re-zipped into whole-series archives
CONTEXT_MM = 25.0  # each key slice brings about +-25 mm of neighbours, more for large lesions
INTERVALS_MM = (5.0, 1.0, 2.0, 2.5)
INTERVAL_WEIGHTS = (0.72, 0.08, 0.10, 0.10)

# Longitudinal design (the numbers the issue asks to state; real: 2.34 studies and 6.75 rows per
# patient over the 29,280 shared rows, 7.39 rows per patient over the whole release).
STUDY_COUNTS = (1, 2, 3, 4, 5, 6)
STUDY_COUNT_WEIGHTS = (0.40, 0.20, 0.13, 0.10, 0.09, 0.08)  # mean 2.52 planned; studies with no row drop
EXTRA_LESIONS_MEAN = 3.5  # lesions per patient: 1 + Poisson(3.5), at most 12
P_PRESENT_AT_BASELINE = 0.85  # else the lesion appears at a later study
P_DISAPPEARS = 0.12  # the lesion is gone (resolved, resected) after some study
P_ANNOTATED = 0.85  # a present, visible lesion gets a DL_info row in a study
P_SAME_SLICE = 0.2  # the next lesion is put at the height of the previous one (shared key slices)
TRENDS = {"grow": (0.3, 1.10, 1.40), "shrink": (0.3, 0.65, 0.90), "stable": (0.4, 0.93, 1.07)}
MAX_SHIFT_MM = 20.0  # patient position between studies, in-plane
MAX_ROTATION_DEG = 3.0
# per-study noise level, HU: measured like the real slices (10th percentile of 7x7 local deviations in
# fat, deeplesion.synth.realism) this gives a median of 10.2 against the real 10.4 (8-14 gave 8.3)
NOISE_HU = (10.0, 18.0)
SCANS = {"cap": ((0.31, 0.90), 0.6), "chest": ((0.30, 0.62), 0.2), "abdomen-pelvis": ((0.53, 0.90), 0.2)}

QUIRKS = (
    "nan-age",
    "missing-slice",
    "unreadable-png",
    "png-8bit",
    "size-768",
    "fractional-window",
    "box-past-edge",
    "slice-number-1000",
)
"""The quirks ``--quirks`` plants, each a real oddity of the release."""


@dataclass
class SeriesPlan:
    """One series of one study: its geometry and look, its lesions and which slices get written."""

    patient: int
    study: int
    series: int
    geometry: SliceGeometry
    look: StudyLook
    interval: float
    z_first: float  # body z (mm) of slice number 1
    slice_count: int
    lesions: list[Lesion3D]  # what is drawn (the patient's present lesions at this study's sizes)
    lesion_ids: list[str]  # the identity of each drawn lesion
    annotated: list[int]  # indices into lesions that get a DL_info row
    age: float | None
    key_slices: dict[int, int] = field(default_factory=dict)  # lesion index -> slice number
    runs: list[tuple[int, int]] = field(default_factory=list)

    @property
    def folder(self) -> str:
        """``PPPPPP_SS_RR``."""
        return series_folder(self.patient, self.study, self.series)

    def z_of(self, slice_number: int) -> float:
        """Body height (mm) of a slice number."""
        return self.z_first + (slice_number - 1) * self.interval

    def slice_of(self, z: float) -> int:
        """Nearest slice number of body height ``z`` mm."""
        return round((z - self.z_first) / self.interval) + 1


@dataclass
class PatientPlan:
    """A patient: anatomy, demographics, split, series, and the 3D lesions with their identities."""

    index: int
    body: Body
    sex: str
    split: Split
    series: list[SeriesPlan]
    lesions: dict[str, Lesion3D] = field(default_factory=dict)  # id -> lesion at its first study size


@dataclass(frozen=True)
class Course:
    """What happens to one lesion over a patient's studies: present from ``first`` to ``last`` (1-based
    study numbers), with a size factor per study."""

    first: int
    last: int
    factors: tuple[float, ...]


def _course(studies: int, rng: np.random.Generator) -> Course:
    first = 1 if studies == 1 or rng.random() < P_PRESENT_AT_BASELINE else int(rng.integers(2, studies + 1))
    last = studies
    if studies > first and rng.random() < P_DISAPPEARS:
        last = int(rng.integers(first, studies))
    names = list(TRENDS)
    trend = TRENDS[names[int(rng.choice(len(names), p=[TRENDS[n][0] for n in names]))]]
    factors, size = [], 1.0
    for study in range(1, studies + 1):
        if study > first:
            size *= float(rng.uniform(trend[1], trend[2])) ** 0.5
        factors.append(size)
    return Course(first, last, tuple(factors))


def _splits(patients: int, rng: np.random.Generator) -> list[Split]:
    """Patient-level split, about 70/15/15, every split present when there are 3 or more patients."""
    if patients < 3:
        return [Split.TRAIN, Split.TEST][:patients]
    n_val = max(1, round(patients * 0.15))
    n_test = max(1, round(patients * 0.15))
    splits = [Split.VAL] * n_val + [Split.TEST] * n_test + [Split.TRAIN] * (patients - n_val - n_test)
    order = rng.permutation(patients)
    return [splits[i] for i in order]


def plan_release(patients: int, seed: int, *, quirks: bool = False) -> list[PatientPlan]:
    """Decide every patient, study, series, lesion and written slice (no pixels yet).

    Lesion types, sizes and heights are dealt across the whole release (:mod:`~deeplesion.synth.lesions`),
    so patients are planned in order; each patient's own choices come from its own random stream.
    """
    if patients < 1:
        raise UsageError("`patients` must be at least 1")
    release_rng = np.random.default_rng([seed, 0])
    splits = _splits(patients, release_rng)
    sizes = SizeHerd({})
    heights = Strata(float(release_rng.random()), {})
    across = Strata(float(release_rng.random()), {})
    front_back = Strata(float(release_rng.random()), {})
    herd = RowHerd({}, {})
    dealt = _Dealt(sizes, (across, front_back, heights), herd)
    plans: list[PatientPlan] = []
    before: list[_Dealt] = []
    options: list[dict[str, tuple[int, list[tuple[float, float, float]]]]] = []
    for p in range(patients):
        before.append(copy.deepcopy(dealt))  # to plan the patient again in _repair_locations
        options.append({})
        plans.append(_plan_patient(p + 1, seed, splits[p], *dealt, options=options[p]))
    _repair_locations(plans, seed, splits, before, options)
    if quirks:
        _plan_quirk_series(plans, seed)
    for plan in plans:
        plan.series = [s for s in plan.series if s.annotated]
        for series in plan.series:
            _plan_runs(series)
    return plans


class _Dealt(NamedTuple):
    """What the release deals across its patients: sizes, the (across, front-back, height) strata, and
    the row herd of types and locations."""

    sizes: SizeHerd
    location: tuple[Strata, Strata, Strata]
    herd: RowHerd


LOCATION_REPAIR_GAP = 0.035
"""A type whose planned rows' mean normalized location lies further than this (largest axis) from the
real mean has one of its lesions moved to another of the places it was offered (version 25)."""
LOCATION_REPAIRS = 4
"""At most this many lesions are moved per release."""


def _row_counts(plan: PatientPlan) -> Counter[str]:
    """Lesion id -> the rows its annotations give."""
    return Counter(series.lesion_ids[i] for series in plan.series for i in series.annotated)


def _location_sums(plans: list[PatientPlan]) -> dict[str, tuple[npt.NDArray[np.float64], float]]:
    """Type -> (rows-weighted sum of the lesions' normalized centres, rows)."""
    sums: dict[str, tuple[npt.NDArray[np.float64], float]] = {}
    for plan in plans:
        for lesion_id, rows in _row_counts(plan).items():
            lesion = plan.lesions[lesion_id]
            total, weight = sums.get(lesion.kind, (np.zeros(3), 0.0))
            sums[lesion.kind] = (
                total + rows * np.asarray(normalized_location(plan.body, *lesion.center)),
                weight + rows,
            )
    return sums


def _location_gaps(sums: dict[str, tuple[npt.NDArray[np.float64], float]]) -> dict[str, float]:
    """Type -> largest per-axis gap between its rows' mean normalized location (``sums``:
    :func:`_location_sums`) and the real mean."""
    types = real_stats()["types"]
    return {
        kind: float(np.abs(total / weight - np.asarray(types[kind]["location_mean"])).max())
        for kind, (total, weight) in sums.items()
        if weight > 0
    }


def _repair_locations(
    plans: list[PatientPlan],
    seed: int,
    splits: list[Split],
    before: list[_Dealt],
    options: list[dict[str, tuple[int, list[tuple[float, float, float]]]]],
) -> None:
    """Move lesions of the type furthest from the real mean location, while it is further than
    :data:`LOCATION_REPAIR_GAP`, at most :data:`LOCATION_REPAIRS` times (in place).

    The herd chooses each lesion's place knowing only the rows it expects; a late lesion of a type with few
    lesions that gives 5-6 rows can leave the type's mean past 0.05 with no lesion left to correct it
    (version 24, 40 patients: 1 seed of 12). Here, with every row known, the lesion and the candidate
    place (among those it was offered) that bring the mean nearest are chosen, and that patient is
    planned again from the same dealt state and random stream with that one choice changed; the move is
    kept only if the worst type's gap shrinks. Deterministic: it depends only on the plans."""
    picks: dict[int, dict[int, int]] = {}
    types = real_stats()["types"]
    for _ in range(LOCATION_REPAIRS):
        sums = _location_sums(plans)
        gaps = _location_gaps(sums)
        kind = max(gaps, key=lambda k: gaps[k])
        if gaps[kind] <= LOCATION_REPAIR_GAP:
            return
        total, weight = sums[kind]
        target = np.asarray(types[kind]["location_mean"])
        best: tuple[float, int, int, int] | None = None
        for p, plan in enumerate(plans):
            for lesion_id, rows in _row_counts(plan).items():
                if plan.lesions[lesion_id].kind != kind:
                    continue
                ordinal, offered = options[p][lesion_id]
                now = np.asarray(normalized_location(plan.body, *plan.lesions[lesion_id].center))
                moved = (total - rows * now)[None, :] + rows * np.asarray(offered)
                gap = np.abs(moved / weight - target).max(axis=1)
                j = int(np.argmin(gap))
                if best is None or gap[j] < best[0]:
                    best = (float(gap[j]), p, ordinal, j)
        if best is None or best[0] >= gaps[kind]:
            return
        _, p, ordinal, j = best
        tried = {**picks.get(p, {}), ordinal: j}
        tried_options: dict[str, tuple[int, list[tuple[float, float, float]]]] = {}
        dealt = copy.deepcopy(before[p])
        previous = plans[p], options[p]
        plans[p] = _plan_patient(p + 1, seed, splits[p], *dealt, picks=tried, options=tried_options)
        options[p] = tried_options
        if max(_location_gaps(_location_sums(plans)).values()) >= max(gaps.values()):
            plans[p], options[p] = previous
            return
        picks[p] = tried


def _plan_patient(
    index: int,
    seed: int,
    split: Split,
    sizes: SizeHerd,
    location: tuple[Strata, Strata, Strata],
    herd: RowHerd,
    *,
    picks: dict[int, int] | None = None,
    options: dict[str, tuple[int, list[tuple[float, float, float]]]] | None = None,
) -> PatientPlan:
    """One patient's plan; ``picks`` (the ordinal of a lesion among the patient's draws -> the index of
    the candidate place it takes, :func:`_repair_locations`) overrides the herd's choices, and
    ``options``, when given, receives each placed lesion's ordinal and candidate places (normalized)."""
    across, front_back, heights = location
    rng = np.random.default_rng([seed, index])
    body = random_body(rng)
    sex = str(rng.choice(["M", "F"]))
    if sex == "F":  # a child generator: spawning leaves `rng`, and so the plan, as it was
        body = replace(body, breast_mm=float(rng.spawn(1)[0].uniform(12.0, 40.0)))
    studies = int(rng.choice(STUDY_COUNTS, p=STUDY_COUNT_WEIGHTS))
    count = 1 + min(int(rng.poisson(EXTRA_LESIONS_MEAN)), 11)
    plan = PatientPlan(index, body, sex, split, [])
    courses: dict[str, Course] = {}
    placed: list[Lesion3D] = []
    size_bins: dict[str, int] = {}
    for ordinal in range(count):
        course = _course(studies, rng)
        rows = course.last - course.first + 1.0  # the rows it gives if annotated in every study
        kind = herd.next_type(rows, rng)
        same_z = None
        if placed and rng.random() < P_SAME_SLICE:
            # on the key slice of an earlier lesion whose height suits this type (5-95% of the real ones)
            low, high = type_height_range(kind)
            fitting = [x.center[2] for x in placed if low <= body.zn(x.center[2]) <= high]
            same_z = fitting[int(rng.integers(len(fitting)))] if fitting else None
        where = (across.next(kind, rng), front_back.next(kind, rng), heights.next(kind, rng))
        size, size_bin = sizes.next(kind, rows, rng)
        offered: list[tuple[float, float, float]] = []
        lesion = make_lesion(
            body,
            kind,
            draw_long_mm(kind, size),
            rng,
            where,
            placed,
            z_hint=same_z,
            herd=herd,
            weight=rows,
            pick=None if picks is None else picks.get(ordinal),
            options=offered,
        )
        if lesion is None:
            log.debug("patient %d: no room for a %s lesion", index, kind)
            sizes.add(kind, size_bin, -rows)
            continue
        lesion_id = f"{index:06d}-L{len(placed) + 1:02d}"
        if options is not None:
            options[lesion_id] = (ordinal, offered)
        size_bins[lesion_id] = size_bin
        placed.append(lesion)
        plan.lesions[lesion_id] = lesion
        courses[lesion_id] = course
    age = float(rng.integers(25, 86))
    # growth stops at the longest real lesion, 342.5 mm (the compounded factors reached a 487 mm row);
    # a lesion fits in twice its reach, so only one that could grow past the limit is measured (the
    # measurement costs as much as placing the lesion did)
    longest = float(real_stats()["long_mm_quantiles"][-1])
    caps = {
        i: max(1.0, longest / feret_at_centre(x))
        for i, x in plan.lesions.items()
        if 2.0 * x.reach_mm * max(courses[i].factors) > longest
    }
    for study in range(1, studies + 1):
        if study > 1:
            age += float(rng.uniform(0.1, 1.5))
        present = [
            (
                lesion_id,
                lesion.scaled(min(courses[lesion_id].factors[study - 1], caps.get(lesion_id, math.inf))),
            )
            for lesion_id, lesion in plan.lesions.items()
            if courses[lesion_id].first <= study <= courses[lesion_id].last
        ]
        plan.series.append(
            _series_plan(
                index,
                study,
                2 if rng.random() < 0.1 else 1,
                body,
                [lesion for _, lesion in present],
                [lesion_id for lesion_id, _ in present],
                float(rng.choice(INTERVALS_MM, p=INTERVAL_WEIGHTS)),
                age,
                rng,
            )
        )
    # the herd counted every lesion as annotated in every study it is in; now the rows are known
    given = _row_counts(plan)
    for lesion_id, lesion in plan.lesions.items():
        where = normalized_location(body, *lesion.center)
        course = courses[lesion_id]
        surplus = given[lesion_id] - (course.last - course.first + 1.0)
        herd.add(lesion.kind, where, surplus)
        sizes.add(lesion.kind, size_bins[lesion_id], surplus)
    return plan


def _random_look(body: Body, rng: np.random.Generator) -> StudyLook:
    return StudyLook(
        phase=int(rng.choice(len(PHASE_WEIGHTS), p=PHASE_WEIGHTS)),
        oral_contrast=bool(rng.random() < 0.35),
        noise_hu=float(rng.uniform(*NOISE_HU)),
        blur_px=float(rng.uniform(0.6, 0.85)),
        fat_hu=body.fat_hu,
    )


def _random_pose(rng: np.random.Generator) -> tuple[float, float, float]:
    radius = MAX_SHIFT_MM * math.sqrt(float(rng.random()))
    direction = float(rng.uniform(0.0, 2.0 * math.pi))
    angle = math.radians(float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG)))
    return angle, radius * math.cos(direction), radius * math.sin(direction)


def _series_plan(
    patient: int,
    study: int,
    series: int,
    body: Body,
    lesions: list[Lesion3D],
    lesion_ids: list[str],
    interval: float,
    age: float,
    rng: np.random.Generator,
    *,
    size: int = 512,
    scan: str | None = None,
    spacing: float | None = None,
    z_first: float | None = None,
    pose: tuple[float, float, float] | None = None,
) -> SeriesPlan:
    if scan is None:
        names = list(SCANS)
        scan = names[int(rng.choice(len(names), p=[SCANS[n][1] for n in names]))]
        (low, high), _ = SCANS[scan]
        if not any(low * body.height_mm < x.center[2] < high * body.height_mm for x in lesions):
            scan = "cap"
    (low, high), _ = SCANS[scan]
    z_start = low * body.height_mm + float(rng.uniform(-15.0, 15.0))  # where the technologist starts
    z_end = high * body.height_mm
    if z_first is not None:
        z_start = z_first
    pose = _random_pose(rng) if pose is None else pose
    # the field of view follows the body's widest width over the scanned range (below the shoulders),
    # 0.97-1.25 times it: on the shared real slices, one per series, the body spans 0.77 of the image
    # width (10th-90th percentile 0.68-0.95; realism.body_width_fraction). Version 8 fitted 0.90-1.02 to
    # the median over all 137 slices, 0.99, which one patient's three series (90 slices) decide.
    # Spacing 0.6-0.98 mm at 512 px.
    if spacing is None:
        heights = np.linspace(max(low, 0.40), high, 9) * body.height_mm
        widest = max(body.outline(float(z)).a for z in heights)
        shift = math.hypot(pose[1], pose[2])
        fov = 2.0 * (widest + shift) * float(rng.uniform(0.97, 1.25))
        # yet every lesion in the scanned range lies inside the circular field of view, 5 mm from its edge
        for lesion in lesions:
            if z_start - lesion.reach_mm <= lesion.center[2] <= z_end + lesion.reach_mm:
                fov = max(fov, 2.0 * (math.hypot(*lesion.center[:2]) + shift + lesion.reach_mm + 5.0))
        # field-of-view steps of 1 mm, written with 6 digits like the release (0.742188 = 380 mm / 512)
        spacing = round(float(np.clip(round(fov) / size, 0.6, 0.98)), 6)
    geometry = SliceGeometry(size, spacing, float(rng.choice([-1024.0, -3024.0])), pose)
    count = int((z_end - z_start) // interval) + 1
    inside = [i for i, x in enumerate(lesions) if z_start + 5.0 < x.center[2] < z_end - 5.0]
    annotated = [i for i in inside if rng.random() < P_ANNOTATED]
    return SeriesPlan(
        patient,
        study,
        series,
        geometry,
        _random_look(body, rng),
        interval,
        z_start,
        count,
        lesions,
        lesion_ids,
        annotated,
        round(age),
    )


def _plan_quirk_series(plans: list[PatientPlan], seed: int) -> None:
    """Add the series that carry image-level quirks: a 768 px series, and a 1 mm whole-body series whose
    slice numbers pass 1000 with a soft-tissue lesion at the image edge (a body wider than the scan)."""
    rng = np.random.default_rng([seed, 999])
    first = next((p for p in plans if p.lesions), plans[0])
    study = len(first.series) + 1
    lesions, ids = list(first.lesions.values()), list(first.lesions)
    big = _series_plan(first.index, study, 1, first.body, lesions, ids, 5.0, 60.0, rng, size=768, scan="cap")
    big.annotated = [i for i, x in enumerate(lesions) if big.z_first + 5.0 < x.center[2]]
    first.series.append(big)

    host = plans[min(1, len(plans) - 1)]
    body = host.body
    z = 0.62 * body.height_mm
    size, spacing = 512, round(max(0.95 * body.outline(z).a / 256, 0.6), 6)
    col = size - 1 - 4  # 4 px inside the right edge; the padded box must leave the image
    x_mm = (col - (size - 1) / 2.0) * spacing
    edge = Lesion3D((x_mm, 0.0, z), (5.0, 4.0, 5.0), 0.0, "soft_tissue", look="node")
    others = [(i, x) for i, x in host.lesions.items() if math.dist(x.center, edge.center) > x.reach_mm + 12.0]
    wide = _series_plan(
        host.index,
        len(host.series) + 1,
        1,
        body,
        [x for _, x in others] + [edge],
        [i for i, _ in others] + [f"{host.index:06d}-X01"],
        1.0,
        61.0,
        rng,
        scan="cap",
        spacing=spacing,
        z_first=z - 1030.0,  # the key slice lands at number 1031
        pose=(0.0, 0.0, 0.0),
    )
    wide.annotated = [len(wide.lesions) - 1]
    host.series.append(wide)


def _plan_runs(series: SeriesPlan) -> None:
    """Key slice per annotated lesion, and the merged runs of about +-25 mm around them."""
    spans = []
    for i in series.annotated:
        lesion = series.lesions[i]
        key = min(max(series.slice_of(lesion.center[2]), 1), series.slice_count)
        series.key_slices[i] = key
        reach_mm = max(CONTEXT_MM, 1.2 * lesion.semi_axes[2])
        half = math.ceil(reach_mm / series.interval)
        spans.append((max(1, key - half), min(series.slice_count, key + half)))
    runs: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if runs and start <= runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        else:
            runs.append((start, end))
    series.runs = runs


def _run_of(series: SeriesPlan, slice_number: int) -> tuple[int, int]:
    return next(r for r in series.runs if r[0] <= slice_number <= r[1])


@dataclass
class SynthResult:
    """What :func:`make_synthetic_release` wrote."""

    root: Path
    patients: int
    lesions: int
    key_slices: int
    slices: int
    bytes_written: int
    zips: list[str]
    quirks: list[dict[str, Any]]


def make_synthetic_release(
    out: str | os.PathLike[str],
    *,
    patients: int = 20,
    seed: int = 0,
    zips: bool = False,
    quirks: bool = False,
    force: bool = False,
    zip_target_bytes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
) -> SynthResult:
    """Generate a synthetic release in the official layout.

    Parameters
    ----------
    out
        Output folder; refused when not empty unless ``force`` (then replaced once the new one is done).
    patients
        Number of patients (about 120 slices and 2-3 lesions each).
    seed
        Random seed: the same seed gives the same files.
    zips
        Also write ``Images_png_NN.zip`` archives (at least two) and ``MD5_checksums.txt``.
    quirks
        Plant the real oddities listed in :data:`QUIRKS`; each is recorded in ``synth-manifest.json``.
    zip_target_bytes
        Aim for archives of about this size (default: split the images into two or more equal parts).
    progress
        Called as ``progress(done, total)`` after each slice (with ``jobs`` > 1: after each series, with
        the slices done so far).
    jobs
        Worker processes rendering series in parallel (``deeplesion.parallel``); every series has its own
        random generator, so the files are the same for any number of jobs.

    Returns
    -------
    SynthResult
        Counts, the archive names and the planted quirks.
    """
    plans = plan_release(patients, seed, quirks=quirks)
    total = sum(end - start + 1 for p in plans for s in p.series for start, end in s.runs)
    with staged_dir(Path(out), force=force) as stage:
        records: list[Lesion] = []
        ages: list[str] = []
        lesion_ids: list[str] = []
        slices_written = 0
        tasks = [(plan, series) for plan in plans for series in plan.series]
        if jobs <= 1:
            results = []
            for plan, series in tasks:
                rows, count = _write_series(stage, plan, series, seed, progress, slices_written, total)
                slices_written += count
                results.append(rows)
        else:
            from deeplesion.parallel import map_calls

            results = [[] for _ in tasks]
            calls = [(k, stage, plan, series, seed) for k, (plan, series) in enumerate(tasks)]
            for k, rows, count in map_calls(_write_series_task, calls, jobs=jobs):
                results[k] = rows
                slices_written += count
                if progress is not None:
                    progress(slices_written, total)
        for rows in results:  # in plan order, whatever order the workers finished in
            for lesion, age, lesion_id in rows:
                records.append(lesion)
                ages.append(age)
                lesion_ids.append(lesion_id)
        _mark_noisy(records, seed)
        planted = _plant_quirks(stage, plans, records, ages, seed) if quirks else []
        catalog = from_lesions(records, ages=ages)
        (stage / DEFAULT_FILE_NAME).write_text(dl_info_text(catalog), encoding="utf-8", newline="")
        archive_names = _write_zips(stage, zip_target_bytes) if zips else []
        manifest = {
            "generator": "deeplesion synth",
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "patients": patients,
            "rows": len(records),
            "key_slices": catalog.num_key_slices,
            "slices": slices_written - sum(q["quirk"] == "missing-slice" for q in planted),
            "zips": archive_names,
            "quirks": planted,
            "lesion_ids": lesion_ids,
            "lesions": _lesion_truth(plans),
            "series": _series_truth(plans),
        }
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        size = sum(f.stat().st_size for f in stage.rglob("*") if f.is_file())
    return SynthResult(
        Path(out),
        patients,
        len(records),
        catalog.num_key_slices,
        manifest["slices"],
        size,
        archive_names,
        planted,
    )


def _lesion_truth(plans: list[PatientPlan]) -> dict[str, dict[str, Any]]:
    """For each 3D lesion id: its type and look, its centre in the body frame (mm; x to the patient's
    left, y to the back, z toward the feet), and per study that draws it: the series, the centre in that
    series' images (``centre_px`` column and row, ``centre_slice`` a fractional slice number,
    ``centre_mm`` x and y mm from the image centre and z mm from slice 1, all after the study's patient
    shift and rotation), ``diameters_mm`` (the largest in-plane extent of the central section, the
    perpendicular one, the height; mm at that study) and whether the study annotates it."""
    truth: dict[str, dict[str, Any]] = {}
    for plan in plans:
        for series in plan.series:
            for i, (lesion, lesion_id) in enumerate(zip(series.lesions, series.lesion_ids, strict=True)):
                entry = truth.setdefault(
                    lesion_id,
                    {
                        "type": lesion.kind,
                        "look": lesion.look,
                        "body_centre_mm": [round(v, 3) for v in lesion.center],
                        "studies": {},
                    },
                )
                col, row = series.geometry.to_px(lesion.center[0], lesion.center[1])
                centre = series.geometry.center_px
                spacing = series.geometry.spacing
                long_mm = feret_at_centre(lesion)
                entry["studies"][str(series.study)] = {
                    "series": series.folder,
                    "centre_px": [round(col, 2), round(row, 2)],
                    "centre_slice": round(1.0 + (lesion.center[2] - series.z_first) / series.interval, 3),
                    "centre_mm": [
                        round((col - centre) * spacing, 3),
                        round((row - centre) * spacing, 3),
                        round(lesion.center[2] - series.z_first, 3),
                    ],
                    "diameters_mm": [
                        round(long_mm, 3),
                        round(long_mm * lesion.semi_axes[1] / lesion.semi_axes[0], 3),
                        round(2 * lesion.semi_axes[2], 3),
                    ],
                    "annotated": i in series.annotated,
                }
    return truth


def _series_truth(plans: list[PatientPlan]) -> dict[str, dict[str, Any]]:
    """For each series folder: how its images relate to the body frame and how they look (the patient's
    pose, where slice 1 lies, the contrast phase and noise level)."""
    out: dict[str, dict[str, Any]] = {}
    for plan in plans:
        for series in plan.series:
            angle, dx, dy = series.geometry.pose
            out[series.folder] = {
                "rotation_deg": round(math.degrees(angle), 4),
                "shift_mm": [round(dx, 3), round(dy, 3)],
                "slice1_body_z_mm": round(series.z_first, 3),
                "interval_mm": series.interval,
                "spacing_mm": series.geometry.spacing,
                "phase": PHASES[series.look.phase],
                "oral_contrast": series.look.oral_contrast,
                "noise_hu": round(series.look.noise_hu, 2),
            }
    return out


def _write_series_task(
    k: int, root: Path, plan: PatientPlan, series: SeriesPlan, seed: int
) -> tuple[int, list[tuple[Lesion, str, str]], int]:
    """:func:`_write_series` in a worker process: the task's position, its rows and its slice count."""
    rows, count = _write_series(root, plan, series, seed, None, 0, 0)
    return k, rows, count


def _write_series(
    root: Path,
    plan: PatientPlan,
    series: SeriesPlan,
    seed: int,
    progress: Callable[[int, int], None] | None,
    done: int,
    total: int,
) -> tuple[list[tuple[Lesion, str, str]], int]:
    """Render and write every slice of the series' runs; measure its key slices (each row with the
    identity of the 3D lesion it measures)."""
    rng = np.random.default_rng([seed, plan.index, series.study, series.series, 7])
    renderer = make_series(series.geometry, series.look, series.interval, series.lesions, rng)
    folder = root / IMAGES_DIR / series.folder
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for start, end in series.runs:
        for number in range(start, end + 1):
            hu = render_slice(plan.body, renderer, series.z_of(number), rng)
            # zlib level 1: 40% faster than the default for 3% more bytes (noise barely compresses)
            (folder / f"{number:03d}.png").write_bytes(encode_slice(hu, compression=1))
            count += 1
            if progress is not None:
                progress(done + count, total)
    rows = []
    for i in series.annotated:
        lesion = _measure(plan, series, i, rng, seed)
        if lesion is not None:
            age = "NaN" if series.age is None else str(int(series.age))
            rows.append((lesion, age, series.lesion_ids[i]))
    rows.sort(key=lambda r: (r[0].key_slice, r[0].recist[0, 0]))
    return rows, count


def key_slice_measurement(
    plan: PatientPlan, series: SeriesPlan, index: int
) -> tuple[npt.NDArray[np.float64], tuple[float, float, float]] | None:
    """RECIST and normalized location of annotated lesion ``index`` of ``series`` on its key slice.

    Returns
    -------
    (recist, location) or None
        (4, 2) float64 RECIST endpoints in 0-based pixels (long axis, then short axis; before the readers'
        sub-pixel jitter) and the (x, y, z) normalized location clipped to 0-1; None when the lesion
        covers fewer than 4 pixels there (not annotatable).
    """
    lesion = series.lesions[index]
    z = series.z_of(series.key_slices[index])
    rows, cols, mask = lesion_mask(lesion, series.geometry, z)
    if mask.sum() < 4:
        return None
    recist = recist_from_mask(mask) + np.array([cols.start, rows.start], dtype=np.float64)
    where = normalized_location(plan.body, lesion.center[0], lesion.center[1], z)
    x, y, zn = (min(max(v, 0.0), 1.0) for v in where)
    return recist, (x, y, zn)


def planned_rows(
    plans: list[PatientPlan],
) -> tuple[list[str], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The rows a release of these plans would write, measured as the release measures them (on the
    annotation masks, before the readers' sub-pixel jitter and the location noise), without pixels.

    Returns
    -------
    kinds, long_mm, locations
        (N,) type names, (N,) float64 long diameters in mm and (N, 3) float64 normalized locations.
    """
    kinds, longs, locations = [], [], []
    for plan in plans:
        for series in plan.series:
            for i in series.annotated:
                measured = key_slice_measurement(plan, series, i)
                if measured is None:
                    continue
                recist, location = measured
                kinds.append(series.lesions[i].kind)
                longs.append(float(np.linalg.norm(recist[0] - recist[1])) * series.geometry.spacing)
                locations.append(location)
    return kinds, np.array(longs, dtype=np.float64), np.array(locations, dtype=np.float64).reshape(-1, 3)


LOCATION_STUDY_SD = (0.017, 0.020, 0.004)
"""Standard deviation of a study's shift of the normalized location (x, y, z): the body-part regressor
and the body outline differ between studies. With the two below, fitted to the 426 cross-study Deep
Lesion Tracker pairs (same lesion, two studies: differences of sd 0.032, 0.037, 0.011; pairs of one
study pair share a shift of sd 0.024, 0.028, 0.006) and its 27 same-study pairs (two series: sd 0.005,
0.008, 0.007)."""
LOCATION_LESION_SD = (0.011, 0.010, 0.004)
"""Standard deviation of one lesion's own shift per study (the body deforms, the key slice moves)."""
LOCATION_ROW_SD = (0.0035, 0.0055, 0.0045)
"""Standard deviation of one row's noise (two series of one study differ by this much, times sqrt 2)."""


def _location_noise(
    seed: int, plan: PatientPlan, series: SeriesPlan, lesion_id: str
) -> npt.NDArray[np.float64]:
    """The measurement noise of a row's normalized location: a study shift, the lesion's shift in that
    study, and the row's own noise. Drawn from generators of their own so that the images and every other
    column stay as they were."""
    lesion = zlib.crc32(lesion_id.encode())
    study = np.random.default_rng([seed, plan.index, series.study, 101]).normal(0.0, LOCATION_STUDY_SD)
    own = np.random.default_rng([seed, plan.index, series.study, lesion, 102]).normal(0.0, LOCATION_LESION_SD)
    row = np.random.default_rng([seed, plan.index, series.study, series.series, lesion, 103]).normal(
        0.0, LOCATION_ROW_SD
    )
    return study + own + row


def _measure(
    plan: PatientPlan, series: SeriesPlan, index: int, rng: np.random.Generator, seed: int
) -> Lesion | None:
    """The DL_info row of one lesion, measured on its mask on the key slice (None if it is too small)."""
    lesion3d = series.lesions[index]
    key = series.key_slices[index]
    geometry = series.geometry
    measured = key_slice_measurement(plan, series, index)
    if measured is None:
        log.debug("lesion %d of %s is too small on slice %d; not annotated", index, series.folder, key)
        return None
    recist, where = measured
    # readers click between pixel centres: a little sub-pixel jitter, kept on the lesion's boundary pixel
    recist = np.round(recist + rng.uniform(-0.3, 0.3, recist.shape), 3)
    box = np.round(np.concatenate([recist.min(0) - BOX_PADDING_PX, recist.max(0) + BOX_PADDING_PX]), 3)
    diameters = (
        round(float(np.linalg.norm(recist[0] - recist[1])), 4),
        round(float(np.linalg.norm(recist[2] - recist[3])), 4),
    )
    noisy_where = np.clip(
        np.asarray(where) + _location_noise(seed, plan, series, series.lesion_ids[index]), 0, 1
    )
    location = tuple(round(float(v), 6) for v in noisy_where)
    kind = lesion3d.kind
    window = (-1500.0, 500.0) if kind == "lung" else (-175.0, 275.0)
    return Lesion(
        file_name=key_file_name(series.patient, series.study, series.series, key),
        patient=series.patient,
        study=series.study,
        series=series.series,
        key_slice=key,
        recist=recist,
        box=box,
        diameters_px=diameters,
        location=location,  # type: ignore[arg-type]
        lesion_type=LesionType.parse(kind) if plan.split is not Split.TRAIN else LesionType.UNKNOWN,
        noisy=False,
        slice_range=_run_of(series, key),
        spacing=(geometry.spacing, geometry.spacing, series.interval),
        image_size=(geometry.size, geometry.size),
        window=window,
        sex=plan.sex,
        age=series.age,
        split=plan.split,
        row=0,
        lesion_index=None,
    )


def _mark_noisy(records: list[Lesion], seed: int) -> None:
    """Flag about 1 in 60 rows as Possibly_noisy (at least one from 10 rows), as the release has a few."""
    if len(records) < 10:
        return
    rng = np.random.default_rng([seed, 77])
    count = max(1, round(len(records) / 60))
    for i in rng.choice(len(records), count, replace=False):
        records[int(i)] = _replace(records[int(i)], noisy=True)


def _replace(lesion: Lesion, **changes: Any) -> Lesion:
    from dataclasses import replace

    return replace(lesion, **changes)


def _plant_quirks(
    root: Path, plans: list[PatientPlan], records: list[Lesion], ages: list[str], seed: int
) -> list[dict[str, Any]]:
    """Plant the row-level and file-level quirks; return the manifest entries (line = CSV line)."""
    import cv2

    rng = np.random.default_rng([seed, 4242])
    planted: list[dict[str, Any]] = []
    csv = DEFAULT_FILE_NAME

    def entry(quirk: str, code: str, **where: Any) -> None:
        planted.append({"quirk": quirk, "code": code, **where})

    for i, lesion in enumerate(records):
        if lesion.image_size[0] == 768:
            entry(
                "size-768",
                "size-not-512",
                file=csv,
                line=i + 2,
                file_name=lesion.file_name,
                path=f"{IMAGES_DIR}/{lesion.folder}",
            )
            break
    for i, lesion in enumerate(records):
        if lesion.key_slice >= 1000:
            entry(
                "slice-number-1000",
                "slice-number-wide",
                file=csv,
                line=i + 2,
                file_name=lesion.file_name,
                path=f"{IMAGES_DIR}/{lesion.folder}",
            )
        if lesion.box[2] > lesion.image_size[0] - 1 or lesion.box[0] < 0:
            entry("box-past-edge", "box-outside-image", file=csv, line=i + 2, file_name=lesion.file_name)
    ordinary = [i for i, x in enumerate(records) if x.image_size[0] == 512 and x.key_slice < 1000]
    nan_row, window_row = int(ordinary[0]), int(ordinary[-1])
    ages[nan_row] = "NaN"
    records[nan_row] = _replace(records[nan_row], age=None)
    entry("nan-age", "age-missing", file=csv, line=nan_row + 2, file_name=records[nan_row].file_name)
    records[window_row] = _replace(records[window_row], window=(-177.5, 307.5))
    entry(
        "fractional-window",
        "window-fractional",
        file=csv,
        line=window_row + 2,
        file_name=records[window_row].file_name,
    )

    # file-level quirks on non-key slices strictly inside a run, in different series where possible, and
    # out of the default context of every key slice where the run allows (a quirk beside a key slice made
    # a training loader on this release fail on the slice that the inventory is there to find first)
    keys = {(x.folder, x.key_slice) for x in records}
    candidates = []
    for plan in plans:
        for series in plan.series:
            if series.geometry.size != 512:
                continue
            own_keys = [number for folder, number in keys if folder == series.folder]
            for start, end in series.runs:
                inner = [n for n in range(start + 1, end) if (series.folder, n) not in keys]
                apart = [
                    n for n in inner if all(abs(n - k) * series.interval > QUIRK_CONTEXT_MM for k in own_keys)
                ]
                if inner:
                    candidates.append((series.folder, apart or inner))
    if len(candidates) < 3:
        raise UsageError(
            "too few series to plant the file quirks; use `patients=3` or more with `quirks=True`"
        )
    picks = [candidates[int(i)] for i in rng.choice(len(candidates), 3, replace=False)]
    targets = [(folder, int(inner[len(inner) // 2])) for folder, inner in picks]
    (folder, number), (folder2, number2), (folder3, number3) = targets
    path = root / slice_path(folder, number)
    path.unlink()
    entry("missing-slice", "slice-missing", path=slice_path(folder, number))
    path = root / slice_path(folder2, number2)
    path.write_bytes(path.read_bytes()[:300])  # a download cut short
    entry("unreadable-png", "png-unreadable", path=slice_path(folder2, number2))
    path = root / slice_path(folder3, number3)
    hu = read_slice_hu(path).astype(np.float32)
    eight_bit = np.clip((hu + 1024) / 4095 * 255, 0, 255).astype(np.uint8)
    _, data = cv2.imencode(".png", eight_bit)
    path.write_bytes(bytes(data))
    entry("png-8bit", "png-bit-depth", path=slice_path(folder3, number3))
    return planted


def _write_zips(root: Path, target_bytes: int | None) -> list[str]:
    """Pack whole series folders into ``Images_png_NN.zip`` (sorted members, fixed timestamps)."""
    folders = sorted(p for p in (root / IMAGES_DIR).iterdir() if p.is_dir())
    sizes = [sum(f.stat().st_size for f in folder.iterdir()) for folder in folders]
    total = sum(sizes)
    parts = max(2, math.ceil(total / target_bytes)) if target_bytes else 2
    parts = min(parts, len(folders)) if len(folders) >= 2 else 1
    groups: list[list[Path]] = [[] for _ in range(parts)]
    running = 0
    for folder, size in zip(folders, sizes, strict=True):
        # contiguous groups of about equal size, as the release's archives hold consecutive patients
        groups[min(int(running * parts / max(total, 1)), parts - 1)].append(folder)
        running += size
    names = []
    for number, group in enumerate((g for g in groups if g), 1):
        name = f"Images_png_{number:02d}.zip"
        with zipfile.ZipFile(root / name, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for folder in group:
                for file in sorted(folder.iterdir()):
                    info = zipfile.ZipInfo(f"{IMAGES_DIR}/{folder.name}/{file.name}", date_time=ZIP_TIMESTAMP)
                    info.external_attr = 0o644 << 16
                    archive.writestr(info, file.read_bytes())
        names.append(name)
    lines = [f"{file_digest(root / name, 'md5')}  {name}" for name in [*names, DEFAULT_FILE_NAME]]
    # the official list has no newline after its last line; neither does this one
    (root / CHECKSUMS_NAME).write_text("\n".join(lines), encoding="ascii")
    return names
