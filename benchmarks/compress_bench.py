"""Rate-distortion of every format Handful writes, on scenes trained by Handful, side by side.

    .venv/bin/python benchmarks/compress_bench.py JOB_DIR [JOB_DIR ...] [--finetune N] [--decode-count 1000000]

JOB_DIR is a folder written by ``python -m engine reconstruct`` (scene.ply, sparse/, images/); its
held-out views are the job's (every 8th photo), the training views are the rest. For each format:
size (MB, bytes per splat of the input scene, ratio to .ply), PSNR / SSIM of the held-out renders
against the photos and the change from the uncompressed scene (dB), PSNR of the renders against the
uncompressed scene's renders, and encode / decode seconds. The baseline row is the .ply itself.

A second table times decoding a synthetic 1M-splat .handful file with the block decoder (1 thread and all),
with the numpy reference decoder and reading the same scene's .ply, interleaved in the same process
(ratio < 1: faster than .ply); a third, the first and second decode in fresh processes, numba cache cold
and warm, for this checkout and (``--compare DIR``) another one, such as the compiled decoder before.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import print_table  # noqa: E402
from engine.compress.importance import contributions  # noqa: E402
from engine.compress.pipeline import compress  # noqa: E402
from engine.compress.quality import QUALITY_NAMES  # noqa: E402
from engine.compress.scene_codec import CodecSettings, decode_scene, decode_threads, encode_scene  # noqa: E402
from engine.io import load_cameras, load_scene, save_scene  # noqa: E402
from engine.metrics import psnr, ssim  # noqa: E402
from engine.render import render  # noqa: E402
from engine.scene import GaussianScene, sh_coeffs_for_degree  # noqa: E402

SOG_SHAPE_TOLERANCES = (0.0, 0.25, 0.5, 1.0)
FORMATS = [("ply", ".ply"), ("spz", ".spz"), ("compressed_ply", ".compressed.ply"), ("splat", ".splat"),
           ("sog", ".sog"), ("gltf", ".glb"), ("handful", ".handful")]


def job_views(job: Path):
    import json

    from engine.commands.compress import photos_for

    cams = sorted(load_cameras(job / "sparse"), key=lambda c: c.name)
    report = json.loads((job / "report.json").read_text())
    held = set(report["eval"]["views"]) if report.get("eval", {}).get("held_out") else set()
    test = [c for c in cams if c.name in held]
    train = [c for c in cams if c.name not in held]
    return train, test, photos_for(test, job / "images")


def splat_transform_check(path: Path, ours: GaussianScene) -> str:
    """What PlayCanvas's splat-transform (scripts/setup.sh installs it) reads from our SOG file, against our
    reader: the count, and the largest position difference."""
    import shutil
    import subprocess

    tool = Path(__file__).resolve().parents[1] / ".npm-tools" / "node_modules" / ".bin" / "splat-transform"
    if shutil.which("node") is None or not tool.exists():
        return "splat-transform not installed"
    out = path.with_suffix(".st.ply")
    run = subprocess.run([str(tool), "-w", str(path), str(out)], capture_output=True, text=True, timeout=600)
    if run.returncode:
        return f"splat-transform failed: {run.stderr.strip()[-200:]}"
    theirs = load_scene(out)
    if len(theirs) != len(ours):
        return f"splat-transform read {len(theirs):,} splats of {len(ours):,}"
    diff = float((theirs.means - ours.means).abs().max()) if len(ours) else 0.0
    return f"splat-transform: same count, positions within {diff:.1e}"


def renders(scene: GaussianScene, cams, background):
    with torch.no_grad():
        return [render(scene, c, background=background, backend="cpu").rgb.clamp(0, 1) for c in cams]


def quality_row(label, nbytes, n, ply_bytes, imgs, photos, base_imgs, base_psnr, enc, dec):
    p = float(np.mean([psnr(a, b) for a, b in zip(imgs, photos)]))
    s = float(np.mean([ssim(a, b) for a, b in zip(imgs, photos)]))
    vs = float(np.mean([psnr(a, b) for a, b in zip(imgs, base_imgs)]))
    return [label, nbytes / 1e6, nbytes / n, ply_bytes / nbytes, p, s, p - base_psnr, vs, enc, dec]


def bench_job(job: Path, finetune: int, background_arg) -> None:
    scene = load_scene(job / "scene.ply")
    train, test, photos = job_views(job)
    import json

    recorded = json.loads((job / "report.json").read_text()).get("background", {}).get("rgb")
    background = background_arg or (tuple(recorded) if recorded else (0.0, 0.0, 0.0))
    n = len(scene)
    base_imgs = renders(scene, test, background)
    base_psnr = float(np.mean([psnr(a, b) for a, b in zip(base_imgs, photos)]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ply_bytes = None
        for fmt, ext in FORMATS:
            path = Path(tmp) / f"scene{ext}"
            t = time.perf_counter()
            save_scene(scene, path, format=fmt)
            enc = time.perf_counter() - t
            t = time.perf_counter()
            back = load_scene(path)
            dec = time.perf_counter() - t
            size = path.stat().st_size
            ply_bytes = ply_bytes or size
            label = "handful (lossless)" if fmt == "handful" else fmt
            if fmt == "sog":
                label += f" ({splat_transform_check(path, back)})"
            rows.append(quality_row(label, size, n, ply_bytes, renders(back, test, background), photos,
                                    base_imgs, base_psnr, enc, dec))
        from engine.io import sog

        # earlier SOG settings side by side: before SH palette entry 0 and coarser grids, and each shape tolerance
        variants = [("sog (no palette entry 0, 256-word grids, 8 splats per entry, exact shapes)",
                     dict(sh_tolerance=0.0, splats_per_entry=8, grid_levels=dict.fromkeys(sog.GRID_LEVELS, 256),
                          shape_tolerance=0.0))]
        variants += [(f"sog, shape tolerance {tol:g}{' (default)' if tol == sog.SHAPE_TOLERANCE else ''}",
                      dict(shape_tolerance=tol)) for tol in SOG_SHAPE_TOLERANCES]
        for label, options in variants:
            t = time.perf_counter()
            meta, files = sog.encode(scene, **options)
            path = Path(tmp) / "variant.sog"
            sog.write_bundle(meta, files, path)
            enc = time.perf_counter() - t
            t = time.perf_counter()
            back = load_scene(path)
            rows.append(quality_row(label, path.stat().st_size, n, ply_bytes, renders(back, test, background), photos,
                                    base_imgs, base_psnr, enc, time.perf_counter() - t))
        t = time.perf_counter()
        weights = contributions(scene, train, backend="cpu")
        importance_s = time.perf_counter() - t
        train_photos = None
        for q in QUALITY_NAMES:
            steps = [0] + ([finetune] if finetune else [])
            for ft in steps:
                if ft and train_photos is None:
                    from engine.commands.compress import photos_for

                    train_photos = photos_for(train, job / "images")
                for distill in (False, True):
                    t = time.perf_counter()
                    data, report, _ = compress(scene, q, cameras=train, importance=weights, background=background,
                                               images=train_photos if ft else None, finetune_steps=ft, backend="cpu",
                                               distill=distill)
                    enc = time.perf_counter() - t + importance_s
                    t = time.perf_counter()
                    back = decode_scene(data)
                    dec = time.perf_counter() - t
                    label = (f"handful {q}" + (f" +ft{ft}" if ft else "") + (", SH distilled" if distill else
                             ", SH truncated") + f" ({report.kept_gaussians / n:.0%} kept)")
                    rows.append(quality_row(label, len(data), n, ply_bytes, renders(back, test, background), photos,
                                            base_imgs, base_psnr, enc, dec))
    print_table(
        f"compression on {job.name}: {n:,} splats, SH degree {scene.sh_degree}, {len(test)} held-out views "
        f"(uncompressed: {base_psnr:.2f} dB vs photos); baseline = .ply",
        ["format", "MB", "B/splat", "x vs ply", "PSNR", "SSIM", "dPSNR", "PSNR vs orig", "encode s", "decode s"],
        rows,
    )


def synthetic_scene(count: int) -> GaussianScene:
    g = np.random.default_rng(0)
    k = sh_coeffs_for_degree(3)
    # a surface-like cloud: points near a sphere, so that Morton gaps look like a real scene's
    d = g.normal(size=(count, 3))
    means = d / np.linalg.norm(d, axis=1, keepdims=True) * (2 + 0.01 * g.normal(size=(count, 1)))
    return GaussianScene.from_numpy(means, g.normal(size=(count, 4)), g.uniform(-6, -2, (count, 3)),
                                    g.normal(scale=2, size=count), g.normal(scale=0.3, size=(count, k, 3)))


_FRESH_PROCESS = """
import sys, time
sys.path.insert(0, {root!r})
t, c = time.perf_counter(), time.process_time()
from engine.io import load_scene
print(time.perf_counter() - t, time.process_time() - c)
for _ in range(2):
    t, c = time.perf_counter(), time.process_time(); load_scene({path!r})
    print(time.perf_counter() - t, time.process_time() - c)
"""


def fresh_process_decode(path: Path, root: Path, numba_cache: Path) -> list[tuple[float, float]]:
    """[(wall, CPU) of importing engine.io, of the first load_scene, of the second] in a new interpreter
    running the checkout at ``root``, with numba's cache in ``numba_cache``."""
    import os
    import subprocess

    code = _FRESH_PROCESS.format(root=str(root), path=str(path))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=root)
    lines = run.stdout.split("\n")[-4:-1]
    return [tuple(float(v) for v in line.split()) for line in lines]


def _decode_files(scene, lossless: bool, tmp: Path) -> dict[str, tuple[bytes, float, bool]]:
    """{label: (bytes, encode seconds, single-frame)}: each setting written as this build does (a
    version-2 file of 4 MiB frames) and as one frame per stream (version 1, which older builds read)."""
    from engine.compress import container

    files = {"high": CodecSettings(means="q16", opacity="q8", dc="q8", log_scales="q8", quats="q8",
                                   sh_rest="vq256", zstd_level=9)}
    if lossless:
        files["lossless"] = CodecSettings()
    out = {}
    for label, settings in files.items():
        t = time.perf_counter()
        data = encode_scene(scene, settings)
        out[f"{label}, frames"] = (data, time.perf_counter() - t, False)
        header, streams = container.unpack(data)
        header.pop("streams")
        frame = container.FRAME_BYTES
        container.FRAME_BYTES = 1 << 62
        try:
            out[f"{label}, one frame"] = (container.pack(header, streams, settings.zstd_level), 0.0, True)
        finally:
            container.FRAME_BYTES = frame
    for i, (label, (data, _, _)) in enumerate(out.items()):
        (tmp / f"{i}.handful").write_bytes(data)
    return out


def bench_decode(count: int, rounds: int, lossless: bool, compare: Path | None) -> None:
    """In this process: the block decoder against the numpy reference decoder and the .ply reader,
    interleaved round by round (medians). Then each file's first and second decode in fresh processes,
    this checkout and ``compare`` (another checkout, e.g. the compiled decoder before), with numba's
    cache cold (an empty folder) and warm (filled by an earlier run), interleaved."""
    scene = synthetic_scene(count)
    root = Path(__file__).resolve().parents[1]
    rows, fresh_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ply = tmp / "s.ply"
        save_scene(scene, ply)
        encoded = _decode_files(scene, lossless, tmp)
        times: dict = {}

        def timed(key, fn):
            t, c = time.perf_counter(), time.process_time()
            fn()
            times.setdefault(key, []).append((time.perf_counter() - t, time.process_time() - c))

        for data, _, _ in encoded.values():
            decode_scene(data)
        for _ in range(rounds):
            timed("ply", lambda: load_scene(ply))
            for label, (data, _, _) in encoded.items():
                timed((label, "ref"), lambda: decode_scene(data, reference=True))
                timed((label, "1"), lambda: decode_scene(data, threads=1))
                timed((label, "new"), lambda: decode_scene(data))
        med = lambda key: np.median(np.asarray(times[key]), axis=0)  # noqa: E731
        base, base_cpu = med("ply")
        rows.append([".ply read (baseline)", ply.stat().st_size / 1e6, base, base_cpu, 1.0, ""])
        for label, (data, enc, _) in encoded.items():
            mb = len(data) / 1e6
            (ref, ref_cpu), (one, one_cpu), (new, new_cpu) = (med((label, k)) for k in ("ref", "1", "new"))
            rows.append([f".handful {label}: numpy reference decoder", mb, ref, ref_cpu, ref / base,
                         f"encode {enc:.1f} s" if enc else ""])
            rows.append([f".handful {label}: block decoder, 1 thread", mb, one, one_cpu, one / base,
                         f"{ref / one:.1f}x faster than the reference"])
            rows.append([f".handful {label}: block decoder, {decode_threads()} threads", mb, new, new_cpu,
                         new / base, f"{ref / new:.1f}x faster than the reference"])

        trees = [("this checkout", root)] + ([(f"{compare}", compare)] if compare else [])
        warm_cache = tmp / "numba-warm"
        fresh: dict = {}
        primed: set = set()
        for _ in range(max(1, rounds // 2)):
            for i, (label, (_, _, single)) in enumerate(encoded.items()):
                for tree, at in trees:
                    if at != root and not single:
                        continue  # an older build reads only the version-1 (one frame per stream) file
                    for cache in ("cold", "warm"):
                        folder = warm_cache if cache == "warm" else Path(tempfile.mkdtemp(dir=tmp))
                        if cache == "warm" and tree not in primed:
                            fresh_process_decode(tmp / f"{i}.handful", at, folder)  # fills the cache
                            primed.add(tree)
                        res = fresh_process_decode(tmp / f"{i}.handful", at, folder)
                        fresh.setdefault((tree, label), {}).setdefault(cache, []).append(res)
        for (tree, label), by_cache in fresh.items():
            for cache, runs in by_cache.items():
                (imp, imp_c), (first, first_c), (second, second_c) = np.median(np.asarray(runs), axis=0)
                fresh_rows.append([f"{label}: {tree}", cache, imp, imp_c, first, first_c, second, second_c])
    print_table(f"decode speed, {count:,} synthetic splats, SH degree 3, median of {rounds} interleaved rounds "
                f"(CPU s: this process's CPU time over all its threads, which other load inflates far less)",
                ["file", "MB", "seconds", "CPU s", "ratio vs .ply", "note"], rows)
    print_table("the same files in fresh processes (numba cache cold: an empty folder; warm: filled by a run "
                "before); import = `from engine.io import load_scene` (torch included)",
                ["file: decoder", "numba cache", "import s", "import CPU s", "1st load s", "1st CPU s",
                 "2nd load s", "2nd CPU s"], fresh_rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("jobs", nargs="*", type=Path, help="job folders (scene.ply, sparse/, images/, report.json)")
    p.add_argument("--finetune", type=int, default=0, help="also fine-tune N steps against the training photos")
    p.add_argument("--background", choices=("black", "white"),
                   help="the job's background (default: the one in its report.json, else black)")
    p.add_argument("--decode-count", type=int, default=1_000_000, help="splats in the decode-speed file (0: skip)")
    p.add_argument("--decode-rounds", type=int, default=3, help="interleaved timing rounds of the decode table")
    p.add_argument("--decode-lossless", action="store_true", help="also time a lossless 1M-splat .handful")
    p.add_argument("--compare", type=Path, help="another checkout whose reader the fresh-process rows also time "
                   "(e.g. the main branch's)")
    args = p.parse_args(argv)
    bg = None if args.background is None else ((1.0,) * 3 if args.background == "white" else (0.0,) * 3)
    for job in args.jobs:
        bench_job(job, args.finetune, bg)
    if args.decode_count:
        bench_decode(args.decode_count, args.decode_rounds, args.decode_lossless, args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
