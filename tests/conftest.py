"""Shared test helpers: where the real data is, and skipping (with a reason) when it is absent."""

from __future__ import annotations

import signal
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from deeplesion.mirror import MirrorServer
from tests.faulty_mirror import FaultyHandler

# A suite started in the background of a non-interactive shell (`make test &`, nohup, some CI runners)
# inherits SIGINT as ignored, and so would every CLI process a test starts: the Ctrl-C tests would then
# test nothing (the child ignores the signal and runs to the end). Python's own handler here makes the
# children start with the default disposition again (a caught signal is reset on exec).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
DL_INFO_DIR = SHARED_DATA / "deeplesion" / "DL_info"
TEST_DATA = Path(__file__).resolve().parent / "data"


def require(path: Path) -> Path:
    """Return ``path``, or skip the test when it is absent (a fresh clone has no ../shared)."""
    if not path.exists():
        pytest.skip(f"real data {path} is absent (it lives in ../shared/data beside the checkout)")
    return path


@pytest.fixture
def dl_info_dir() -> Path:
    """The folder of real DL_info files (skips when absent)."""
    return require(DL_INFO_DIR)


@pytest.fixture
def sample_csv() -> Path:
    """The packaged real 158-row excerpt."""
    from deeplesion.resources import sample_dl_info_path

    return sample_dl_info_path()


PNG16_DIR = SHARED_DATA / "deeplesion" / "png16"


@pytest.fixture(scope="session")
def png16_release():  # type: ignore[no-untyped-def]
    """The real staged slices with their rows from the union file (skips when absent)."""
    import deeplesion
    from deeplesion.catalog import load_catalog

    require(PNG16_DIR)
    catalog = load_catalog(require(DL_INFO_DIR / "DL_info_union.csv"))
    folders = sorted(p.name for p in (PNG16_DIR / "Images_png").iterdir())
    names = [
        f"{folder}_{png.stem}.png"
        for folder in folders
        for png in (PNG16_DIR / "Images_png" / folder).iterdir()
    ]
    return deeplesion.open(PNG16_DIR, catalog=catalog.filter(file_names=names))


SHARED_RELEASE_PATIENTS = 6
SHARED_RELEASE_SEED = 0


@pytest.fixture(scope="session")
def shared_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic release (6 patients, zips and quirks) generated once per test run, shared by the
    test modules and, under pytest-xdist, by the workers (a file lock makes the first one build it).
    Tests must treat it as read-only."""
    import fcntl
    import os

    from deeplesion.synth import make_synthetic_release

    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    base = tmp_path_factory.getbasetemp().parent if run_id else tmp_path_factory.getbasetemp()
    target = base / f"shared-release-{run_id or 'local'}"
    with (base / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "synth-manifest.json").exists():
            make_synthetic_release(
                target,
                patients=SHARED_RELEASE_PATIENTS,
                seed=SHARED_RELEASE_SEED,
                zips=True,
                quirks=True,
                force=True,
            )
    return target


@pytest.fixture
def mirror(shared_release: Path) -> Iterator[MirrorServer]:
    """Download tests: the shared synthetic release served by :class:`FaultyHandler` (faults reset)."""
    FaultyHandler.faults = defaultdict(list)
    FaultyHandler.head_faults = defaultdict(list)
    FaultyHandler.log = []
    FaultyHandler.slow = 0.0
    with MirrorServer(shared_release, handler=FaultyHandler) as server:
        assert server.url.startswith("http://127.0.0.1:")
        yield server
