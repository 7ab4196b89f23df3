"""Running a function over many jobs in worker processes, with a tqdm progress bar."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm import tqdm


def default_workers() -> int:
    """The number of worker processes to use when none is asked for."""
    return min(os.cpu_count() or 1, 8)


def run_jobs(
    fn: Callable[[Any], object],
    jobs: Sequence[Any],
    workers: int | None = None,
    desc: str = "",
    unit: str = "it",
    progress: bool = True,
) -> None:
    """Call `fn(job)` for every job (in `workers` processes when more than one)."""
    workers = default_workers() if workers is None else workers
    with tqdm(total=len(jobs), desc=desc, unit=unit, disable=not progress) as bar:
        if workers <= 1 or len(jobs) < 2:
            for job in jobs:
                fn(job)
                bar.update()
            return
        chunk = max(1, min(16, len(jobs) // (4 * workers)))
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(fn, jobs, chunksize=chunk):
                bar.update()
