"""Worker processes: never forked from a threaded parent, stopped promptly, clear when they cannot start."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from deeplesion import parallel
from deeplesion.parallel import START_METHOD, WorkerError, map_calls, process_pool

from . import parallel_probe

SRC = Path(parallel.__file__).resolve().parent


def test_pools_never_fork() -> None:
    assert START_METHOD in ("forkserver", "spawn")
    pool = process_pool(1)
    try:
        assert pool._mp_context.get_start_method() == START_METHOD  # type: ignore[attr-defined]
    finally:
        pool.shutdown()
    # what a worker sees: a fresh interpreter, not a copy of this process's memory
    parallel_probe.STATE = "changed by the parent"
    try:
        seen = set(map_calls(parallel_probe.worker_state, [(i,) for i in range(4)], jobs=2))
    finally:
        parallel_probe.STATE = "as imported"
    assert seen == {"as imported"}


def test_only_the_parallel_module_starts_processes() -> None:
    # every pool the package creates goes through parallel.process_pool (which fixes the start method)
    starters = ("ProcessPoolExecutor(", "multiprocessing.Pool", "mp.Pool", "os.fork", ".Process(")
    offenders = [
        f"{path.relative_to(SRC)}: {needle}"
        for path in SRC.rglob("*.py")
        if path.name != "parallel.py"
        for needle in starters
        if needle in path.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_only_data_and_detect_import_torch() -> None:
    importers = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] not in ("data", "detect")
        and any(
            line.strip().startswith(("import torch", "from torch"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    ]
    assert importers == []


def test_dataloader_workers_never_fork() -> None:
    torch = pytest.importorskip("torch", reason="the torch extra is not installed")
    from deeplesion.data import data_loader

    loader = data_loader(torch.utils.data.TensorDataset(torch.zeros(4)), num_workers=2)
    assert loader.multiprocessing_context.get_start_method() == START_METHOD


HANG_SCRIPT = """
import sys, threading
import cv2, numpy as np
from deeplesion.catalog import load_catalog
from deeplesion.nifti import export_nifti

if __name__ == "__main__":
    root, out = sys.argv[1], sys.argv[2]
    # the parent uses OpenCV's thread pool, and keeps a thread busy in OpenCV while the pool starts:
    # a fork at that moment copies locked OpenCV state into the workers (the hang of the v0.1 review)
    image = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    for _ in range(5):
        cv2.resize(image, (3000, 3000))
    stop = threading.Event()
    def busy():
        while not stop.is_set():
            cv2.GaussianBlur(image, (31, 31), 0)
    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    summary = export_nifti(root, load_catalog(root + "/DL_info.csv"), out=out, jobs=2)
    stop.set()
    thread.join()
    print("written", summary.written)
"""


@pytest.mark.slow
def test_export_with_a_pool_after_opencv_threads_does_not_hang(shared_release: Path, tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text(textwrap.dedent(HANG_SCRIPT))
    result = subprocess.run(
        [sys.executable, str(script), str(shared_release), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,  # a hang fails here, long before the suite's own timeout
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "written" in result.stdout and len(list((tmp_path / "out").glob("*.nii.gz"))) > 0


def test_a_script_without_main_guard_gets_a_clear_error(tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import math\nfrom deeplesion.parallel import map_calls\n"
        "print(list(map_calls(math.sqrt, [(4.0,), (9.0,)], jobs=2)))\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    error = [x for x in result.stderr.splitlines() if x.startswith("deeplesion.parallel.WorkerError")]
    assert len(error) == 1 and '__name__ == "__main__"' in error[0]


def _session_members(session: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # field 6 of stat: the session id
            members.append(int(entry.name))
    return members


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to list the processes of a session")
def test_ctrl_c_stops_the_workers_and_orphans_none(tmp_path: Path) -> None:
    script = tmp_path / "long.py"
    script.write_text(
        "import sys\nfrom deeplesion.parallel import map_calls\nfrom tests.parallel_probe import slow_pid\n"
        "if __name__ == '__main__':\n"
        "    for pid in map_calls(slow_pid, [(60.0,)] * 4, jobs=2):\n"
        "        print(pid, flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own session: the test can send Ctrl-C to the group, as a terminal
    )
    try:
        deadline = time.monotonic() + 60
        while len(_session_members(process.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)  # the parent, the fork server (or resource tracker) and two workers
        assert len(_session_members(process.pid)) >= 3, "the workers did not start"
        # a worker that is still importing numpy has not yet set SIGINT aside (configure_worker runs after
        # the imports) and prints its own traceback; on a loaded 2-core machine that window lasted long
        # enough to be hit once. The test is about the calls, so it lets the workers finish starting.
        time.sleep(1.5)
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):  # a second, impatient Ctrl-C
            os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        assert time.monotonic() - started < 20  # not the 60 s the calls would take
        assert "KeyboardInterrupt" in stderr
        assert stderr.count("Traceback") <= 2  # the parent's only (one per Ctrl-C): workers leave it to it
        deadline = time.monotonic() + 20
        while _session_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _session_members(process.pid) == []  # no orphaned worker
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_a_worker_error_is_raised_in_the_parent() -> None:
    with pytest.raises(ZeroDivisionError):
        list(map_calls(divmod, [(1, 0), (4, 2)], jobs=2))
    with pytest.raises(WorkerError, match="stopped"):
        list(map_calls(os._exit, [(3,)], jobs=2))
