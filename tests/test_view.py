"""The browser viewer: the JSON API (statuses, bad names, traversal, missing slices, caching), the real
slices, the command, and an end-to-end run in a headless Chromium (skipped with the reason when Debian's
chromium or playwright is absent)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("starlette", reason="the viewer's tests need the 'view' extra (starlette, uvicorn)")
with warnings.catch_warnings():  # starlette 1.x suggests httpx2 for its test client; httpx works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import deeplesion
from deeplesion.catalog import LesionType, Split
from deeplesion.evaluate.predictions import read_predictions_csv
from deeplesion.view.app import create_app
from deeplesion.view.service import Viewer, static_dir
from deeplesion.windowing import apply_window
from tests.release_builder import build, lesion_row

SIZE = 256
CHROMIUM = Path("/usr/bin/chromium")
# Okabe-Ito colours drawn by the page (app.js): the lesion box, a hit and a false positive
BOX_RGB = (0, 158, 115)
HIT_RGB = (0, 114, 178)
FP_RGB = (204, 121, 167)


@pytest.fixture(scope="module")
def release_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two patients: patient 1 with two studies (a liver lesion followed, slices 5-15 with 12 missing),
    patient 2 with a lung lesion. Every pixel of slice N holds 10 * N HU."""
    root = tmp_path_factory.mktemp("view") / "release"
    liver = lesion_row((1, 1, 1), 10, 5, 15, 5.0, size=SIZE)
    follow_up = dataclasses.replace(
        lesion_row((1, 2, 1), 8, 3, 13, 5.0, size=SIZE), location=(0.51, 0.5, 0.5)
    )
    lung = dataclasses.replace(
        lesion_row((2, 1, 1), 20, 15, 25, 2.5, size=SIZE), lesion_type=LesionType.LUNG, split=Split.VAL
    )
    slices = {
        "000001_01_01": [n for n in range(5, 16) if n != 12],
        "000001_02_01": list(range(3, 14)),
        "000002_01_01": list(range(15, 26)),
    }
    build(root, [liver, follow_up, lung], slices, size=SIZE)
    # around the liver lesion (box 15,20,45,40): a hit (IoU 0.65), a false positive, and a duplicate of the
    # hit (IoU 0.71, found second), each edge on its own pixel rows
    (root / "preds.csv").write_text(
        "File_name,x1,y1,x2,y2,score\n"
        "000001_01_01_010.png,12,17,48,43,0.9\n"
        "000001_01_01_010.png,150,150,200,200,0.8\n"
        "000001_01_01_010.png,17,22,43,38,0.3\n"
        "000001_01_01_011.png,15,20,45,40,0.7\n"  # not a key slice: the FROC does not score it
    )
    return root


@pytest.fixture(scope="module")
def client(release_root: Path) -> TestClient:
    predictions = read_predictions_csv(release_root / "preds.csv")
    return TestClient(create_app(Viewer(deeplesion.open(release_root), predictions)))


def test_lesions_filters_sorting_and_bad_parameters(client: TestClient) -> None:
    everything = client.get("/api/lesions").json()
    assert everything["total"] == 3 and [r["line"] for r in everything["rows"]] == [2, 3, 4]
    assert client.get("/api/lesions?type=lung").json()["rows"][0]["file_name"] == "000002_01_01_020.png"
    assert client.get("/api/lesions?patient=1&split=test").json()["total"] == 2
    assert client.get("/api/lesions?sort=line&order=desc").json()["rows"][0]["line"] == 4
    assert client.get("/api/lesions?min_mm=1000").json()["total"] == 0
    row = client.get("/api/lesion/2").json()
    assert row["recist"][0] == [20.0, 30.0] and row["predictions"] == 3
    for url, status in [
        ("/api/lesions?type=nope", 400),
        ("/api/lesions?limit=0", 400),
        ("/api/lesions?colour=red", 400),
        ("/api/lesions?min_mm=abc", 400),
        ("/api/lesions?sort=secret", 400),
        ("/api/lesion/99", 404),
        ("/api/lesion/abc", 400),
    ]:
        response = client.get(url)
        assert response.status_code == status, (url, response.text)
        assert response.json()["error"]


def test_a_slice_is_windowed_on_the_server_with_caching(client: TestClient) -> None:
    response = client.get("/api/slice/000001_01_01/010.png?window=-100,200")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels.shape == (SIZE, SIZE) and pixels.dtype == np.uint8
    expected = apply_window(np.full((SIZE, SIZE), 100, np.int16), (-100, 200), scale="uint8")  # slice 10
    np.testing.assert_array_equal(pixels, expected)
    etag = response.headers["etag"]
    assert "max-age" in response.headers["cache-control"]
    again = client.get("/api/slice/000001_01_01/010.png?window=-100,200", headers={"If-None-Match": etag})
    assert again.status_code == 304 and not again.content
    other = client.get("/api/slice/000001_01_01/010.png?window=-1000,1000")
    assert other.headers["etag"] != etag  # the window is part of the version
    assert client.get("/api/slice/000001_01_01/1010").status_code == 404  # "NNN" without .png works too


def test_missing_slices_bad_names_and_traversal(client: TestClient, release_root: Path) -> None:
    missing = client.get("/api/slice/000001_01_01/012.png")
    assert missing.status_code == 404 and "missing" in missing.json()["error"]
    assert client.get("/api/slice/000009_01_01/010.png").status_code == 404  # not in the annotations
    assert client.get("/api/slice/000001_01_01/010.png?window=5,1").status_code == 400
    assert client.get("/api/slice/000001_01_01/010.png?window=a,b").status_code == 400
    secret = (release_root / "DL_info.csv").read_text()
    attempts = [
        "/api/slice/000001_01_01/..%2F..%2FDL_info.csv",
        "/api/slice/..%2F..%2Fetc/passwd",
        "/api/slice/000001_01_01/%2e%2e%2f%2e%2e%2fDL_info.csv",
        "/api/slice/000001_01_01/..",
        "/api/series/..",
        "/api/series/..%2F..%2Fetc",
        "/api/hu/000001_01_01/..%2F010?x=1&y=1",
        "/static/..%2F..%2F..%2FDL_info.csv",
        "/static/../service.py",
        "/api/predictions/..%2F..%2FDL_info.csv",
    ]
    for url in attempts:
        response = client.get(url)
        assert response.status_code in (400, 404), (url, response.status_code)
        assert (
            "Patient_index" not in response.text
            and "root:" not in response.text
            and secret not in response.text
        )


def test_series_hu_predictions_and_patient(client: TestClient) -> None:
    series = client.get("/api/series/000001_01_01").json()
    assert series["slices"] == [5, 6, 7, 8, 9, 10, 11, 13, 14, 15]
    assert series["spacing"] == [0.8, 0.8, 5.0] and series["annotated_runs"] == [[5, 15]]
    assert client.get("/api/hu/000001_01_01/013?x=3&y=200").json()["hu"] == 130
    assert client.get("/api/hu/000001_01_01/013?x=300&y=2").status_code == 400
    assert client.get("/api/hu/000001_01_01/013").status_code == 400
    assert client.get("/api/hu/000001_01_01/012?x=1&y=1").status_code == 404
    predictions = client.get("/api/predictions/000001_01_01_010.png").json()["predictions"]
    assert [p["status"] for p in predictions] == ["hit", "fp", "duplicate"]  # best first, FROC counting
    assert client.get("/api/predictions/000002_01_01_020.png").json()["predictions"] == []
    unscored = client.get("/api/predictions/000001_01_01_011.png").json()["predictions"]
    assert [p["status"] for p in unscored] == ["unevaluated"]
    patient = client.get("/api/patient/1").json()
    assert [s["study"] for s in patient["studies"]] == [1, 2]
    assert len(patient["tracks"]) == 1 and len(patient["tracks"][0]["measurements"]) == 2  # followed
    assert client.get("/api/patient/7").status_code == 404
    timeline = client.get("/api/patient/1/timeline.png")
    assert timeline.status_code == 200 and timeline.content.startswith(b"\x89PNG")


def test_the_page_loads_nothing_from_outside(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "DeepLesion viewer" in page.text
    for path in static_dir().iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"'](https?:)?//", text), path
        assert not re.search(r"url\(\s*[\"']?(https?:)?//", text), path
        assert "@import" not in text and "fonts.googleapis" not in text, path
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/nope").status_code == 404


def test_real_slices_are_served_as_read(png16_release) -> None:  # type: ignore[no-untyped-def]
    viewer = Viewer(png16_release)
    lesion = png16_release.catalog[0]
    client = TestClient(create_app(viewer))
    response = client.get(f"/api/slice/{lesion.folder}/{lesion.key_slice:03d}.png?window=-175,275")
    assert response.status_code == 200
    pixels = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    hu = png16_release.key_slice(lesion)
    np.testing.assert_array_equal(pixels, apply_window(hu, (-175, 275), scale="uint8"))
    x, y = (int(v) for v in lesion.recist[0])
    value = client.get(f"/api/hu/{lesion.folder}/{lesion.key_slice:03d}?x={x}&y={y}").json()["hu"]
    assert value == int(hu[y, x])


def test_the_view_command_serves_and_says_where(release_root: Path) -> None:
    from deeplesion.cli.view_command import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    command = [
        str(Path(sys.executable).with_name("deeplesion")),
        "view",
        "--root",
        str(release_root),
        "--port",
        "0",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        match = None
        while match is None and len(lines) < 20 and process.stderr:  # a warning may come first
            lines.append(process.stderr.readline())
            match = re.search(r"http://127\.0\.0\.1:(\d+)/", lines[-1])
        assert match, lines
        import httpx

        for _ in range(50):  # the socket is bound before the line is printed; uvicorn starts just after
            try:
                response = httpx.get(f"{match.group(0)}api/lesions?limit=1", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response.json()["total"] == 3
        busy = subprocess.run(
            [*command[:-1], match.group(1)], capture_output=True, text=True, timeout=60
        )  # the same port again
        assert busy.returncode == 2 and "cannot listen on 127.0.0.1" in busy.stderr
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- end to end in a real browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_server(release_root: Path) -> Iterator[str]:
    """The app on a free loopback port, in a thread; stopped (and joined) when the module is done."""
    uvicorn = pytest.importorskip("uvicorn")
    app = create_app(Viewer(deeplesion.open(release_root), read_predictions_csv(release_root / "preds.csv")))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def colour_pixels(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    """Mask of the screenshot's pixels within ``tolerance`` of ``rgb`` (the image is BGR)."""
    bgr = np.array(rgb[::-1], dtype=np.int32)
    return np.all(np.abs(image[:, :, :3].astype(np.int32) - bgr) <= tolerance, axis=2)


@pytest.mark.slow
def test_end_to_end_in_headless_chromium(live_server: str, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (make test installs Debian's chromium when run as root)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    outside: list[str] = []
    errors: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.on(
                "request",
                lambda r: None if r.url.startswith((live_server, "data:")) else outside.append(r.url),
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{live_server}/")
            page.wait_for_selector("#lesions tbody tr")
            assert page.locator("#lesions tbody tr").count() == 3
            page.select_option("select[name=type]", "liver")  # filter the table
            page.wait_for_function("document.querySelectorAll('#lesions tbody tr').length === 2")
            page.click("#lesions tbody tr:first-child a")  # open a lesion
            page.wait_for_function("document.querySelector('#slice-number').textContent === '10'")
            page.wait_for_timeout(300)
            canvas = page.locator("#canvas")
            shot = tmp_path / "key-slice.png"
            canvas.screenshot(path=str(shot))
            image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
            assert image.shape[:2] == (SIZE, SIZE)
            # the lesion box (15,20)-(45,40) in its colour along its top edge, nowhere far from it
            box = colour_pixels(image, BOX_RGB)
            assert box[19:22, 20:41].sum() >= 20
            assert box[60:, :].sum() == 0
            # the hit (12,17)-(48,43) in blue, the false positive (150,150)-(200,200) in reddish purple
            hit = colour_pixels(image, HIT_RGB)
            assert hit[16:19, 20:41].sum() >= 20 and hit[60:, :].sum() == 0
            fp = colour_pixels(image, FP_RGB)
            assert fp[149:152, 155:196].sum() >= 10 and fp[:100, :100].sum() == 0
            canvas.hover()
            page.mouse.wheel(0, 200)  # scroll to the next slice
            page.wait_for_function("document.querySelector('#slice-number').textContent === '11'")
            page.keyboard.press("ArrowDown")  # 12 is missing on disk: the next one on disk is 13
            page.wait_for_function("document.querySelector('#slice-number').textContent === '13'")
            page.keyboard.press("3")  # the lung window
            page.wait_for_function("location.hash.includes('window=-1500%2C500')")
            assert "slice=13" in page.url
            page.wait_for_timeout(300)
            scrolled = tmp_path / "scrolled.png"
            canvas.screenshot(path=str(scrolled))
            grey = cv2.imread(str(scrolled), cv2.IMREAD_COLOR)
            expected = int(apply_window(np.array([130], np.int16), (-1500, 500), scale="uint8")[0])
            assert abs(int(np.median(grey[200:, 100:200, 1])) - expected) <= 2  # slice 13 in the lung window
            page.goto(f"{live_server}/#/lesion/2?slice=12&window=-175,275")  # a deep link to a missing slice
            page.wait_for_function("document.querySelector('#slice-error').textContent.includes('missing')")
            assert page.locator("#slice-number").inner_text() == "12"
            page.goto(f"{live_server}/#/patient/1")
            page.wait_for_selector("#studies .study")
            assert page.locator("#studies .study").count() == 2
            assert page.locator(".track-chip").first.inner_text() == "000001-01"
            page.wait_for_function("document.querySelector('#timeline').naturalWidth > 0")
            page.screenshot(path=str(tmp_path / "patient.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert not outside, outside  # nothing from outside the server: no CDN, no fonts
    keep = Path(os.environ.get("DEEPLESION_VIEW_SCREENSHOTS", ""))
    if keep.name:  # to look at them: DEEPLESION_VIEW_SCREENSHOTS=DIR pytest tests/test_view.py
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("key-slice.png", "scrolled.png", "patient.png"):
            shutil.copy(tmp_path / name, keep / name)
