"""Splat viewer frame rate and sort time at 10k / 100k / 1M splats, 1280x720.

Run under X (Xvfb + Mesa llvmpipe here):  xvfb-run -a .venv/bin/python benchmarks/viewer_bench.py [--sizes 10000 100000]

The camera turns ~1 degree every frame so a re-sort is due at every frame. Two ways are timed:
- "worker" (the viewer's design): the sort runs on the worker thread while frames keep drawing
  the last order;
- "render thread" (the baseline): every frame first sorts and uploads, then draws.
``ratio`` is worker FPS / render-thread FPS in the same process. Also printed: the splat draw
alone (glFinish), the sort (keys + counting sort) and the whole worker job (with row gathering).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PySide6 import QtWidgets  # noqa: E402

from benchmarks._machine import print_table  # noqa: E402
from engine.scene import GaussianScene  # noqa: E402

WIDTH, HEIGHT = 1280, 720


def surface_scene(n: int, sh_degree: int = 0, seed: int = 0) -> GaussianScene:
    """A trained-scene stand-in: flat Gaussians on a unit sphere and a ground plane, sized to
    their neighbour spacing (so a few layers cover each pixel, as on real surfaces)."""
    g = np.random.default_rng(seed)
    half = n // 2
    d = g.normal(size=(half, 3))
    sphere = d / np.linalg.norm(d, axis=1, keepdims=True)
    plane = np.column_stack([g.uniform(-2, 2, n - half), g.uniform(-2, 2, n - half), np.full(n - half, -1.0)])
    means = np.vstack([sphere, plane])
    spacing = math.sqrt((4 * math.pi + 16) / n)
    log_scales = np.log(spacing * g.uniform(0.5, 1.5, size=(n, 3)))
    log_scales[:, 2] += math.log(0.2)
    k = (sh_degree + 1) ** 2
    sh = np.zeros((n, k, 3))
    sh[:, 0] = g.normal(0, 1.0, size=(n, 3))
    if k > 1:
        sh[:, 1:] = g.normal(0, 0.1, size=(n, k - 1, 3))
    return GaussianScene.from_numpy(means, g.normal(size=(n, 4)), log_scales, g.normal(1.0, 1.5, n), sh)


def run_frames(app, viewer, frames: int, sort_on_render_thread: bool) -> float:
    from app.viewer.depth_sort import SortJob, sort_and_gather
    from app.viewer import splat_data

    start = time.perf_counter()
    for _ in range(frames):
        viewer._view.orbit(2.0, 0.0)  # ~0.9 degrees: a new order is due every frame
        if sort_on_render_thread:
            src = viewer._source
            job = SortJob(viewer._generation, src.rows, viewer._view.R.copy(), viewer._view.t.copy(),
                          highlight_column=splat_data.COL_HIGHLIGHT, extra=src)
            viewer._awaiting_result = True  # keep the worker out of it
            viewer._apply_sort_result(sort_and_gather(job))
            viewer._awaiting_result = True
        viewer.canvas.native.repaint()
        app.processEvents()
    elapsed = time.perf_counter() - start
    viewer._awaiting_result = False
    return frames / elapsed


def draw_only_ms(viewer, repeats: int = 5) -> float:
    from vispy.gloo import gl

    viewer.canvas.set_current()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        viewer.canvas.events.draw(region=None)
        gl.glFinish()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--sh-degree", type=int, default=0)
    args = parser.parse_args()

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from app.viewer import SplatViewer
    from vispy.gloo import gl

    viewer = SplatViewer()
    viewer.resize(WIDTH, HEIGHT)
    viewer.show()
    app.processEvents()
    rows = []
    for n in args.sizes:
        scene = surface_scene(n, args.sh_degree)
        viewer.set_scene(scene)
        viewer.wait_until_sorted(120)
        frames = max(5, args.frames if n < 1_000_000 else args.frames // 3)
        worker_fps = run_frames(app, viewer, frames, sort_on_render_thread=False)
        viewer.wait_until_sorted(120)
        render_thread_fps = run_frames(app, viewer, frames, sort_on_render_thread=True)
        viewer.wait_until_sorted(120)
        draw_ms = draw_only_ms(viewer)
        rows.append([
            f"{n:,}", f"{WIDTH}x{HEIGHT}", args.sh_degree, round(worker_fps, 1), round(render_thread_fps, 1),
            round(worker_fps / render_thread_fps, 2), round(draw_ms, 1), round(viewer._last_sort_ms, 1),
        ])
        print(rows[-1], flush=True)
    renderer = gl.glGetParameter(gl.GL_RENDERER)
    print_table(
        f"splat viewer ({renderer}); FPS while turning 0.9 deg/frame",
        ["splats", "size", "sh", "fps worker", "fps render-thread sort", "ratio", "draw ms", "sort ms"],
        rows,
    )
    viewer.close()


if __name__ == "__main__":
    main()
