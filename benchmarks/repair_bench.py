"""Generative repair of unseen views: does training on repaired pseudo views help the held-out views?

    HANDFUL_DATASETS=../shared/datasets .venv/bin/python benchmarks/repair_bench.py [--side 128]
        [--iterations 300] [--rounds 2] [--steps-per-round 150] [--pseudo 6] [--priors net,esrgan]

llff_fern, LLFF protocol: every 8th photo held out, 3 training photos spread evenly over the rest, the
dataset's COLMAP cameras as pinhole, photos at ``--side`` px (longest side). One scene is trained from
random points (the Preview preset's settings), then each variant continues from that same scene:

- ``no repair``: the trained scene as it is;
- ``fine-tune only``: the same rounds and steps with the pseudo-view loss at weight 0 (the control: what
  the extra training steps alone do);
- ``renders as targets``: the pseudo views' own renders as targets (what the loss does without a prior);
- one row per prior (``net``: SceneRepairNet fitted on leave-one-out pairs; ``esrgan``: Real-ESRGAN x4plus).

Also printed, per prior: the held-out renders of the trained scene before and after ``prior.repair``
against the held-out photos (does the prior itself move an unseen view toward the photo?).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import print_table  # noqa: E402

from engine.io import colmap  # noqa: E402
from engine.metrics import evaluate, psnr, ssim  # noqa: E402
from engine.priors.image_prior import ImagePrior  # noqa: E402
from engine.priors.repair_rounds import repair_rounds  # noqa: E402
from engine.render import render  # noqa: E402
from engine.train import preset, random_init, train  # noqa: E402


class RendersAsTargets(ImagePrior):
    name = "renders as targets (no prior)"

    def repair(self, images, cameras=None):
        return [np.asarray(im, dtype=np.float32) for im in images]


def fern_sparse(side: int, views: int = 3):
    root = Path(os.environ["HANDFUL_DATASETS"]) / "llff_fern"
    rig = colmap.read(root / "gt_colmap_text", image_dir=root / "images")
    cams = sorted(rig.cameras, key=lambda c: c.name)
    held = [i for i in range(len(cams)) if i % 8 == 0]
    rest = [i for i in range(len(cams)) if i % 8 != 0]
    chosen = [rest[int(round(k))] for k in np.linspace(0, len(rest) - 1, views)]

    def load(i):
        cam = cams[i]
        # pinhole, as the LLFF protocol's renderers use them
        cam = replace(cam.scaled(side / max(cam.width, cam.height)), distortion=None)
        bgr = cv2.imread(str(root / "images" / cams[i].name))
        image = cv2.resize(bgr[:, :, ::-1].astype(np.float32) / 255.0, (cam.width, cam.height),
                           interpolation=cv2.INTER_AREA)
        return cam, np.ascontiguousarray(image)

    train_views = [load(i) for i in chosen]
    test_views = [load(i) for i in held]
    return ([c for c, _ in train_views], [im for _, im in train_views],
            [c for c, _ in test_views], [im for _, im in test_views], chosen, held)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps-per-round", type=int, default=150)
    ap.add_argument("--pseudo", type=int, default=6)
    ap.add_argument("--weight", type=float, default=0.2)
    ap.add_argument("--net-steps", type=int, default=300)
    ap.add_argument("--priors", default="net,esrgan")
    args = ap.parse_args()
    torch.manual_seed(0)

    train_cams, train_imgs, test_cams, test_imgs, chosen, held = fern_sparse(args.side)
    config = preset("preview", len(train_cams), "cpu").with_(iterations=args.iterations, max_image_side=None,
                                                            metrics_every=50, backend="cpu")
    init = random_init(train_cams, int(config.extra["init_points"]), sh_degree=config.sh_degree, seed=0)
    bg = (0.0, 0.0, 0.0)
    print(f"llff_fern: training photos {chosen}, held out {held}, {train_cams[0].width}x{train_cams[0].height}, "
          f"{config.iterations} steps, {len(init)} initial points; rounds {args.rounds} x {args.steps_per_round} "
          f"steps, {args.pseudo} pseudo views per round, weight {args.weight}")

    t0 = time.perf_counter()
    base = train(init, train_cams, train_imgs, config, background=bg).scene
    base_seconds = time.perf_counter() - t0

    def score(scene):
        held_out = evaluate(scene, test_cams, test_imgs, background=bg, backend="cpu")
        trained = evaluate(scene, train_cams, train_imgs, background=bg, backend="cpu")
        return held_out["psnr"], held_out["ssim"], trained["psnr"]

    rows = [["no repair", *score(base), base_seconds, ""]]
    print("row:", rows[-1], flush=True)
    prior_rows = []
    with torch.no_grad():
        held_renders = [render(base, c, background=bg, backend="cpu").rgb.clamp(0, 1).numpy() for c in test_cams]

    def variant(label, prior, weight, **kw):
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            result = repair_rounds(base, train_cams, train_imgs, prior, rounds=args.rounds,
                                   steps_per_round=args.steps_per_round, config=config, background=bg, out_dir=out,
                                   pseudo_count=args.pseudo, weight=weight, **kw)
            seconds = time.perf_counter() - t
        held_psnr, held_ssim, train_psnr = score(result.scene)
        rows.append([label, held_psnr, held_ssim, train_psnr, seconds, held_psnr - rows[1][1] if len(rows) > 1 else 0.0])
        print("row:", rows[-1], flush=True)  # a long run on a busy machine keeps what it measured
        return result

    def prior_check(label, prior):
        t = time.perf_counter()
        fixed = prior.repair(held_renders, test_cams)
        seconds = time.perf_counter() - t
        before = np.mean([psnr(r, im) for r, im in zip(held_renders, test_imgs)])
        after = np.mean([psnr(f, im) for f, im in zip(fixed, test_imgs)])
        s_before = np.mean([ssim(r, im) for r, im in zip(held_renders, test_imgs)])
        s_after = np.mean([ssim(f, im) for f, im in zip(fixed, test_imgs)])
        prior_rows.append([label, before, after, s_before, s_after, seconds / len(fixed)])
        print("prior:", prior_rows[-1], flush=True)

    variant("fine-tune only (weight 0)", RendersAsTargets(), 0.0)
    variant("renders as targets", RendersAsTargets(), args.weight)
    for name in [p for p in args.priors.split(",") if p]:
        if name == "net":
            from engine.priors.repair_net import SceneRepairNet

            prior = SceneRepairNet(steps=args.net_steps)
            t = time.perf_counter()
            variant("SceneRepairNet (fit included)", prior, args.weight, init=init)
            prior_check("SceneRepairNet", prior)
            print(f"SceneRepairNet: leave-one-out fit and {args.rounds} rounds in {time.perf_counter() - t:.0f} s")
        elif name == "esrgan":
            from engine.priors.realesrgan import RealEsrganEnhancer

            prior = RealEsrganEnhancer("realesrgan-x4plus")
            prior_check("Real-ESRGAN x4plus", prior)
            variant("Real-ESRGAN x4plus", prior, args.weight)
        else:
            raise SystemExit(f"unknown prior {name!r}: use net, esrgan")

    print_table("repair rounds on llff_fern, 3 views: held-out views (same trained scene for every row)",
                ["variant", "held-out PSNR", "held-out SSIM", "train PSNR", "seconds", "dPSNR vs fine-tune only"],
                rows)
    print_table("the prior alone on held-out renders of the trained scene (PSNR/SSIM against the held-out photos)",
                ["prior", "PSNR render", "PSNR repaired", "SSIM render", "SSIM repaired", "s per image"],
                prior_rows)


if __name__ == "__main__":
    main()
