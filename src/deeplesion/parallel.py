"""Mapping per-series work over folders: in this process, a local process pool, or a Dask cluster.

Per-series work (inventory, NIfTI export) is a pure function of one folder; this is the one place that
decides where it runs. No home-made scheduler: ``concurrent.futures`` locally, ``dask.distributed``
when the user points a command at a cluster (``--scheduler tcp://host:8786``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from deeplesion.errors import UsageError

R = TypeVar("R")


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
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from deeplesion.release import configure_worker

    with ProcessPoolExecutor(max_workers=jobs, initializer=configure_worker) as pool:
        futures = [pool.submit(func, *args) for args in calls]
        for done, future in enumerate(as_completed(futures), 1):
            yield future.result()
            if progress:
                progress(done, total)


def _on_dask(
    func: Callable[..., R],
    calls: Sequence[tuple[Any, ...]],
    address: str,
    progress: Callable[[int, int], None] | None,
) -> Iterator[R]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install 'deeplesion[dask]'") from None
    with Client(address) as client:  # type: ignore[no-untyped-call]
        client.run(_configure_dask_worker)
        futures = [client.submit(func, *args, pure=False) for args in calls]
        for done, future in enumerate(as_completed(futures), 1):  # type: ignore[no-untyped-call]
            yield future.result()
            if progress:
                progress(done, len(calls))


def _configure_dask_worker() -> None:
    from deeplesion.release import configure_worker

    configure_worker()
