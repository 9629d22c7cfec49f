"""Overlays, the body map and the HTML report: checked on pixels and content, not only on files."""

from __future__ import annotations

import base64
import dataclasses
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

from deeplesion.catalog import load_catalog
from deeplesion.release import open_release
from deeplesion.report import build_report
from deeplesion.viz import (
    BOX_RGB,
    LONG_AXIS_RGB,
    SHORT_AXIS_RGB,
    draw_lesions,
    key_slice_figure,
    plot_bodymap,
    plot_interval_counts,
    render_key_slices,
)

from .conftest import DL_INFO_DIR, PNG16_DIR, require
from .release_builder import build, lesion_row


def colour_mask(rgb: np.ndarray, colour: tuple[int, int, int], tolerance: int = 0) -> np.ndarray:
    return (np.abs(rgb.astype(int) - np.array(colour)) <= tolerance).all(axis=2)


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    row = lesion_row((1, 1, 1), 11, 10, 12, 5.0)
    recist = np.array([[20.0, 30.0], [44.0, 30.0], [32.0, 24.0], [32.0, 36.0]])
    row = dataclasses.replace(row, recist=recist, box=np.array([15.0, 19.0, 49.0, 41.0]))
    return build(tmp_path / "toy", [row], {"000001_01_01": [10, 11, 12]})


def test_overlay_colours_sit_on_the_annotation(toy: Path) -> None:
    release = open_release(toy)
    lesion = release.catalog[0]
    rgb = draw_lesions(release.key_slice(lesion), [lesion], (-175.0, 275.0))
    long_axis = colour_mask(rgb, LONG_AXIS_RGB)
    for x, y in lesion.recist[:2]:
        assert long_axis[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2].any(), (x, y)
    assert colour_mask(rgb, SHORT_AXIS_RGB, tolerance=12)[24:37, 31:34].any()  # anti-aliased line
    box = colour_mask(rgb, BOX_RGB, tolerance=20)
    assert box[18:21, 20:45].any() and box[40:43, 20:45].any() and box[22:38, 14:17].any()
    # far from the lesion everything is still grey (R = G = B)
    far = rgb[50:, :10]
    assert (far[..., 0] == far[..., 1]).all() and (far[..., 1] == far[..., 2]).all()
    assert not long_axis[:15].any() and not long_axis[45:].any()


def test_show_figure_has_overlay_zoom_and_captions(toy: Path) -> None:
    figure = key_slice_figure(open_release(toy), "000001_01_01_011.png", context=True)
    assert figure.shape[1] == 128  # overview and close-up side by side
    assert (
        colour_mask(figure[:64, 64:], LONG_AXIS_RGB).sum()
        > colour_mask(figure[:64, :64], LONG_AXIS_RGB).sum()
    )
    assert figure.shape[0] > 64 + 40  # caption band and context strip below


def test_real_key_slices_with_their_annotations() -> None:
    require(PNG16_DIR)
    catalog = load_catalog(require(DL_INFO_DIR / "DL_info_union.csv"))
    release = open_release(PNG16_DIR, catalog=catalog.filter(file_names=["000001_03_01_088.png"]))
    lesion = release.catalog[0]
    rgb = draw_lesions(release.key_slice(lesion), [lesion], (-175.0, 275.0))
    ys, xs = np.nonzero(colour_mask(rgb, LONG_AXIS_RGB, tolerance=2))
    x1, y1, x2, y2 = lesion.box
    assert xs.min() >= x1 - 3 and xs.max() <= x2 + 3 and ys.min() >= y1 - 3 and ys.max() <= y2 + 3


def test_render_is_resumable(toy: Path, tmp_path: Path) -> None:
    out = tmp_path / "key_slices"
    first = render_key_slices(toy, toy / "DL_info.csv", out)
    assert first.written == 1 and (out / "000001_01_01_011.png").is_file()
    again = render_key_slices(toy, toy / "DL_info.csv", out)
    assert again.written == 0 and again.skipped == 1
    image = cv2.imread(str(out / "000001_01_01_011.png"))[:, :, ::-1]
    assert colour_mask(image, LONG_AXIS_RGB).any()


def test_bodymap_has_one_point_per_lesion(dl_info_dir: Path) -> None:
    catalog = load_catalog([dl_info_dir / "DL_info_val.csv", dl_info_dir / "DL_info_test.csv"])
    ax = plot_bodymap(catalog)
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(points) == len(catalog) == 9816
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # z inverted: the head at the top
    assert ax.get_aspect() == 1.0
    liver = catalog.filter(lesion_type="liver").location[:, 0].mean()
    assert liver < 0.4  # the patient's right has small x


PLOTS_KEEP_THE_BACKEND = """
import matplotlib
matplotlib.use("svg")  # a caller's own backend (a notebook's, say)
import matplotlib.pyplot as plt
from deeplesion.catalog import load_catalog
from deeplesion.evaluate import evaluate, read_predictions_csv
from deeplesion.evaluate.plot import plot_froc, save_froc_plot
from deeplesion.report import build_report
from deeplesion.resources import sample_dl_info_path
from deeplesion.viz import figure_png, plot_bodymap, plot_interval_counts
import sys, pathlib
catalog = load_catalog(sample_dl_info_path())
build_report(catalog)
figure_png(plot_bodymap(catalog))
curves = {"all": evaluate(catalog, read_predictions_csv(sys.argv[1]), split="test").curves["all"]}
plot_froc(curves, (0.5, 1, 2, 4), "mulan")
save_froc_plot(pathlib.Path(sys.argv[2]), curves, (0.5, 1, 2, 4), "mulan")
print(matplotlib.get_backend(), len(plt.get_fignums()))
"""


def test_plots_never_change_the_callers_backend(tmp_path: Path, sample_csv: Path) -> None:
    first = load_catalog(sample_csv).filter(split="test")[0]
    box = ",".join(f"{v:g}" for v in first.box)
    (tmp_path / "p.csv").write_text(f"File_name,x1,y1,x2,y2,score\n{first.file_name},{box},0.9\n")
    script = tmp_path / "plots.py"
    script.write_text(PLOTS_KEEP_THE_BACKEND)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "p.csv"), str(tmp_path / "froc.png")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["svg", "0"]  # the backend kept, no pyplot figure left open


def test_interval_chart_starts_at_zero_with_counts(sample_csv: Path) -> None:
    catalog = load_catalog(sample_csv)
    ax = plot_interval_counts(catalog)
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0
    labels = sorted(int(t.get_text()) for t in ax.texts)
    counts = sorted(np.unique(catalog.slice_interval_mm, return_counts=True)[1].tolist())
    assert labels == counts


def test_gallery_shows_each_slice_once_numbered() -> None:
    from deeplesion.report import gallery

    catalog = load_catalog(require(DL_INFO_DIR / "DL_info_union.csv"))
    images = require(PNG16_DIR / "Images_png")
    names = [f"{f.name}_{p.stem}.png" for f in images.iterdir() for p in f.iterdir()]
    rows = catalog.filter(file_names=names)
    items = gallery(open_release(PNG16_DIR, catalog=rows), rows)
    shown = [text.split(";")[0].split(": ")[1] for _, text in items]
    assert len(shown) == len(set(shown)) >= 5  # no key slice twice, whatever its lesions' types
    for _, text in items:
        kind = text.split(":")[0]
        captions = text.split("; ")[1:]
        assert [c.split(":")[0].rstrip("*") for c in captions] == [str(i + 1) for i in range(len(captions))]
        marked = [c for c in captions if c.split(":")[0].endswith("*")]
        assert marked and all(f"| {kind} |" in c for c in marked)  # the lesion of that type is marked


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.sources += [v or "" for k, v in attrs if k in ("src", "href")]


def test_report_is_self_contained(toy: Path) -> None:
    text = build_report(load_catalog(toy / "DL_info.csv"), root=toy)
    parser = _Collector()
    parser.feed(text)
    assert parser.tags[:3] == ["html", "head", "meta"] and "body" in parser.tags and "table" in parser.tags
    assert parser.sources and all(s.startswith("data:image/png;base64,") for s in parser.sources)
    assert not re.search(r"https?://|url\(", text)
    for source in parser.sources:
        png = base64.b64decode(source.split(",", 1)[1])
        assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) is not None
    assert "Sample key slices" in text  # images present: a gallery


def test_cli_show_and_report(toy: Path, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "deeplesion.cli.main"]
    shown = subprocess.run(
        [*base, "show", "--row", "0", "--root", str(toy)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert Path(shown.stdout.strip()) == tmp_path / "000001_01_01_011.png"
    bad = subprocess.run(
        [*base, "show", "--row", "5", "--root", str(toy)], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2 and "rows 0-0" in bad.stderr
    report = subprocess.run(
        [*base, "report", "--root", str(toy), "--out", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
