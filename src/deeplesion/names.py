"""Every name of the release in one place: series folders, slice files, key-slice file names, NIfTI
sub-volumes and COCO image ids, each with its parser.

::

    Images_png/000001_01_01/109.png      IMAGES_DIR / series_folder(1, 1, 1) / slice_file_name(109)
    000001_01_01_109.png                 key_file_name(1, 1, 1, 109)   (DL_info.csv's File_name)
    000001_01_01_103-115.nii.gz          subvolume_name("000001_01_01", 103, 115)
    1010100109                           coco_image_id("000001_01_01_109.png")

Slice numbers are written ``%03d`` (``009.png``, ``1022.png``), as the release does. Pure string work:
nothing here touches the disk.
"""

from __future__ import annotations

from deeplesion.errors import UsageError

IMAGES_DIR = "Images_png"
"""The release's folder of series folders, under the data root."""


def series_folder(patient: int, study: int, series: int) -> str:
    """Folder name ``PPPPPP_SS_RR`` of a series (zero-padded 6, 2 and 2 digits)."""
    return f"{patient:06d}_{study:02d}_{series:02d}"


def slice_file_name(slice_number: int) -> str:
    """The PNG of a slice inside its folder, ``NNN.png`` (``%03d``: 1000 and above get 4 digits)."""
    return f"{slice_number:03d}.png"


def slice_path(folder: str, slice_number: int) -> str:
    """Release-relative path ``Images_png/<folder>/<NNN>.png``."""
    return f"{IMAGES_DIR}/{folder}/{slice_file_name(slice_number)}"


def key_file_name(patient: int, study: int, series: int, slice_number: int) -> str:
    """The ``File_name`` of a slice, ``PPPPPP_SS_RR_NNN.png``."""
    return f"{series_folder(patient, study, series)}_{slice_file_name(slice_number)}"


def parse_file_name(file_name: str) -> tuple[str, int]:
    """``PPPPPP_SS_RR_NNN.png`` -> (``PPPPPP_SS_RR``, NNN).

    Raises
    ------
    UsageError
        The name does not have that form.
    """
    stem = file_name.removesuffix(".png")
    folder, _, number = stem.rpartition("_")
    if not folder or not number.isdigit() or folder.count("_") != 2:
        raise UsageError(f"{file_name!r} is not a DeepLesion slice name like 000001_01_01_109.png")
    return folder, int(number)


def folder_of(file_name: str) -> str:
    """The series folder of a ``File_name`` (``000001_01_01_109.png`` -> ``000001_01_01``), unchecked:
    for names already read from a catalog (use :func:`parse_file_name` for names from a user)."""
    return file_name.rsplit("_", 1)[0]


def slice_number_of(name: str) -> int | None:
    """The slice number of a file name in the release's form (``%03d.png``: ``009.png``, ``1022.png``),
    else None (``9.png``, ``0009.png`` and other names are not release slices: a ``%03d`` path would
    never find them)."""
    stem, _, ext = name.partition(".")
    if ext != "png" or not stem.isdigit() or name != slice_file_name(int(stem)):
        return None
    return int(stem)


def subvolume_name(folder: str, first: int, last: int) -> str:
    """``<PPPPPP_SS_RR>_<first:03d>-<last:03d>.nii.gz`` (the official converter's name)."""
    return f"{folder}_{first:03d}-{last:03d}.nii.gz"


def parse_subvolume_name(name: str) -> tuple[str, int, int]:
    """Inverse of :func:`subvolume_name` (also accepts names without ``.nii.gz``)."""
    stem = name.removesuffix(".gz").removesuffix(".nii")
    folder, _, span = stem.rpartition("_")
    first, _, last = span.partition("-")
    if folder.count("_") != 2 or not first.isdigit() or not last.isdigit():
        raise UsageError(f"{name!r} is not a sub-volume name like 000001_01_01_103-115.nii.gz")
    return folder, int(first), int(last)


def coco_image_id(file_name: str) -> int:
    """The COCO image id of a slice ``PPPPPP_SS_RR_NNN.png``: the same in every export, never 0."""
    stem = file_name.removesuffix(".png")
    parts = stem.split("_")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise UsageError(f"{file_name!r} is not a DeepLesion slice name like 000001_01_01_109.png")
    patient, study, series, number = (int(p) for p in parts)
    if study > 99 or series > 99 or number > 99999:
        raise UsageError(f"{file_name!r}: study, series or slice number too large for a COCO image id")
    return ((patient * 100 + study) * 100 + series) * 100000 + number


def file_name_of_image_id(image_id: int) -> str:
    """Inverse of :func:`coco_image_id`."""
    rest, number = divmod(int(image_id), 100000)
    rest, series = divmod(rest, 100)
    patient, study = divmod(rest, 100)
    return key_file_name(patient, study, series, number)
