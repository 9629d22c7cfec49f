"""The ``deeplesion`` command: JSON on stdout only, exit codes, messages without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_catalog import HEADER, ROW


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "deeplesion.cli.main", *args],
        capture_output=True,
        text=True,
        env=full_env,
        check=False,
    )


def test_version_and_help() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("deeplesion 0.")
    result = run("--help")
    assert result.returncode == 0
    for command in ("info", "lesions", "validate", "demo"):
        assert command in result.stdout


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from deeplesion.cli.main import app;"
        "CliRunner().invoke(app, ['--help']);"
        "heavy = ('torch', 'matplotlib', 'pandas', 'cv2', 'nibabel', 'httpx');"
        "heavy = [m for m in heavy if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_deeplesion_stays_light() -> None:
    code = "import sys, deeplesion; print([m for m in ('torch', 'matplotlib', 'pandas') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_info_json_is_the_only_stdout(sample_csv: Path) -> None:
    result = run("-v", "info", "--annotations", str(sample_csv), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["lesions"] == 158 and summary["key_slices"] == 152
    assert summary["splits"]["val"]["lesions"] == 18


def test_info_on_real_val_and_test(dl_info_dir: Path) -> None:
    val, test = dl_info_dir / "DL_info_val.csv", dl_info_dir / "DL_info_test.csv"
    result = run("info", "-a", str(val), "-a", str(test), "--json")
    summary = json.loads(result.stdout)
    assert summary["splits"]["val"]["key_slices_without_noisy"] == 4791
    assert summary["splits"]["test"]["lesions_without_noisy"] == 4912


def test_lesions_query_formats(sample_csv: Path, tmp_path: Path) -> None:
    result = run("lesions", "-a", str(sample_csv), "--split", "test", "--type", "liver", "--format", "json")
    document = json.loads(result.stdout)
    assert document["count"] == document["matched"] > 0
    assert {x["lesion_type"] for x in document["lesions"]} == {"liver"}
    assert {x["split"] for x in document["lesions"]} == {"test"}
    out = tmp_path / "big.csv"
    result = run(
        "lesions", "-a", str(sample_csv), "--min-diameter-mm", "50", "--format", "csv", "--out", str(out)
    )
    assert result.returncode == 0 and "wrote 22 lesions" in result.stderr
    assert out.read_text().startswith(HEADER) and len(out.read_text().splitlines()) == 23
    again = run("lesions", "-a", str(sample_csv), "--format", "csv", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    table = run("lesions", "-a", str(sample_csv))
    assert len(table.stdout.splitlines()) == 51 and "showing 50 of 158" in table.stderr


def test_validate_exit_codes(tmp_path: Path, sample_csv: Path) -> None:
    clean = run("validate", "-a", str(sample_csv), "--json")
    assert clean.returncode == 0
    assert json.loads(clean.stdout)["counts"]["error"] == 0
    bad = tmp_path / "bad.csv"
    planted = ROW.replace('"31, 43"', '"38, 43"')
    bad.write_text(f"{HEADER}\n{ROW}\n{planted}\n")
    result = run("validate", "-a", str(bad))
    assert result.returncode == 1
    assert f"{bad}:3: error: [key-outside-range]" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["info", "-a", "/nonexistent/DL_info.csv"], 1, "not found"),
        (["lesions", "--type", "brain"], 2, "unknown lesion type"),
        (["info"], 2, "DEEPLESION_ROOT"),
        (["info", "--bogus"], 2, "No such option"),
    ],
)
def test_user_errors_are_one_line_without_traceback(
    args: list[str], code: int, message: str, sample_csv: Path
) -> None:
    if args[0] == "lesions":
        args = [*args, "-a", str(sample_csv)]
    result = run(*args, env={"DEEPLESION_ROOT": ""})
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_file_fails_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\n{ROW.replace(',F,71,1', ',F,old,1')}\n")
    result = run("info", "-a", str(bad))
    assert result.returncode == 1 and "line 2" in result.stderr and "Patient_age" in result.stderr
    validate = run("validate", "-a", str(bad), "--json")
    assert validate.returncode == 1
    assert json.loads(validate.stdout)["findings"][0]["code"] == "value-invalid"


def test_demo_prints_the_sample_summary() -> None:
    result = run("demo", "--stage", "catalog")
    assert result.returncode == 0, result.stderr
    assert "stage 1/1" in result.stdout and "158" in result.stdout


def test_synth_command(tmp_path: Path) -> None:
    out = tmp_path / "release"
    result = run("synth", "--out", str(out), "--patients", "1", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["patients"] == 1 and summary["lesions"] >= 1 and summary["zips"] == []
    check = run("validate", "-a", str(out / "DL_info.csv"))
    assert check.returncode == 0, check.stdout
    again = run("synth", "--out", str(out), "--patients", "1")
    assert again.returncode == 2 and "not empty" in again.stderr and "--force" in again.stderr
    bad = run("synth", "--out", str(out), "--patients", "0")
    assert bad.returncode == 2


@pytest.fixture
def toy_release(tmp_path: Path) -> Path:
    from .release_builder import build, lesion_row

    rows = [lesion_row((1, 1, 1), 12, 10, 14, 5.0)]
    return build(tmp_path / "toy", rows, {"000001_01_01": list(range(10, 15))})


def test_unwritable_outputs_are_one_line_naming_the_path(toy_release: Path, tmp_path: Path) -> None:
    # a path through a file fails for root too (as a read-only or full folder fails for other users)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "out"
    csv = str(toy_release / "DL_info.csv")
    predictions = tmp_path / "preds.csv"
    predictions.write_text("File_name,x1,y1,x2,y2,score\n000001_01_01_012.png,15,20,45,40,0.9\n")
    commands = [
        ["lesions", "-a", csv, "--out", str(target / "rows.csv")],
        ["export", "coco", "-a", csv, "--out", str(target / "coco.json")],
        ["export", "nifti", "--root", str(toy_release), "--out", str(target)],
        ["show", "000001_01_01_012.png", "--root", str(toy_release), "--out", str(target / "s.png")],
        ["report", "-a", csv, "--out", str(target / "r.html")],
        ["bodymap", "-a", csv, "--out", str(target / "b.png")],
        ["synth", "--out", str(target / "synth"), "--patients", "1"],
        ["evaluate", str(predictions), "-a", csv, "--plot", str(target / "froc.png")],
    ]
    for command in commands:
        result = run(*command)
        assert result.returncode == 1, (command, result.stderr)
        assert "Traceback" not in result.stderr, command
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and str(blocker) in errors[0], (command, result.stderr)


def test_render_root_must_be_a_folder(toy_release: Path, tmp_path: Path) -> None:
    csv = toy_release / "DL_info.csv"
    result = run("render", "--root", str(csv), "-a", str(csv), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "is not a folder" in result.stderr and "Traceback" not in result.stderr


def test_corrupt_png_gives_our_message_only(toy_release: Path, tmp_path: Path) -> None:
    path = toy_release / "Images_png" / "000001_01_01" / "012.png"
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # inside the image data: libpng would print "IDAT: CRC error" on its own
    path.write_bytes(bytes(data))
    result = run("show", "000001_01_01_012.png", "--root", str(toy_release), "--out", str(tmp_path / "s.png"))
    assert result.returncode == 1
    assert "libpng" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: not a readable PNG: chunk 'IDAT' fails its CRC check (corrupt); download it again"
    ]
    assert not (tmp_path / "s.png").exists()


def test_export_coco_that_fails_validation_writes_nothing(toy_release: Path, tmp_path: Path) -> None:
    out = tmp_path / "coco.json"
    args = ["export", "coco", "-a", str(toy_release / "DL_info.csv"), "--out", str(out)]
    failed = run(*args, "--images-dir", str(tmp_path / "png"), "--root", str(tmp_path / "nowhere"))
    assert failed.returncode == 2 and not out.exists() and not (tmp_path / "png").exists()
    assert run(*args).returncode == 0 and out.exists()  # the rerun needs no --force
