"""``python -m engine reconstruct INPUT... -o OUT``: photos (or a video, or a folder) to a trained scene."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from .. import events as ev
from ..errors import Cancelled
from ..job import PRESETS, STAGES, JobOptions, run_job
from ..poses import FEATURE_CHOICES
from ..progress import ProgressBar
from ..stages.priors import AUTO, PART_NAMES, PRIORS, SPARSE_PHOTOS


def register(sub) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="reconstruct a Gaussian scene from photos, a folder or a video",
        description=(
            "Estimate cameras, train a Gaussian scene (with depth and repair priors for a few photos: --priors), "
            "evaluate it and split it into objects. Writes into OUT: scene.ply, groups.json, sparse/ "
            "(cameras and points as a COLMAP text model), report.json, previews/ and the working files of each "
            "stage. Running the same command again resumes after the last finished stage."
        ),
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="photos, folders of photos, or videos")
    p.add_argument("-o", "--out", type=Path, required=True, help="output (and working) folder")
    p.add_argument("--preset", choices=PRESETS + ("auto",), default="auto",
                   help="quality preset (default: auto, meaning preview on a CPU and standard on a GPU)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--max-images", type=int, default=None, help="use at most N photos (spread evenly)")
    p.add_argument("--iterations", type=int, default=None, help="training iterations (default: from the preset)")
    p.add_argument("--eval-every", type=int, default=8, metavar="K",
                   help="hold out every K-th photo for evaluation (0: none; default 8)")
    p.add_argument("--cameras", type=Path, default=None,
                   help="known cameras (COLMAP model folder/file or transforms.json): skips pose estimation")
    p.add_argument("--until", choices=STAGES, default=None, help="stop after this stage (e.g. poses)")
    p.add_argument("--background", type=_background, default="auto", metavar="auto|white|black|R,G,B",
                   help="background colour the scene is trained against and rendered on; auto (default): the "
                        "photos' own (transparent photos: white; a uniform border colour; else black)")
    p.add_argument("--max-long-edge", type=int, default=1600, help="working resolution for pose estimation")
    p.add_argument("--features", choices=FEATURE_CHOICES, default="auto", dest="pose_features",
                   help="features that place the cameras: auto (SIFT, and learned matching for 3-12 photos when "
                        "SIFT leaves photos out), sift, or a learned method alone with SIFT after it")
    p.add_argument("--refine-poses", action=argparse.BooleanOptionalAction, default=None,
                   help="learn small corrections to the camera poses while training (off by default)")
    p.add_argument("--compress", choices=("low", "medium", "high"), default=None,
                   help="end with a compression stage writing scene.handful at this quality")
    p.add_argument("--compress-finetune", type=int, default=JobOptions.compress_finetune, metavar="N",
                   help="with --compress: fine-tune the pruned scene N steps against the training photos as "
                        f"the file will store it (default {JobOptions.compress_finetune}; 0: none)")
    p.add_argument("--group", action=argparse.BooleanOptionalAction, default=True,
                   help="split the trained scene into objects (groups.json, a group_id per splat; on by default)")
    p.add_argument("--masks", choices=("regions", "sam"), default="regions",
                   help="the object grouping's 2D masks: image regions (offline, default) or Segment Anything")
    p.add_argument("--sam-model", type=Path, default=None, metavar="DIR",
                   help="a local Segment Anything checkpoint folder for --masks sam (never downloaded)")
    p.add_argument("--priors", choices=(AUTO,) + PRIORS, default=AUTO,
                   help="sparse-view priors: off (plain training); fast (depth maps from the photos, dense "
                        "starting points, depth and dropout terms in training); full (fast, then rounds of "
                        "repaired pseudo views); auto (default): fast on Preview and full on Standard/High for "
                        f"at most {SPARSE_PHOTOS} training photos, off for more")
    p.add_argument("--depth-model", type=Path, default=None, metavar="DIR",
                   help="a local monocular depth model folder (transformers format, e.g. Depth Anything) for "
                        "the depth prior; default: multi-view depth from the photos (never downloaded)")
    p.add_argument("--diffusion-model", type=Path, default=None, metavar="DIR",
                   help="a local diffusers img2img pipeline folder for the repair prior; default: a small "
                        "repair net trained on the capture itself (never downloaded)")
    p.add_argument("--without-prior", action="append", default=[], metavar="NAME", dest="without_priors",
                   choices=PART_NAMES, help=f"leave one part of the priors out (repeatable): {', '.join(PART_NAMES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _background(text: str):
    from ..errors import InputError
    from ..train.background import parse_background

    try:
        return parse_background(text)
    except InputError as e:  # argparse reports it as a usage error (exit code 2)
        raise argparse.ArgumentTypeError(str(e)) from None


def run(args) -> int:
    options = JobOptions(
        preset=args.preset,
        device=args.device,
        max_images=args.max_images,
        iterations=args.iterations,
        cameras=args.cameras,
        eval_every=args.eval_every,
        until=args.until,
        max_long_edge=args.max_long_edge,
        pose_features=args.pose_features,
        background=args.background,
        seed=args.seed,
        refine_poses=args.refine_poses,
        compress=args.compress,
        compress_finetune=args.compress_finetune,
        group=args.group,
        masks=args.masks,
        sam_model=args.sam_model,
        priors=args.priors,
        depth_model=args.depth_model,
        diffusion_model=args.diffusion_model,
        without_priors=tuple(args.without_priors),
    )
    bar = ProgressBar()
    sink = (lambda e: bar(e) if isinstance(e, ev.Warning) else None) if args.quiet else bar
    cancel = ev.CancelToken()
    try:
        with bar, ctrl_c_cancels(cancel, bar.message):
            result = run_job(args.inputs, args.out, options, emit=sink, cancel=cancel)
    except Cancelled as e:
        said = "" if e.message == "cancelled" else f": {e}"
        print(f"cancelled{said}; finished stages are kept in {Path(args.out).absolute()}", file=sys.stderr)
        return e.exit_code
    rep = result.report
    if rep:
        e = rep["eval"]
        print(
            f"{result.out_dir}: {rep['num_gaussians']:,} Gaussians from {rep['images_registered']} of "
            f"{rep['images_total']} photos; {'hold-out' if e['held_out'] else 'training'} views "
            f"PSNR {e['psnr']:.2f} dB, SSIM {e['ssim']:.3f}"
        )
        ran = rep.get("priors", {}).get("ran")
        if ran:
            print(f"priors ({rep['priors']['level']}): " + "; ".join(ran))
    else:
        print(f"{result.out_dir}: stopped after {result.stopped_after}")
    return 0


@contextlib.contextmanager
def ctrl_c_cancels(token: ev.CancelToken, say):
    """The first Ctrl+C cancels the job the way the app's Cancel does (training stops and keeps the scene
    it reached); a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def on_ctrl_c(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        say("stopping: the scene reached so far will be kept (Ctrl+C again to stop at once)")

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
