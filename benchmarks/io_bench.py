"""Splat file I/O speed: .ply write/load, .ply -> .spz convert, .splat, against plyfile and gsply.

    .venv/bin/python benchmarks/io_bench.py [--count 1000000] [--sh-degree 3] [--repeat 3]

Targets (1M splats, SH degree 3): .ply load < 2 s, .ply -> .spz convert < 5 s. The baseline is
plyfile loading the same file into the same arrays in this process; ``ratio`` is our time over that
(below 1 = faster than plyfile). gsply (an optimised reader) is shown for reference when installed.
Each figure is the best of ``--repeat`` runs (the page cache is warm after the first write).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import print_table  # noqa: E402
from engine.io import FORMATS, load_scene, save_scene  # noqa: E402
from engine.scene import GaussianScene, sh_coeffs_for_degree  # noqa: E402


def make_scene(n: int, degree: int, seed: int = 0) -> GaussianScene:
    g = np.random.default_rng(seed)
    k = sh_coeffs_for_degree(degree)
    return GaussianScene.from_numpy(
        means=g.uniform(-10, 10, (n, 3)).astype(np.float32),
        quats=g.normal(size=(n, 4)).astype(np.float32),
        log_scales=g.uniform(-6, -1, (n, 3)).astype(np.float32),
        opacity_logits=g.normal(scale=2, size=n).astype(np.float32),
        sh=g.normal(scale=0.4, size=(n, k, 3)).astype(np.float32),
    )


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def plyfile_load(path: Path, degree: int) -> GaussianScene:
    """The same job with plyfile: read the vertex element, gather the columns into a scene."""
    import plyfile

    v = plyfile.PlyData.read(str(path))["vertex"]
    k = sh_coeffs_for_degree(degree)
    col = lambda *names: np.stack([np.asarray(v[n]) for n in names], axis=1)  # noqa: E731
    rest = col(*[f"f_rest_{i}" for i in range(3 * (k - 1))]) if k > 1 else np.zeros((len(v.data), 0))
    sh = np.concatenate(
        [col("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :], rest.reshape(-1, 3, k - 1).transpose(0, 2, 1)], axis=1
    )
    return GaussianScene.from_numpy(
        col("x", "y", "z"), col("rot_0", "rot_1", "rot_2", "rot_3"), col("scale_0", "scale_1", "scale_2"),
        np.asarray(v["opacity"]), sh,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--sh-degree", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    scene = make_scene(args.count, args.sh_degree)
    rows = []
    with tempfile.TemporaryDirectory(prefix="handful-io-bench-") as tmp:
        ply_path, spz_path, splat_path = Path(tmp) / "s.ply", Path(tmp) / "s.spz", Path(tmp) / "s.splat"
        t_write = best_of(args.repeat, lambda: save_scene(scene, ply_path))
        size_mb = ply_path.stat().st_size / 1e6
        t_base = best_of(args.repeat, lambda: plyfile_load(ply_path, args.sh_degree))
        t_load = best_of(args.repeat, lambda: load_scene(ply_path))

        def row(name, seconds, target=None, note=""):
            ratio = None if seconds is None else seconds / t_base
            verdict = "" if target is None or seconds is None else ("ok" if seconds < target else "MISSED")
            rows.append([name, "n/a" if seconds is None else seconds,
                         "n/a" if seconds is None else args.count / seconds / 1e6,
                         "n/a" if ratio is None else ratio, "" if target is None else f"< {target} s {verdict}", note])

        row("plyfile .ply load (baseline)", t_base, note=f"{size_mb:.0f} MB")
        row(".ply load", t_load, target=2.0)
        row(".ply write", t_write, note=f"{size_mb:.0f} MB")
        try:
            import gsply

            row("gsply .ply load (reference)", best_of(args.repeat, lambda: gsply.plyread(str(ply_path))))
        except ImportError:
            row("gsply .ply load (reference)", None, note="gsply not installed")
        if "spz" in FORMATS:
            t_spz = best_of(1, lambda: save_scene(load_scene(ply_path), spz_path))
            row(".ply -> .spz convert", t_spz, target=5.0, note=f"{spz_path.stat().st_size / 1e6:.0f} MB")
        else:
            row(".ply -> .spz convert", None, target=5.0, note="engine.io.spz missing")
        row(".splat write", best_of(args.repeat, lambda: save_scene(scene, splat_path)),
            note=f"{splat_path.stat().st_size / 1e6:.0f} MB" if splat_path.exists() else "")
        row(".splat load", best_of(args.repeat, lambda: load_scene(splat_path)))

    print_table(
        f"splat file I/O, {args.count:,} splats, SH degree {args.sh_degree}, best of {args.repeat}",
        ["operation", "seconds", "M splats/s", "ratio vs plyfile load", "target", "note"],
        rows,
    )
    missed = any(isinstance(r[4], str) and "MISSED" in r[4] for r in rows)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
