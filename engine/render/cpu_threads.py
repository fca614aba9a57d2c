"""How many threads CPU training runs with: the cores this process may use that other work leaves free.

Why not simply every core: numba's ``prange`` and torch's intra-op loops split each call across their
threads and wait for the slowest; on a machine busy with other work one of those threads is often
descheduled, and every parallel call then waits for it (measured: steps several times slower with two
threads than with one on a 2-core machine at load 10). With no more threads than free cores a busy
machine only slows training by its fair share. The choice is made once per training run.
"""

from __future__ import annotations

import contextlib
import os
import time

import numba
import torch

_SAMPLE_S = 0.2
_plan: list[int | None] = [None]  # the thread count of the training run in progress, if any


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def busy_cores_of_others(sample_s: float = _SAMPLE_S) -> float:
    """How many cores other processes keep busy: the machine's busy share over a short window, less
    this process's own CPU time in it; the 1-minute load average where /proc/stat is missing."""
    before, own_before, t0 = _cpu_times(), time.process_time(), time.perf_counter()
    if before is None:
        try:
            return float(os.getloadavg()[0])
        except OSError:
            return 0.0
    time.sleep(sample_s)
    after, own, wall = _cpu_times(), time.process_time() - own_before, time.perf_counter() - t0
    busy, total = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return 0.0
    all_cpus = os.cpu_count() or 1
    return max(0.0, busy / total * all_cpus - own / max(wall, 1e-6))


def free_cores(sample_s: float = _SAMPLE_S) -> int:
    """Usable cores minus the ones other work keeps busy (rounded), at least 1."""
    cores = usable_cores()
    return max(1, min(cores, int(cores - busy_cores_of_others(sample_s) + 0.5)))


def planned_threads() -> int | None:
    """The thread count of the training run in progress (``training_threads``), None outside one."""
    return _plan[0]


@contextlib.contextmanager
def training_threads(threads: int | None = None):
    """Run the block (a training run) with ``threads`` torch and numba threads, or, when None, as many
    as there are free cores now; restores the previous counts after. Yields the count chosen."""
    n = max(1, int(threads)) if threads else free_cores()
    n = min(n, numba.config.NUMBA_NUM_THREADS)
    old_torch, old_numba, old_plan = torch.get_num_threads(), numba.get_num_threads(), _plan[0]
    torch.set_num_threads(n)
    numba.set_num_threads(n)
    _plan[0] = n
    try:
        yield n
    finally:
        _plan[0] = old_plan
        torch.set_num_threads(old_torch)
        numba.set_num_threads(old_numba)
