"""Splat viewer frame rate and sort time at 10k / 100k / 1M splats, 1280x720.

Run under X (Xvfb + Mesa llvmpipe here):  xvfb-run -a .venv/bin/python benchmarks/viewer_bench.py [--sizes 10000 100000]

Views: "framed" (the whole scene in view) and "close" (zoomed in: most splats culled). The camera
turns ~1 degree every frame so a re-sort is due at every frame. Columns:
- fps LOD: the viewer as used: sort on the worker, and while the view moves it draws the reduced
  order of the most important splats the worker also gathers (``LOD splats`` of them, a budget from
  the measured full-frame cost), and frames still slower than 25 fps are drawn at a lower
  resolution (``scale``) and scaled up;
- fps no-LOD: the same moving frames with the level of detail off (every splat drawn, the
  resolution drop still on); LOD x = fps LOD / fps no-LOD;
- fps worker: the same at full resolution, the sort on the worker thread while frames keep drawing
  the last order (frames include Qt compositing the GL widget);
- fps sort-in-frame: every frame first sorts and uploads, then draws (sort on the render thread);
- draw ms: the splat pass alone to glFinish;
- plain ms: the baseline measured in the same process, a plain instanced-quad shader (fixed 6 px
  quads, no culling, no EWA) drawing the same number of splats; ratio = plain ms / draw ms;
- sort ms: depth keys + 16-bit counting sort; job ms: the whole worker job (with row gathering);
  LOD job ms: the same job while moving, with ranking and gathering the reduced order.
The load average is printed: this machine is shared, and llvmpipe figures scale with free cores.
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
    """A trained-scene stand-in: flat Gaussians on a unit sphere and a ground plane whose 1-sigma
    radius is about half their neighbour spacing, so each surface is covered some 9 splats deep
    (sphere front, back and ground: ~25 per pixel in the framed view, as in trained scenes)."""
    g = np.random.default_rng(seed)
    half = n // 2
    d = g.normal(size=(half, 3))
    sphere = d / np.linalg.norm(d, axis=1, keepdims=True)
    plane = np.column_stack([g.uniform(-2, 2, n - half), g.uniform(-2, 2, n - half), np.full(n - half, -1.0)])
    means = np.vstack([sphere, plane])
    spacing = math.sqrt((4 * math.pi + 16) / n)
    log_scales = np.log(0.5 * spacing * g.uniform(0.5, 1.5, size=(n, 3)))
    log_scales[:, 2] += math.log(0.2)
    k = (sh_degree + 1) ** 2
    sh = np.zeros((n, k, 3))
    sh[:, 0] = g.normal(0, 1.0, size=(n, 3))
    if k > 1:
        sh[:, 1:] = g.normal(0, 0.1, size=(n, k - 1, 3))
    return GaussianScene.from_numpy(means, g.normal(size=(n, 4)), log_scales, g.normal(1.0, 1.5, n), sh)


def run_frames(
    app, viewer, frames: int, sort_on_render_thread: bool, adaptive: bool = False, lod: bool = False, warmup: int = 0
) -> float:
    """Frames per second over ``frames`` turning frames, after ``warmup`` uncounted ones (the
    level-of-detail budget settles on the measured cost of the first moving frames)."""
    from app.viewer.depth_sort import sort_and_gather

    drawn = []
    start = time.perf_counter()
    for i in range(warmup + frames):
        if i == warmup:
            viewer.drawn.connect(lambda: drawn.append(1))  # a sort result arriving also triggers a paint
            start = time.perf_counter()
        viewer._view.orbit(2.0, 0.0)  # ~0.9 degrees: a new order is due every frame
        viewer.adaptive_resolution = adaptive
        viewer.level_of_detail = lod
        if adaptive or lod:
            viewer._note_motion()  # as a mouse drag does
        if sort_on_render_thread:
            viewer._awaiting_result = True  # keep the worker out of it
            viewer._apply_sort_result(sort_and_gather(viewer._sort_job()))
            viewer._awaiting_result = True
        viewer.canvas.native.repaint()
        app.processEvents()
    elapsed = time.perf_counter() - start
    viewer.drawn.disconnect()
    viewer._awaiting_result = False
    viewer.adaptive_resolution = True
    viewer.level_of_detail = True
    return len(drawn) / elapsed


def _median_ms(viewer, draw, repeats: int) -> float:
    from vispy.gloo import gl

    viewer.canvas.set_current()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        draw()
        gl.glFinish()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def draw_only_ms(viewer, repeats: int = 5) -> float:
    return _median_ms(viewer, lambda: viewer.canvas.events.draw(region=None), repeats)


PLAIN_VERT = """
attribute vec2 a_corner;
attribute vec3 a_position;
attribute vec4 a_color;
uniform mat4 u_viewmat;
uniform mat4 u_cam_to_clip;
uniform vec2 u_size;
varying vec4 v_color;
void main() {
    vec4 c = u_cam_to_clip * (u_viewmat * vec4(a_position, 1.0));
    gl_Position = vec4(c.xy / c.w + a_corner * 6.0 / u_size, c.z / c.w, 1.0);
    v_color = a_color;
}
"""
PLAIN_FRAG = "varying vec4 v_color; void main() { gl_FragColor = v_color; }"


def plain_quads_ms(viewer, scene, repeats: int = 5) -> float:
    """The baseline: every splat a fixed-size instanced quad, nothing culled (same GL context)."""
    from vispy import gloo

    from app.viewer.gl_camera import gl_uniform, opencv_to_gl_clip

    cam = viewer.current_camera()
    near, far = viewer._view.near_far()
    prog = gloo.Program(PLAIN_VERT, PLAIN_FRAG)
    prog["a_corner"] = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float32)
    prog["a_position"] = gloo.VertexBuffer(scene.means.numpy().astype(np.float32), divisor=1)
    rgba = np.column_stack([scene.colors_dc.numpy(), scene.opacities.numpy()]).astype(np.float32)
    prog["a_color"] = gloo.VertexBuffer(rgba, divisor=1)
    prog["u_viewmat"] = gl_uniform(cam.world_to_camera)
    prog["u_cam_to_clip"] = gl_uniform(opencv_to_gl_clip(cam, near, far))
    prog["u_size"] = (float(cam.width), float(cam.height))

    def draw():
        gloo.clear(color=(0, 0, 0, 1))
        prog.draw("triangle_strip")

    return _median_ms(viewer, draw, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--frames", type=int, default=12)
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
        for view in ("framed", "close"):
            viewer.set_scene(scene)
            if view == "close":
                viewer._view.zoom(8)  # ~27% of the framing distance: the sphere overfills the view
            viewer.wait_until_sorted(120)
            frames = args.frames if n < 1_000_000 else max(3, args.frames // 4)
            viewer.canvas.native.repaint()  # a still frame: measures the full-resolution cost
            app.processEvents()
            warmup = 4 if n < 1_000_000 else 2
            lod_fps = run_frames(app, viewer, frames, sort_on_render_thread=False, adaptive=True, lod=True, warmup=warmup)
            lod_splats, lod_scale = viewer._lod_count, viewer._draw_scale_when_moving()
            lod_job_ms = viewer._last_job_ms
            viewer.wait_until_sorted(120)
            no_lod_fps = run_frames(app, viewer, frames, sort_on_render_thread=False, adaptive=True, lod=False, warmup=warmup)
            viewer.wait_until_sorted(120)
            worker_fps = run_frames(app, viewer, frames, sort_on_render_thread=False)
            viewer.wait_until_sorted(120)
            in_frame_fps = run_frames(app, viewer, frames, sort_on_render_thread=True)
            viewer.wait_until_sorted(120)
            repeats = 5 if n < 1_000_000 else 2
            draw_ms = draw_only_ms(viewer, repeats)
            plain_ms = plain_quads_ms(viewer, scene, repeats)
            job = viewer._last_job_ms
            rows.append([
                f"{n:,}", view, args.sh_degree, round(lod_fps, 1), round(no_lod_fps, 1), round(lod_fps / no_lod_fps, 2),
                f"{lod_splats:,}" if lod_splats else "all", round(lod_scale, 2),
                round(worker_fps, 1), round(in_frame_fps, 1), round(draw_ms, 1),
                round(plain_ms, 1), round(plain_ms / draw_ms, 2), round(viewer._last_sort_ms, 1), round(job, 1), round(lod_job_ms, 1),
            ])
            print(rows[-1], flush=True)
    renderer = gl.glGetParameter(gl.GL_RENDERER)
    print_table(
        f"splat viewer {WIDTH}x{HEIGHT} ({renderer}), load average {os.getloadavg()[0]:.1f}",
        ["splats", "view", "sh", "fps LOD", "fps no-LOD", "LOD x", "LOD splats", "scale", "fps worker", "fps sort-in-frame", "draw ms", "plain ms", "ratio", "sort ms", "job ms", "LOD job ms"],
        rows,
    )
    viewer.close()


if __name__ == "__main__":
    main()
