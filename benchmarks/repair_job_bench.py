"""The repair stage's settings, old and new, from one trained job folder: held-out PSNR and seconds.

    HANDFUL_DATASETS=/work/shared/datasets .venv/bin/python benchmarks/repair_job_bench.py WORK/fern \\
        [--preset preview] [--rounds 2]

WORK is a ``benchmarks/sparse_bench.py --work WORK --levels full`` folder (its ``fern/job`` trained with the
priors, ``fern/held_out`` and ``fern/cameras``). Every row starts from the same trained scene (trained.ply,
train_state.pt) and the job's own cameras, photos, background and preset config:

- ``no repair``: the trained scene;
- ``restart`` (the repair stage before continue-training): the leave-one-out scenes of half the training's
  steps, and each round a fresh run of a quarter of the training's steps (every SH band, full resolution,
  no densification, a tenth of the starting position rate decaying to the final one, fresh Adam moments);
- ``continue``: the same net and step counts, the rounds continuing the trained run (train_state.pt);
- ``continue, cheaper rounds``: the same net, rounds of an eighth of the steps, pseudo views at half size;
- ``new stage settings``: the leave-one-out scenes of a quarter of the steps (a net fitted on them), then
  the cheaper rounds: what the repair stage does now.

Net fits are timed apart from the rounds. Times are on a shared machine: compare them within one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import print_table  # noqa: E402

from engine.ingest import load_image  # noqa: E402
from engine.io import colmap, load_scene  # noqa: E402
from engine.job import Job, JobOptions  # noqa: E402
from engine.metrics import evaluate  # noqa: E402
from engine.priors import repair_rounds as rr  # noqa: E402
from engine.priors.repair_net import SceneRepairNet  # noqa: E402
from engine.stages import repair as repair_stage  # noqa: E402
from engine.stages.context import StageContext  # noqa: E402
from engine.train.loop import TrainState  # noqa: E402


def restart_config(config, steps: int):
    """The rounds' settings before continue-training: a fresh run of ``steps`` on top of the trained scene."""
    return config.with_(iterations=steps, sh_interval=0, start_resolution=1.0, strategy="none",
                        lr_means=config.lr_means * 0.1,
                        lr_means_final=min(config.lr_means_final, config.lr_means * 0.1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path, help="a sparse_bench case folder, e.g. WORK/fern")
    ap.add_argument("--preset", default="preview")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    case = args.work
    job = Job([case / "photos"], case / "job", JobOptions(cameras=case / "cameras", priors="full",
                                                         preset=args.preset, eval_every=0, group=False, seed=0))
    ctx = StageContext(job, "repair")
    rig, cams, _, cfg = ctx.train_setup(refined=True)
    images = ctx.load_images(cams)
    bg = ctx.background.rgb
    extent = rig.scene_extent()
    out = ctx.out
    trained = load_scene(out / "trained.ply")
    init = load_scene(out / "init.ply")
    gt = colmap.read(case / "cameras").by_name()
    held = sorted((case / "held_out").glob("*"))
    test_cams = [gt[p.name].resized(*load_image(p).shape[1::-1]) for p in held]
    test_images = [load_image(p, background=bg) for p in held]
    n = cfg.iterations
    print(f"{case}: {len(cams)} photos at {cams[0].width}x{cams[0].height}, preset {args.preset} ({n} steps), "
          f"{len(trained)} splats, {len(held)} held-out views, {args.rounds} rounds")

    def score(scene):
        return evaluate(scene, test_cams, test_images, background=bg)

    rows = []

    def row(label, scene, fit_s, rounds_s):
        m = score(scene)
        rows.append([label, round(m["psnr"], 2), round(m["ssim"], 3), fit_s, rounds_s])
        print("row:", rows[-1], flush=True)

    def fitted(loo_steps: int):
        net = SceneRepairNet()
        t = time.perf_counter()
        rr._fit_prior(net, init, cams, images, cfg, loo_steps, bg, 0, rr.null_sink, None)
        return net, round(time.perf_counter() - t, 1)

    def rounds(net, *, steps, config, state=None, resolution=1.0, restart=False):
        t = time.perf_counter()
        scene = trained
        with tempfile.TemporaryDirectory() as tmp:
            if restart:  # each round a fresh run, as the stage did before continue-training
                for k in range(args.rounds):
                    fresh = TrainState.fresh(scene, config, extent, step=0)
                    scene = rr.repair_rounds(scene, cams, images, net, rounds=1, steps_per_round=steps,
                                             config=config, background=bg, out_dir=tmp, state=fresh,
                                             pseudo_count=8, seed=k, scene_extent=extent,
                                             pseudo_resolution=resolution).scene
            else:
                scene = rr.repair_rounds(scene, cams, images, net, rounds=args.rounds, steps_per_round=steps,
                                         config=config, background=bg, out_dir=tmp, state=state, pseudo_count=8,
                                         scene_extent=extent, pseudo_resolution=resolution).scene
        return scene, round(time.perf_counter() - t, 1)

    def state():
        return TrainState.load(out / "train_state.pt", cfg, extent)

    row("no repair", trained, 0, 0)
    old_net, old_fit = fitted(max(1, n // 2))
    scene, s = rounds(old_net, steps=max(50, n // 4), config=restart_config(cfg, max(50, n // 4)), restart=True)
    row(f"restart: LOO {n // 2}, rounds {max(50, n // 4)} (before)", scene, old_fit, s)
    scene, s = rounds(old_net, steps=max(50, n // 4), config=cfg, state=state())
    row(f"continue: same net, rounds {max(50, n // 4)}", scene, 0, s)
    scene, s = rounds(old_net, steps=repair_stage.repair_steps(n), config=cfg, state=state(), resolution=0.5)
    row(f"continue: same net, rounds {repair_stage.repair_steps(n)}, pseudo at 1/2", scene, 0, s)
    new_net, new_fit = fitted(repair_stage.leave_one_out_steps(n))
    scene, s = rounds(new_net, steps=repair_stage.repair_steps(n), config=cfg, state=state(), resolution=0.5)
    row(f"new: LOO {repair_stage.leave_one_out_steps(n)}, rounds {repair_stage.repair_steps(n)}, pseudo at 1/2",
        scene, new_fit, s)
    print(f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}")
    print_table(f"repair settings from one trained scene ({case.name}, preset {args.preset})",
                ["variant", "held-out PSNR", "SSIM", "net fit s (LOO + net)", "rounds s"], rows)


if __name__ == "__main__":
    main()
