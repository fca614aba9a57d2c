"""Rasterizer speed: forward and forward+backward times of the cpu and reference backends.

    python benchmarks/render_bench.py            # default (about 3 minutes on 2 cores)
    python benchmarks/render_bench.py --quick    # smallest set (under a minute)
    python benchmarks/render_bench.py --full     # adds 1M Gaussians and 1080p (several minutes)

The scene is an SfM-like initialisation: Gaussians filling a unit ball, sized by their spacing,
opacity around 0.5, SH degree 3, seen from 3 units away with a 60 degree field of view. Times are
medians of a few runs after a warm-up; ``ratio`` is reference time / cpu time measured in this run.
The ``legacy`` columns time the raster kernels from before the row-chord rewrite (kept in
``engine/render/cpu_kernels_legacy.py`` for this comparison) on the same scene, alternating with
today's kernels run by run so that a shared machine's load drift cancels.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

# Idle OpenMP threads of torch spin by default and then starve numba's threads (and vice versa): on a
# busy 2-core machine that made a step 5-10x slower. Passive waiting must be chosen before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import print_table  # noqa: E402

from engine.render import render  # noqa: E402
from engine.render import cpu_backend, cpu_kernels  # noqa: E402
from engine.scene import Camera, GaussianScene  # noqa: E402

RESOLUTIONS = {"128": (128, 128), "256": (256, 256), "512": (512, 512), "1080p": (1920, 1080)}
PARAMS = ("means", "quats", "log_scales", "opacity_logits", "sh")


def bench_scene(n: int, seed: int = 0) -> GaussianScene:
    g = np.random.default_rng(seed)
    directions = g.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    means = directions * g.uniform(0, 1, size=(n, 1)) ** (1 / 3)
    spacing = (4 / 3 * math.pi / n) ** (1 / 3)
    return GaussianScene.from_numpy(
        means=means,
        quats=g.normal(size=(n, 4)),
        log_scales=np.log(spacing * g.uniform(0.3, 1.0, size=(n, 3))),
        opacity_logits=g.normal(0.0, 1.5, size=n),
        sh=g.normal(scale=0.3, size=(n, 16, 3)),
    )


def bench_camera(width: int, height: int) -> Camera:
    f = 0.5 * width / math.tan(math.radians(60) / 2)
    return Camera.look_at((0.3, -0.5, -3.0), (0, 0, 0), fx=f, fy=f, cx=width / 2, cy=height / 2,
                          width=width, height=height)


def time_it(fn, repeats: int, cpu_time: bool = False) -> float:
    """Median wall time (or process CPU time, which a busy shared machine disturbs less)."""
    clock = time.process_time if cpu_time else time.perf_counter
    fn()  # warm-up (numba loads its cache, torch allocators settle)
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def measure(scene: GaussianScene, camera: Camera, backend: str, threads: int, repeats: int):
    torch.set_num_threads(threads)
    cpu_kernels.set_threads(threads)
    leaves = {p: getattr(scene, p).detach().clone().requires_grad_(True) for p in PARAMS}
    trainable = replace(scene, **leaves)

    def forward():
        with torch.no_grad():
            return render(scene, camera, sh_degree=3, background=(0, 0, 0), backend=backend)

    def step(viewmat=None):
        for t in leaves.values():
            t.grad = None
        r = render(trainable, camera, sh_degree=3, background=(0, 0, 0), backend=backend, viewmat=viewmat)
        (r.rgb.sum() + r.depth.sum() * 0.01).backward()

    def step_with_pose():  # a training step that also refines the camera pose
        step(camera.viewmat().requires_grad_(True))

    n_isects = forward().meta.n_isects
    cpu_step = time_it(step, repeats, cpu_time=True) if threads == 1 else None
    pose_step = time_it(step_with_pose, repeats) if threads == 2 and backend == "cpu" else None
    return time_it(forward, repeats), time_it(step, repeats), n_isects, cpu_step, pose_step


def kernels_side_by_side(scene: GaussianScene, camera: Camera, threads: int, repeats: int) -> dict:
    """Median forward+backward seconds of the legacy and today's raster kernels, run alternately."""
    torch.set_num_threads(threads)
    cpu_kernels.set_threads(threads)
    leaves = {p: getattr(scene, p).detach().clone().requires_grad_(True) for p in PARAMS}
    trainable = replace(scene, **leaves)

    def step():
        r = render(trainable, camera, sh_degree=3, background=(0, 0, 0), backend="cpu")
        (r.rgb.sum() + r.depth.sum() * 0.01).backward()

    times = {"legacy": [], "rows": []}
    for i in range(repeats + 1):
        for name in (("legacy", "rows") if i % 2 else ("rows", "legacy")):
            with cpu_backend.use_kernels(name):
                t0 = time.perf_counter()
                step()
                if i:  # the first round warms up
                    times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true")
    mode.add_argument("--full", action="store_true")
    args = parser.parse_args(argv)

    if args.quick:
        cases = [(10_000, "128"), (30_000, "256"), (100_000, "256")]
        reference_cases = {(10_000, "128"), (100_000, "256")}
        repeats = 2
    elif args.full:
        cases = [(n, r) for n in (10_000, 100_000, 1_000_000) for r in RESOLUTIONS] + [(30_000, "256")]
        reference_cases = {(10_000, "128"), (10_000, "256"), (10_000, "512"), (100_000, "256"), (100_000, "512")}
        repeats = 3
    else:
        cases = [(10_000, "128"), (10_000, "256"), (30_000, "256"), (100_000, "256"), (100_000, "512"),
                 (1_000_000, "1080p")]
        reference_cases = {(10_000, "128"), (100_000, "256")}
        repeats = 3
    cases.sort(key=lambda c: (c[0], RESOLUTIONS[c[1]][0] * RESOLUTIONS[c[1]][1]))

    rows = []
    scenes = {}
    for n, res in cases:
        if n not in scenes:
            scenes[n] = bench_scene(n)
        cam = bench_camera(*RESOLUTIONS[res])
        reps = 1 if n >= 1_000_000 or res == "1080p" else repeats
        fwd1, step1, n_isects, cpu_step1, _ = measure(scenes[n], cam, "cpu", 1, reps)
        fwd2, step2, _, _, pose_step2 = measure(scenes[n], cam, "cpu", 2, reps)
        side = kernels_side_by_side(scenes[n], cam, 2, reps)
        ref_fwd = ref_step = None
        if (n, res) in reference_cases:
            ref_fwd, ref_step, _, _, _ = measure(scenes[n], cam, "reference", 2, 1)
        rows.append([
            f"{n:,}", res, f"{n_isects:,}",
            round(fwd1 * 1e3, 1), round(fwd2 * 1e3, 1), round(step1 * 1e3, 1), round(cpu_step1 * 1e3, 1),
            round(step2 * 1e3, 1), round(pose_step2 * 1e3, 1),
            "" if ref_fwd is None else round(ref_fwd * 1e3, 1),
            "" if ref_step is None else round(ref_step * 1e3, 1),
            "" if ref_fwd is None else f"{ref_fwd / fwd2:.1f}x",
            "" if ref_step is None else f"{ref_step / step2:.1f}x",
            f"{fwd1 / fwd2:.2f}x",
            round(side["legacy"] * 1e3, 1), round(side["rows"] * 1e3, 1), f"{side['legacy'] / side['rows']:.2f}x",
        ])
        print(f"  done {n:,} Gaussians at {res}", file=sys.stderr, flush=True)
    print_table(
        "render_bench: ms (median wall; 'cpu-ms' = process CPU time); cpu backend at 1 and 2 threads, "
        f"reference at 2; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; load average "
        f"{os.getloadavg()[0]:.1f}",
        ["gaussians", "res", "isects", "cpu fwd 1t", "cpu fwd 2t", "cpu f+b 1t", "f+b 1t cpu-ms", "cpu f+b 2t",
         "+pose 2t", "ref fwd",
         "ref f+b", "ref/cpu fwd", "ref/cpu f+b", "2t speedup", "legacy f+b 2t", "rows f+b 2t",
         "legacy/rows"],
        rows,
    )


if __name__ == "__main__":
    main()
