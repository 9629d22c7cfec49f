"""Mapping per-series work over folders: in this process, a local process pool, or a Dask cluster.

Per-series work (inventory, NIfTI export, rendering) is a pure function of one folder; this is the one
place that decides where it runs, and the one place in the package that starts processes. No home-made
scheduler: ``concurrent.futures`` locally, ``dask.distributed`` when the user points a command at a
cluster (``--scheduler tcp://host:8786``).

Why never ``fork``: by the time a pool starts, the parent usually has threads (OpenCV's thread pool after
any resize or decode, Dask's, torch's). ``fork`` copies the memory of a process but only the calling
thread, so a lock that another thread held stays locked forever in the child: a worker that then calls
into OpenCV (``cv2.setNumThreads``) can block for good. Workers therefore start from a fresh interpreter
(:data:`START_METHOD`: ``forkserver`` where the platform has it, else ``spawn``). The price is that the
caller's script is imported again in each worker, so a script must keep its top-level work under
``if __name__ == "__main__":``; a pool that breaks for that reason gets an error that says so.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

from deeplesion.errors import DeepLesionError, UsageError

R = TypeVar("R")

START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
"""How the package starts worker processes: never ``fork`` (see the module docstring)."""

MAIN_GUARD_HINT = (
    "a worker process stopped before it could run; if you called this from a script, put the script's "
    'work under `if __name__ == "__main__":` (workers start a fresh Python that imports your script '
    "again), and check that the machine has memory to spare"
)


class WorkerError(DeepLesionError, RuntimeError):
    """A worker process died (it was killed, ran out of memory, or could not start)."""


def configure_worker() -> None:
    """Per-worker set-up, run once in every worker process the package starts (pool or Dask).

    One OpenCV thread per process: the pool gives the parallelism, more would oversubscribe the cores.
    """
    import cv2

    cv2.setNumThreads(1)


def _start_pool_worker() -> None:
    # A terminal's Ctrl-C reaches the whole process group; the parent, not each worker, decides how to
    # stop (it ends its workers itself), so workers print no KeyboardInterrupt tracebacks of their own.
    # First thing: configure_worker imports OpenCV and numpy (a tenth of a second), and a Ctrl-C during
    # that import would otherwise print a worker's traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    configure_worker()


def _stop_worker(signum: int, frame: object) -> None:
    # The parent terminates its workers on Ctrl-C or an error: leave no half-written temporary file
    # behind, and exit at once (raising would only hand the exception back to the pool's loop).
    from deeplesion.io import remove_live_temporaries

    remove_live_temporaries()
    os._exit(128 + signum)


def process_pool(jobs: int) -> ProcessPoolExecutor:
    """A process pool of ``jobs`` workers started safely (:data:`START_METHOD`) and set up by
    :func:`configure_worker`: the one way the package makes a pool."""
    context = multiprocessing.get_context(START_METHOD)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_start_pool_worker)


def end_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool at once: cancel what has not started and terminate the workers (Ctrl-C, an error).

    ``shutdown(cancel_futures=True)`` alone waits for the running calls, which for a large series can
    take minutes; Python 3.14 has ``terminate_workers()`` for this, older versions need the pool's
    process table.
    """
    import threading

    # a second Ctrl-C while the workers are being ended must not leave them running
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def map_calls(
    func: Callable[..., R],
    calls: Sequence[tuple[Any, ...]],
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[R]:
    """Yield ``func(*args)`` for every ``args`` in ``calls`` (in completion order when parallel).

    Parameters
    ----------
    func
        A picklable, module-level function.
    calls
        Argument tuples.
    jobs
        Local worker processes (1: run here, in order).
    scheduler
        A Dask scheduler address; overrides ``jobs``.
    progress
        ``progress(done, total)`` after each call.

    Raises
    ------
    WorkerError
        A worker process died (killed, out of memory, or a script without a ``__main__`` guard).

    Notes
    -----
    Interrupting (Ctrl-C) or abandoning the iteration terminates the pool's workers before the exception
    (or ``GeneratorExit``) goes on: no orphaned worker keeps running.
    """
    total = len(calls)
    if scheduler:
        yield from _on_dask(func, calls, scheduler, progress)
        return
    if jobs <= 1:
        for done, args in enumerate(calls, 1):
            yield func(*args)
            if progress:
                progress(done, total)
        return
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    pool = process_pool(min(jobs, max(total, 1)))
    finished = False
    try:
        futures: list[Future[R]] = [pool.submit(func, *args) for args in calls]
        for done, future in enumerate(as_completed(futures), 1):
            try:
                result = future.result()
            except BrokenProcessPool:
                raise WorkerError(MAIN_GUARD_HINT) from None
            yield result
            if progress:
                progress(done, total)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # an error, Ctrl-C, or the caller stopped iterating
            end_workers(pool)


def _on_dask(
    func: Callable[..., R],
    calls: Sequence[tuple[Any, ...]],
    address: str,
    progress: Callable[[int, int], None] | None,
) -> Iterator[R]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("a Dask scheduler needs Dask: pip install 'deeplesion[dask]'") from None
    with Client(address) as client:  # type: ignore[no-untyped-call]
        client.run(configure_worker)
        futures = [client.submit(func, *args, pure=False) for args in calls]
        try:
            for done, future in enumerate(as_completed(futures), 1):  # type: ignore[no-untyped-call]
                yield future.result()
                if progress:
                    progress(done, len(calls))
        finally:
            client.cancel(futures)
