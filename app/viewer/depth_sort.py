"""Back-to-front ordering of splats for alpha blending, computed off the GUI thread.

Web viewers sort on the CPU with a 16-bit counting sort because a full float sort of a million
depths per view change is too slow; the order only has to be good enough to blend, and a stable
counting sort is O(N) and releases the GIL (numba ``nogil``) so the renderer keeps drawing the
previous order while the worker sorts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np

KEY_LEVELS = 1 << 16
logger = logging.getLogger(__name__)


@numba.njit(nogil=True, cache=True)
def counting_sort_u16(keys: np.ndarray) -> np.ndarray:
    """Stable ascending order of 16-bit keys (the same result as ``np.argsort(keys, kind="stable")``)."""
    counts = np.zeros(KEY_LEVELS + 1, dtype=np.int64)
    for k in keys:
        counts[np.int64(k) + 1] += 1
    for i in range(1, KEY_LEVELS + 1):
        counts[i] += counts[i - 1]
    order = np.empty(keys.shape[0], dtype=np.int32)
    for i in range(keys.shape[0]):
        k = np.int64(keys[i])
        order[counts[k]] = i
        counts[k] += 1
    return order


@numba.njit(nogil=True, cache=True)
def quantised_far_to_near_keys(means: np.ndarray, axis: np.ndarray, offset: float, visible: np.ndarray):
    """16-bit keys where the farthest splat (largest camera depth ``axis . x + offset``) gets 0.

    Hidden splats (``visible`` False) get no key; returns (keys, indices of the keyed splats).
    """
    n = means.shape[0]
    depth = np.empty(n, dtype=np.float32)
    index = np.empty(n, dtype=np.int32)
    m = 0
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        if visible.shape[0] and not visible[i]:
            continue
        z = means[i, 0] * axis[0] + means[i, 1] * axis[1] + means[i, 2] * axis[2] + offset
        depth[m] = z
        index[m] = i
        m += 1
        lo = min(lo, z)
        hi = max(hi, z)
    keys = np.empty(m, dtype=np.uint16)
    scale = (KEY_LEVELS - 1) / (hi - lo) if hi > lo else 0.0
    for j in range(m):
        keys[j] = np.uint16((hi - depth[j]) * scale)
    return keys, index[:m]


@numba.njit(nogil=True, cache=True)
def gather_rows(src: np.ndarray, rows: np.ndarray, padded_length: int = 0) -> np.ndarray:
    """``src[rows]`` followed by zero rows up to ``padded_length`` (a texture's whole rows)."""
    out = np.zeros((max(rows.shape[0], padded_length), src.shape[1]), dtype=src.dtype)
    for j in range(rows.shape[0]):
        r = rows[j]
        for c in range(src.shape[1]):
            out[j, c] = src[r, c]
    return out


@numba.njit(nogil=True, cache=True)
def splat_importance(
    packed: np.ndarray, order: np.ndarray, axis: np.ndarray, offset: float, near: float, planes: np.ndarray
) -> np.ndarray:
    """How much each splat of ``order`` shows on screen: opacity x its projected area, the area
    estimated as trace(world covariance) / depth^2 (no intrinsics needed; the ranking is what
    matters). Splats the shader culls score -1: nearer than ``near``, or (with ``planes``, rows
    (nx, ny, nz, d) of inward world-space side planes) a sphere of 3.33 x their largest std dev
    wholly outside one side plane, as in the shader."""
    out = np.empty(order.shape[0], dtype=np.float32)
    for j in range(order.shape[0]):
        i = order[j]
        x, y, w = packed[i, 0], packed[i, 1], packed[i, 2]
        z = x * axis[0] + y * axis[1] + w * axis[2] + offset
        trace = packed[i, 4] + packed[i, 7] + packed[i, 9]
        score = packed[i, 3] * trace / (z * z)
        if z <= near:
            score = -1.0
        else:
            radius = 3.33 * np.sqrt(trace)
            for k in range(planes.shape[0]):
                if x * planes[k, 0] + y * planes[k, 1] + w * planes[k, 2] + planes[k, 3] < -radius:
                    score = -1.0
                    break
        out[j] = score
    return out


def most_important_slots(importance: np.ndarray, budget: int) -> np.ndarray:
    """Ascending slots of the ``budget`` largest ``importance`` values: indexing a back-to-front
    order with them gives a reduced order that is still back to front."""
    n = importance.shape[0]
    if budget >= n:
        return np.arange(n)
    if budget <= 0:
        return np.zeros(0, dtype=np.int64)
    chosen = np.argpartition(-importance, budget - 1)[:budget]
    return np.sort(chosen)


def back_to_front_order(means: np.ndarray, R: np.ndarray, t: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """Indices of the visible splats sorted far to near along the optical axis of world-to-camera (R, t)."""
    means = np.ascontiguousarray(means, dtype=np.float32)
    mask = np.zeros(0, dtype=np.bool_) if visible is None else np.ascontiguousarray(visible, dtype=np.bool_)
    keys, index = quantised_far_to_near_keys(means, np.asarray(R[2], dtype=np.float32), float(t[2]), mask)
    return index[counting_sort_u16(keys)]


@dataclass
class SortJob:
    """Everything the worker needs; ``generation`` ties the result to the data it was made from."""

    generation: int
    packed: np.ndarray | Callable[[], np.ndarray]  # (N, C) float32 rows (columns 0..2 the mean), or a maker run on the worker
    R: np.ndarray  # world -> camera rotation of the view to sort for (only its third row matters)
    t: np.ndarray
    visible: np.ndarray | None = None  # (N,) bool; hidden splats are left out of the order
    highlight: np.ndarray | None = None  # (N,) float written into ``highlight_column`` of the rows
    highlight_column: int = -1
    pad_multiple: int = 1  # zero rows appended up to a multiple of this (whole texture rows)
    lod_budget: int = 0  # > 0: also make a reduced order of at most this many splats (level of detail)
    near: float = 0.0  # splats nearer than this along the view axis are never chosen for the reduced order
    planes: np.ndarray | None = None  # (K, 4) inward world side planes (n, d): splats outside are never chosen
    extra: object = None  # carried to the result untouched


@dataclass
class SortResult:
    generation: int
    rows: np.ndarray  # (M', C) packed rows in back-to-front order, M' >= count padded with zeros
    count: int  # M: splats in the order
    R: np.ndarray
    t: np.ndarray
    sort_ms: float  # depth keys + counting sort
    total_ms: float  # including packing and gathering the rows
    extra: object = None
    lod_rows: np.ndarray | None = None  # rows of the reduced order (back to front, padded), when a budget was given
    lod_count: int = 0
    lod_ms: float = 0.0  # ranking and gathering the reduced order


def sort_and_gather(job: SortJob) -> SortResult:
    start = time.perf_counter()
    packed = job.packed() if callable(job.packed) else job.packed
    sort_start = time.perf_counter()
    order = back_to_front_order(packed[:, :3], job.R, job.t, job.visible)
    sort_ms = (time.perf_counter() - sort_start) * 1000
    m = len(order)
    rows = gather_rows(packed, order, -(-m // job.pad_multiple) * job.pad_multiple)
    if job.highlight is not None:
        rows[:m, job.highlight_column] = np.asarray(job.highlight, dtype=rows.dtype)[order]
    lod_rows, lod_count, lod_ms = None, 0, 0.0
    if 0 < job.lod_budget < m:
        lod_start = time.perf_counter()
        planes = np.zeros((0, 4), np.float32) if job.planes is None else np.asarray(job.planes, dtype=np.float32)
        axis = np.asarray(job.R[2], dtype=np.float32)
        importance = splat_importance(packed, order, axis, float(job.t[2]), float(job.near), planes)
        slots = most_important_slots(importance, job.lod_budget)
        lod_count = len(slots)
        lod_rows = gather_rows(rows, slots, -(-lod_count // job.pad_multiple) * job.pad_multiple)
        lod_ms = (time.perf_counter() - lod_start) * 1000
    return SortResult(
        job.generation, rows, m, job.R, job.t, sort_ms, (time.perf_counter() - start) * 1000, job.extra,
        lod_rows, lod_count, lod_ms,
    )


class SortWorker:
    """A daemon thread that runs the latest submitted job (older pending ones are dropped) and hands
    the result to ``on_result`` from the worker thread."""

    def __init__(self, on_result: Callable[[SortResult], None], sort_fn: Callable[[SortJob], SortResult] = sort_and_gather):
        self._on_result = on_result
        self._sort_fn = sort_fn
        self._cond = threading.Condition()
        self._pending: SortJob | None = None
        self._busy = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="splat-sort", daemon=True)
        self._thread.start()

    def submit(self, job: SortJob) -> None:
        with self._cond:
            self._pending = job
            self._cond.notify_all()

    @property
    def idle(self) -> bool:
        with self._cond:
            return not self._busy and self._pending is None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy or self._pending is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                job, self._pending = self._pending, None
                self._busy = True
            try:
                self._on_result(self._sort_fn(job))
            except Exception:  # a failed sort must not kill the worker: log it and keep the old order
                logger.exception("sorting splats failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
