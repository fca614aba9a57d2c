"""``python -m engine compress SCENE OUT [--cameras CAMS [--images DIR]] [--quality low|medium|high]``.

Prunes by each splat's contribution to the cameras' views (without cameras: by opacity x area),
cuts SH bands that do not pay, builds codebooks and writes a compressed ``.handful`` file. With
photos it can fine-tune the pruned scene first (``--finetune N``) and reports the PSNR kept. The size
and the quality are measured in memory before the file is written (atomically).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InputError

STAGE = "compress"


def register(subparsers) -> None:
    p = subparsers.add_parser("compress", help="compress a splat scene into a small .handful file")
    p.add_argument("scene", type=Path, help="the scene to compress (any format Handful reads)")
    p.add_argument("output", type=Path, help="the .handful file to write")
    p.add_argument("--quality", choices=("low", "medium", "high"), default="medium",
                   help="size against quality (default: medium)")
    p.add_argument("--cameras", type=Path, help="the training cameras (COLMAP model or transforms.json): "
                   "pruning measures each splat's contribution to their views")
    p.add_argument("--images", type=Path, help="the photos of those cameras (a folder; names as in the camera file)")
    p.add_argument("--finetune", type=int, default=0, metavar="N",
                   help="with --images: optimise the pruned scene N steps against the photos first")
    p.add_argument("--background", choices=("black", "white"), default="black",
                   help="background the scene was trained against")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def photos_for(cameras, folder: Path) -> list:
    """One RGB uint8 image per camera from ``folder`` (by the camera's name), at the camera's size."""
    import cv2

    from ..ingest.images import load_image

    if not folder.is_dir():
        raise InputError("is not a folder of photos", folder, "pass the folder the camera file's photos are in")
    out = []
    for cam in cameras:
        name = Path(cam.name).name if cam.name else ""
        candidates = [folder / cam.name, folder / name] + sorted(folder.glob(Path(name).stem + ".*"))
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            raise InputError(f"no photo for camera {cam.name!r}", folder, "check --images")
        img = load_image(path)
        if img.shape[:2] != (cam.height, cam.width):
            img = cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
        out.append(img)
    return out


def run(args) -> int:
    from ..compress.pipeline import compress
    from ..io import load_cameras, load_scene
    from ..io.atomic import atomic_write_bytes
    from ..progress import ProgressBar

    if args.output.suffix.lower() != ".handful":
        raise InputError("the output of compress is a .handful file", args.output,
                         "name it e.g. scene.handful; use convert for other formats")
    if args.images is not None and args.cameras is None:
        raise InputError("--images needs --cameras", args.images, "pass the camera file of those photos")
    if args.finetune and args.images is None:
        raise InputError("--finetune needs --images", hint="pass the photos to fine-tune against")
    scene = load_scene(args.scene)
    cameras = load_cameras(args.cameras) if args.cameras is not None else None
    images = photos_for(cameras, args.images) if args.images is not None else None
    background = (1.0, 1.0, 1.0) if args.background == "white" else (0.0, 0.0, 0.0)
    with ProgressBar(stream=sys.stderr) as bar:
        data, report, _ = compress(scene, args.quality, cameras=cameras, images=images,
                                   finetune_steps=args.finetune, background=background,
                                   on_event=None if args.quiet else bar)
    try:
        atomic_write_bytes(args.output, data)
    except PermissionError as e:
        raise InputError(f"cannot write the file ({e.strerror})", args.output, "choose another folder") from e
    if args.json:
        print(json.dumps({"file": str(args.output), **report.as_dict()}, indent=2))
        return 0
    lines = [
        f"wrote {args.output}: {report.bytes:,} bytes, {report.bytes_per_input_splat:.2f} bytes per splat, "
        f"{report.ratio_to_ply:.1f}x smaller than .ply",
        f"kept {report.kept_gaussians:,} of {report.input_gaussians:,} splats (importance from {report.importance_from})",
    ]
    if report.psnr_vs_uncompressed is not None:
        lines.append(f"renders vs the uncompressed scene: {report.psnr_vs_uncompressed:.2f} dB PSNR")
    if report.psnr_photos_after is not None:
        lines.append(f"PSNR against the photos: {report.psnr_photos_before:.2f} dB before, "
                     f"{report.psnr_photos_after:.2f} dB after ({report.psnr_photos_after - report.psnr_photos_before:+.2f})")
    print("\n".join(lines))
    return 0
