"""The stages of ``deeplesion demo``: each capability adds a stage here instead of editing one script.

A stage is a function taking a :class:`DemoContext`; :func:`stage` registers it in :data:`STAGES`, which
runs in registration order. A stage declares the stages whose results it needs (``needs``): running one
stage alone (``--stage export``) runs what it needs first, so every stage works on its own.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class DemoContext:
    """What the stages share.

    Attributes
    ----------
    workdir
        Folder for the stages' outputs (the user's ``--out`` or a temporary folder).
    say
        Prints a line for the user (the CLI passes ``print``).
    state
        Results one stage leaves for the next (for example the synthetic release path).
    """

    workdir: Path
    say: Callable[[str], None] = print
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A named step of the demo, and the stages whose results (``ctx.state``) it needs."""

    name: str
    title: str
    run: Callable[[DemoContext], None]
    needs: tuple[str, ...] = ()


STAGES: list[Stage] = []


def stage(
    name: str, title: str, *, needs: tuple[str, ...] = ()
) -> Callable[[Callable[[DemoContext], None]], Callable[[DemoContext], None]]:
    """Register the decorated function as the demo stage ``name``, run after the stages it ``needs``."""

    def register(func: Callable[[DemoContext], None]) -> Callable[[DemoContext], None]:
        if any(s.name == name for s in STAGES):
            raise ValueError(f"demo stage {name!r} is registered twice")
        unknown = [n for n in needs if not any(s.name == n for s in STAGES)]
        if unknown:
            raise ValueError(f"demo stage {name!r} needs {unknown}, which are not registered before it")
        STAGES.append(Stage(name, title, func, needs))
        return func

    return register


def plan_stages(only: list[str] | None) -> list[Stage]:
    """The stages to run for ``only`` (None: all), with what they need, in registration order."""
    by_name = {s.name: s for s in STAGES}
    wanted = set(only or by_name)
    pending = list(wanted)
    while pending:
        for need in by_name[pending.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                pending.append(need)
    return [s for s in STAGES if s.name in wanted]


@stage("catalog", "Catalog of the packaged real DL_info.csv excerpt")
def _catalog_stage(ctx: DemoContext) -> None:
    from deeplesion.catalog import load_catalog
    from deeplesion.resources import sample_dl_info_path
    from deeplesion.summary import format_summary, summarize

    catalog = load_catalog(sample_dl_info_path())
    ctx.say(format_summary(summarize(catalog)))


DEMO_PATIENTS = 6


def reusable_release(manifest_path: Path) -> bool:
    """Whether the synthetic release of ``manifest_path`` is complete (the manifest is written last) and
    is what this version would generate: the demo's size and seed, and this generator's version."""

    from deeplesion.synth.release import GENERATOR_VERSION

    if not manifest_path.is_file():
        return False
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    wanted = (DEMO_PATIENTS, 0, GENERATOR_VERSION)
    return (manifest.get("patients"), manifest.get("seed"), manifest.get("generator_version")) == wanted


@stage("synth", "A synthetic release in the official layout (with the zips and planted quirks)")
def _synth_stage(ctx: DemoContext) -> None:

    from deeplesion.synth import make_synthetic_release

    out = ctx.workdir / "synthetic-release"
    ctx.state["release"] = out
    manifest_path = out / "synth-manifest.json"
    if reusable_release(manifest_path):
        ctx.say(f"reusing the synthetic release in {out} (delete it to generate it again)")
        return
    if manifest_path.is_file():
        ctx.say(f"the synthetic release in {out} is another generator's or another size: generating it again")
    result = make_synthetic_release(
        out,
        patients=DEMO_PATIENTS,
        seed=0,
        zips=True,
        quirks=True,
        force=True,
        jobs=min(2, os.cpu_count() or 1),
    )
    ctx.say(
        f"wrote {out}: {result.patients} patients, {result.lesions} lesions on {result.key_slices} key "
        f"slices, {result.slices} slices, {result.bytes_written / 1e6:.0f} MB, zips {', '.join(result.zips)}"
    )
    for quirk in result.quirks:
        where = quirk.get("path") or f"{quirk['file']}:{quirk['line']}"
        ctx.say(f"  planted {quirk['quirk']:<18} -> finding {quirk['code']:<18} at {where}")


@stage("synth-catalog", "Catalog summary and validation of the synthetic release", needs=("synth",))
def _synth_catalog_stage(ctx: DemoContext) -> None:
    from deeplesion.catalog import load_catalog
    from deeplesion.checks import check_catalog
    from deeplesion.findings import count_by_severity
    from deeplesion.summary import format_summary, summarize

    catalog = load_catalog(ctx.state["release"] / "DL_info.csv")
    ctx.say(format_summary(summarize(catalog)))
    counts = count_by_severity(check_catalog(catalog))
    ctx.say(
        f"validate: {counts['error']} errors, {counts['warning']} warnings, {counts['note']} notes "
        "(the warnings and notes are the planted quirks)"
    )


@stage(
    "download",
    "Serve the synthetic release's zips on 127.0.0.1 and download them with the real code",
    needs=("synth",),
)
def _download_stage(ctx: DemoContext) -> None:
    from deeplesion.download import Summary, download, verify_release
    from deeplesion.mirror import MirrorServer

    target = ctx.workdir / "downloaded-release"
    with MirrorServer(ctx.state["release"]) as server:
        ctx.say(f"mirror at {server.url}; downloading into {target}")
        summary = download(target, mirror=server.url, jobs=2)
    assert isinstance(summary, Summary)
    files = ", ".join(sorted(summary.downloaded))
    ctx.say(f"downloaded {files}: {summary.transferred / 1e6:.0f} MB in {summary.seconds:.1f} s")
    ctx.say(f"  verified by MD5 (the MD5 list itself by size); extracted {len(summary.extracted)} archives")
    problems = verify_release(target)
    ctx.say(f"verify: {len(problems)} problem(s) (archives against MD5_checksums.txt, files against CRC-32)")


@stage(
    "fetch-slices",
    "Fetch only the test split's key slices (+-30 mm) out of the served zips with HTTP range requests",
    needs=("synth",),
)
def _fetch_slices_stage(ctx: DemoContext) -> None:
    from deeplesion.download import SliceFetchSummary, fetch_slices, human_bytes
    from deeplesion.mirror import MirrorServer

    target = ctx.workdir / "key-slices-release"
    with MirrorServer(ctx.state["release"]) as server:
        summary = fetch_slices(target, None, split="test", context_mm=30, mirror=server.url, jobs=2)
    assert isinstance(summary, SliceFetchSummary)
    plan = summary.plan
    ctx.say(
        f"{summary.fetched} slices fetched ({plan.present} already there) in {len(plan.requests)} range "
        f"requests: {human_bytes(summary.transferred)} of {human_bytes(plan.archive_bytes)} of archives "
        f"({summary.transferred / plan.archive_bytes:.1%}) in {summary.seconds:.1f} s; "
        f"index {human_bytes(plan.index_bytes)}, kept in {target}/.deeplesion/index"
    )


@stage(
    "inventory", "Inventory of the synthetic release's images: every planted quirk is found", needs=("synth",)
)
def _inventory_stage(ctx: DemoContext) -> None:
    from collections import Counter

    from deeplesion.catalog import load_catalog
    from deeplesion.inventory import run_inventory

    root = ctx.state["release"]
    report = run_inventory(root, load_catalog(root / "DL_info.csv"))
    ctx.say(
        f"{report.folders} folders, {report.slices} slices, {report.bytes / 1e6:.0f} MB (PNG headers read)"
    )
    for (code, severity), n in sorted(Counter((f.code, str(f.severity)) for f in report.findings).items()):
        ctx.say(f"  {severity:<8}{code:<22}{n:>4}")
    planted = json.loads((root / "synth-manifest.json").read_text())["quirks"]
    image_quirks = [q for q in planted if "line" not in q or q["code"] == "slice-number-wide"]
    found = sum(
        any(f.code == q["code"] and f.file == q["path"] for f in report.findings) for q in image_quirks
    )
    ctx.say(f"  image-level quirks planted by synth and found: {found} of {len(image_quirks)}")


@stage(
    "export", "Export the synthetic release: NIfTI sub-volumes (world layout) and COCO json", needs=("synth",)
)
def _export_stage(ctx: DemoContext) -> None:

    from deeplesion.catalog import load_catalog
    from deeplesion.coco import coco_document
    from deeplesion.nifti import export_nifti, read_subvolume

    root = ctx.state["release"]
    catalog = load_catalog(root / "DL_info.csv")
    out = ctx.workdir / "nifti"
    summary = export_nifti(root, catalog, out=out, layout="world", jobs=2, force=True)
    ctx.say(
        f"{summary.written} NIfTI files ({summary.slices} slices, {summary.bytes / 1e6:.0f} MB) in {out}; "
        f"{len(summary.failed)} runs not written because of the planted broken PNGs"
    )
    first = sorted(out.glob("*.nii.gz"))[0]
    volume = read_subvolume(first)
    spacing = ", ".join(f"{v:.3f}" for v in volume.spacing)
    ctx.say(
        f"  {first.name}: (Z, H, W) = {volume.data.shape}, spacing ({spacing}) mm, layout {volume.layout}"
    )
    document = coco_document(catalog)
    (ctx.workdir / "coco.json").write_text(json.dumps(document))
    ctx.say(
        f"COCO: {len(document['images'])} images, {len(document['annotations'])} annotations -> "
        f"{ctx.workdir / 'coco.json'}"
    )


@stage(
    "images",
    "2.5D context: correct interpolation versus the reference loaders, and a model sample",
    needs=("synth",),
)
def _images_stage(ctx: DemoContext) -> None:
    import numpy as np

    from deeplesion.release import open_release

    release = open_release(ctx.state["release"])
    lesion = next(x for x in release.catalog if x.slice_interval_mm == 5.0)
    correct = release.context(lesion, slices=9, interval_mm=2.0)
    reference = release.context(lesion, slices=9, interval_mm=2.0, mode="reference")
    diff = np.abs(correct.hu - reference.hu).mean(axis=(1, 2))
    ctx.say(
        f"{lesion.file_name} (5 mm run {lesion.slice_range[0]}-{lesion.slice_range[1]}), 9 slices at 2 mm:"
    )
    ctx.say("  mean |correct - reference| HU per channel: " + " ".join(f"{d:.1f}" for d in diff))
    ctx.say("  (the reference reuses the first neighbour's weights: its +-2 channels repeat +-1)")
    sample = release.sample(lesion)
    ctx.say(
        f"  model sample: {sample.image.shape} float32, window [-1024, 3071] -> 0-255, 0.8 mm/px; "
        f"box {np.round(sample.boxes[0], 1).tolist()}"
    )


@stage(
    "evaluate",
    "The official FROC of simulated detections on the synthetic release (both protocols)",
    needs=("synth",),
)
def _evaluate_stage(ctx: DemoContext) -> None:
    import numpy as np

    from deeplesion.catalog import load_catalog
    from deeplesion.evaluate import evaluate
    from deeplesion.evaluate.plot import save_froc_plot
    from deeplesion.evaluate.predictions import Predictions

    catalog = load_catalog(ctx.state["release"] / "DL_info.csv")
    rng = np.random.default_rng(0)
    # a stand-in detector (the real one is a later capability): most lesions found with a jittered box,
    # plus random boxes; scores are higher for the hits
    names, boxes, scores = [], [], []
    for lesion in catalog:
        if rng.random() < 0.85:
            names.append(lesion.file_name)
            boxes.append(lesion.box + rng.normal(0, 1.5, 4))
            scores.append(rng.uniform(0.3, 1.0))
    for name in sorted(set(catalog.file_name.tolist())):
        for _ in range(int(rng.integers(1, 8))):
            x, y = rng.uniform(50, 400, 2)
            names.append(name)
            boxes.append(np.array([x, y, x + rng.uniform(8, 40), y + rng.uniform(8, 40)]))
            scores.append(rng.uniform(0.0, 0.7))
    predictions = Predictions(
        np.array(names, dtype=str),
        np.array(boxes),
        np.array(scores),
        np.arange(len(names)) + 2,
        "simulated",
    )
    for split in ("train", "test"):
        on_split = np.isin(predictions.file_name, catalog.filter(split=split).file_name)
        for protocol in ("mulan", "3dce"):
            result = evaluate(catalog, predictions.take(on_split), split=split, protocol=protocol).result
            values = "  ".join(f"{k}: {v:.3f}" for k, v in result["sensitivity"].items())
            counts = f"{result['images']:>3} images, {result['lesions']:>3} lesions"
            ctx.say(f"{split:<5} {protocol:<5} {counts}  sensitivity at FPs/image  {values}")
    plot = ctx.workdir / "froc-synthetic.png"
    on_train = np.isin(predictions.file_name, catalog.filter(split="train").file_name)
    curves = evaluate(catalog, predictions.take(on_train), split="train").curves
    save_froc_plot(
        plot, curves, (0.5, 1.0, 2.0, 4.0, 8.0, 16.0), "mulan", title="FROC, synthetic train split"
    )
    ctx.say(f"FROC plot: {plot}")


@stage(
    "detector",
    "Train the cpu-small detector briefly on the synthetic release, predict its test split, score it",
    needs=("synth",),
)
def _detector_stage(ctx: DemoContext) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        ctx.say(
            "skipped: the detector needs the torch extra (pip install 'deeplesion[torch]'; make demo has it)"
        )
        return
    from deeplesion.catalog import load_catalog
    from deeplesion.detect.config import load_config
    from deeplesion.detect.predict import predict
    from deeplesion.detect.train import train
    from deeplesion.evaluate import evaluate
    from deeplesion.evaluate.predictions import read_predictions_csv

    release = ctx.state["release"]
    run = ctx.workdir / "detector-run"
    # a short schedule (about 40 s on 2 cores): the full preset is `deeplesion train --preset cpu-small`
    config = load_config("cpu-small", epochs=3, steps_per_epoch=40, warmup_iters=20)
    summary = train(release, run, config, force=True)
    ctx.say(
        f"trained 3 short epochs in {summary.seconds:.0f} s; best epoch {summary.best_epoch} "
        f"(val mean sensitivity 0.5-4 FPs {summary.best or 0:.3f}); checkpoints in {run}"
    )
    predictions = ctx.workdir / "detector-test-predictions.csv"
    predict(run / "best.pt", release, predictions, split="test")
    catalog = load_catalog(release / "DL_info.csv")
    result = evaluate(catalog, read_predictions_csv(predictions), split="test").result
    values = "  ".join(f"{k}: {v:.3f}" for k, v in result["sensitivity"].items())
    ctx.say(
        f"test  mulan {result['images']:>3} images, {result['lesions']:>3} lesions  "
        f"sensitivity at FPs/image  {values}"
    )
    ctx.say(
        "  (this shows train -> predict -> evaluate working; 6 patients and 40 s of training are far too "
        "little to find much: the README's results give the full cpu-small preset on 120 patients)"
    )


@stage(
    "tracking",
    "Follow each synthetic lesion across its patient's studies, score against the true identities",
    needs=("synth",),
)
def _tracking_stage(ctx: DemoContext) -> None:
    from deeplesion.catalog import load_catalog
    from deeplesion.tracking import identity_pairs, score_pairs, track_lesions
    from deeplesion.tracking.document import patient_text
    from deeplesion.tracking.plot import save_timeline
    from deeplesion.tracking.response import recist_response

    release = ctx.state["release"]
    catalog = load_catalog(release / "DL_info.csv")
    result = track_lesions(catalog)
    ids = json.loads((release / "synth-manifest.json").read_text(encoding="utf-8"))["lesion_ids"]
    scores = score_pairs(result, identity_pairs(catalog, ids))
    followed = sum(len(t.measurements) >= 2 for t in result.tracks)
    ctx.say(
        f"{len(result.tracks)} lesions, {followed} followed over 2+ studies; against the manifest's "
        f"identities ({scores['scored']} pairs): links {scores['accuracy']:.3f}, "
        f"tracks {scores['track_accuracy']:.3f}, nearest-position baseline {scores['baseline_accuracy']:.3f}"
    )
    patient = max(
        result.patients,
        key=lambda p: (len({m.study for t in result.tracks_of(p) for m in t.measurements}), -p),
    )
    response = recist_response(result.tracks_of(patient))
    ctx.say(patient_text(result, patient, response))
    plot = save_timeline(
        ctx.workdir / f"timeline-patient-{patient:06d}.png", result.tracks_of(patient), response
    )
    ctx.say(f"timeline: {plot}  (all patients: deeplesion track --root {release} --plot DIR)")


@stage("viewer", "The browser viewer's API answering in-process, and how to open it", needs=("synth",))
def _viewer_stage(ctx: DemoContext) -> None:
    import importlib.util
    import warnings

    release = ctx.state["release"]
    predictions = ctx.workdir / "detector-test-predictions.csv"
    command = f"deeplesion view --root {release}" + (
        f" --predictions {predictions}" if predictions.is_file() else ""
    )
    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        ctx.say(f"skipped: the viewer needs the view extra (pip install 'deeplesion[view]'); then: {command}")
        return
    import deeplesion
    from deeplesion.evaluate.predictions import read_predictions_csv
    from deeplesion.view.app import create_app
    from deeplesion.view.service import Viewer

    with warnings.catch_warnings():  # starlette 1.x suggests httpx2 for its test client; httpx works
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    loaded = read_predictions_csv(predictions) if predictions.is_file() else None
    client = TestClient(create_app(Viewer(deeplesion.open(release), loaded)))
    lesions = client.get("/api/lesions?split=test&limit=1").json()
    first = lesions["rows"][0]
    started = time.perf_counter()
    png = client.get(f"/api/slice/{first['folder']}/{first['key_slice']:03d}.png?window=-175,275")
    took = time.perf_counter() - started
    patient = client.get(f"/api/patient/{first['patient']}").json()
    slice_url = f"/api/slice/{first['folder']}/{first['key_slice']:03d}.png"
    ctx.say(f"GET /api/lesions?split=test: {lesions['total']} lesions")
    ctx.say(f"GET {slice_url}: {png.status_code}, {len(png.content) / 1e3:.0f} kB in {took * 1e3:.0f} ms")
    studies, tracks = len(patient["studies"]), len(patient["tracks"])
    ctx.say(f"GET /api/patient/{first['patient']}: {studies} studies, {tracks} tracks")
    ctx.say(f"to browse it: {command}   then open http://127.0.0.1:8765/ (Ctrl-C stops the server)")


@stage("report", "A self-contained HTML report of the synthetic release, and its body map", needs=("synth",))
def _report_stage(ctx: DemoContext) -> None:
    from deeplesion.catalog import load_catalog
    from deeplesion.report import write_report
    from deeplesion.viz import figure_png, plot_bodymap

    root = ctx.state["release"]
    catalog = load_catalog(root / "DL_info.csv")
    report = write_report(ctx.workdir / "report.html", catalog, root=root)
    (ctx.workdir / "bodymap.png").write_bytes(figure_png(plot_bodymap(catalog)))
    ctx.say(
        f"report: {report} ({report.stat().st_size / 1e6:.1f} MB, images inlined); body map: "
        f"{ctx.workdir / 'bodymap.png'}"
    )


def run_demo(
    out: Path | None = None, *, only: list[str] | None = None, say: Callable[[str], None] = print
) -> None:
    """Run the registered stages (all, or those named in ``only``) in order.

    Parameters
    ----------
    out
        Keep the outputs in this folder; None uses a temporary folder removed at the end.
    only
        Stage names to run.
    """
    from deeplesion.errors import UsageError

    known = [s.name for s in STAGES]
    for name in only or []:
        if name not in known:
            raise UsageError(f"unknown demo stage {name!r}; stages: {', '.join(known)}")
    selected = plan_stages(only)
    with tempfile.TemporaryDirectory(prefix="deeplesion-demo-") as tmp:
        workdir = out if out is not None else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        ctx = DemoContext(workdir=workdir, say=say)
        for number, s in enumerate(selected, 1):
            needed = " (needed by the stages asked for)" if only and s.name not in only else ""
            say(f"\n== stage {number}/{len(selected)}: {s.title}{needed} ==")
            start = time.perf_counter()
            s.run(ctx)
            say(f"-- {s.name} done in {time.perf_counter() - start:.1f} s")
        if out is None:
            say("\n(the outputs were in a temporary folder, now removed; `--out DIR` keeps them)")
        else:
            say(f"\noutputs kept in {out}: open {out / 'report.html'} in a browser")
