"""GPU check: gsplat (CUDA) against our reference backend, then gsplat vs the cpu backend speed.

    python benchmarks/gpu_check.py [--sizes 10000,100000] [--res 256,1080p]

Exits 1 when the agreement check fails (forward max abs error >= 5e-4, gradient relative error >= 1e-3),
2 when there is no CUDA or gsplat's kernels cannot load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import print_table  # noqa: E402
from render_bench import RESOLUTIONS, bench_camera, bench_scene, measure  # noqa: E402

from engine.render import gsplat_backend, render  # noqa: E402
from engine.render.checks import compare_backends, edge_case_scene  # noqa: E402
from tests.factories import orbit_cameras  # noqa: E402

FORWARD_TOL = 5e-4
GRAD_TOL = 1e-3


def agreement() -> bool:
    rows, ok = [], True
    for width, height, seed, inside, features in [(80, 60, 0, False, 3), (37, 29, 1, True, 0), (128, 96, 2, False, 1)]:
        cam = orbit_cameras(8, width=width, image_height=height)[1]
        scene = edge_case_scene(cam, n=400, feature_dim=features, seed=seed, camera_inside=inside)
        rep = compare_backends(scene, cam, "reference", "gsplat", scene_b=scene.to("cuda"))
        fwd = max(v * (0.1 if k == "max_abs_depth" else 1) for k, v in rep.items() if k.startswith("max_abs_"))
        worst_grad = max((v, k) for k, v in rep.items() if k.startswith("rel_grad_"))
        passed = fwd < FORWARD_TOL and worst_grad[0] < GRAD_TOL and rep["n_isects"][0] == rep["n_isects"][1]
        ok &= passed
        rows.append([f"{width}x{height}", seed, inside, features, f"{fwd:.2e}", f"{worst_grad[0]:.2e}",
                     worst_grad[1][len('rel_grad_'):], f"{rep['n_isects'][0]}/{rep['n_isects'][1]}",
                     "ok" if passed else "FAIL"])
    print_table("gpu_check: gsplat vs reference (max abs fwd error, worst relative gradient error)",
                ["image", "seed", "cam inside", "F", "fwd err", "grad err", "worst param", "isects ref/gsplat",
                 "result"], rows)
    return ok


def gsplat_times(scene, camera, repeats=5):
    scene = scene.to("cuda")
    leaves = {p: getattr(scene, p).detach().clone().requires_grad_(True)
              for p in ("means", "quats", "log_scales", "opacity_logits", "sh")}
    from dataclasses import replace

    trainable = replace(scene, **leaves)

    def forward():
        with torch.no_grad():
            render(scene, camera, sh_degree=3, background=(0, 0, 0), backend="gsplat")

    def step():
        r = render(trainable, camera, sh_degree=3, background=(0, 0, 0), backend="gsplat")
        (r.rgb.sum() + r.depth.sum() * 0.01).backward()

    out = []
    for fn in (forward, step):
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out.append(statistics.median(times))
    return out


def speed(sizes, resolutions, threads):
    rows = []
    for n in sizes:
        scene = bench_scene(n)
        for res in resolutions:
            cam = bench_camera(*RESOLUTIONS[res])
            g_fwd, g_step = gsplat_times(scene, cam)
            c_fwd, c_step, n_isects = measure(scene, cam, "cpu", threads, 1 if n >= 1_000_000 else 2)
            rows.append([f"{n:,}", res, f"{n_isects:,}", round(g_fwd * 1e3, 2), round(g_step * 1e3, 2),
                         round(c_fwd * 1e3, 1), round(c_step * 1e3, 1), f"{c_step / g_step:.0f}x"])
    print_table(f"gpu_check: gsplat vs cpu backend ({threads} threads), ms (median)",
                ["gaussians", "res", "isects", "gsplat fwd", "gsplat f+b", "cpu fwd", "cpu f+b", "cpu/gsplat f+b"],
                rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--res", default="256,1080p")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    usable, why = gsplat_backend.kernel_status()  # compiles gsplat's kernels on a machine's first run
    if not usable:
        print(f"gpu_check: the gsplat backend cannot run here: {why}", file=sys.stderr)
        return 2
    ok = agreement()
    speed([int(s) for s in args.sizes.split(",")], args.res.split(","), args.threads)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
