"""``python -m engine group SCENE --cameras CAMS --images DIR -o OUT``: split a scene into objects.

Writes OUT/scene.ply (the scene with a ``group_id`` per splat) and OUT/groups.json (the groups' ids,
names, sizes and display colours).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import events as ev
from ..errors import InputError
from ..progress import ProgressBar

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".heic", ".avif")


def register(sub) -> None:
    p = sub.add_parser(
        "group",
        help="split a scene into objects (a group id per splat) using its photos and cameras",
        description="Cut each photo into regions, lift them onto the splats and associate them across views: "
        "every splat gets an object id. Writes OUT/scene.ply (with a group_id per splat) and OUT/groups.json.",
    )
    p.add_argument("scene", type=Path, help="the scene to group (.ply, .splat, .spz, .compressed.ply)")
    p.add_argument("--cameras", type=Path, default=None,
                   help="the cameras of the photos (COLMAP model folder/file or transforms.json)")
    p.add_argument("--images", type=Path, default=None,
                   help="the photos' folder (default: where the camera file says they are)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--masks", choices=("regions", "sam"), default="regions",
                   help="2D masks: image regions (offline, default) or Segment Anything (needs --sam-model)")
    p.add_argument("--sam-model", type=Path, default=None, metavar="DIR",
                   help="a local Segment Anything checkpoint folder (transformers layout); never downloaded")
    p.add_argument("--max-views", type=int, default=12, help="photos used, spread over the set (default 12)")
    p.add_argument("--max-side", type=int, default=320, help="long side the photos are reduced to (default 320)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def attach_photos(cameras, folder: Path):
    """Each camera with ``image_path`` set to its photo in ``folder`` (matched by name, then by stem)."""
    if not folder.is_dir():
        raise InputError("the photos' folder does not exist", path=folder)
    by_stem = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(p.stem, p)
    out = []
    for cam in cameras:
        path = folder / cam.name
        if not path.is_file():
            path = by_stem.get(Path(cam.name).stem)
        if path is None:
            raise InputError(f"no photo for camera {cam.name!r} in the folder", path=folder,
                             hint="the photos' file names must match the image names in the camera file")
        out.append(dataclasses.replace(cam, image_path=path))
    return out


def run(args) -> int:
    from ..grouping import GROUPS_FILE, group_scene, make_mask_source, write_groups
    from ..io import load_cameras, load_scene, save_scene

    if args.cameras is None:
        raise InputError("grouping needs the cameras the photos were taken with", path=args.scene,
                         hint="pass --cameras (a COLMAP model or transforms.json) and --images")
    scene = load_scene(args.scene)
    cameras = load_cameras(args.cameras)
    if args.images is not None:
        cameras = attach_photos(cameras, args.images)
    missing = [c.name for c in cameras if c.image_path is None or not Path(c.image_path).is_file()]
    if missing:
        raise InputError(f"{len(missing)} cameras have no photo (first: {missing[0]!r})", path=args.cameras,
                         hint="pass the photos' folder with --images")
    bar = ProgressBar()
    sink = (lambda e: bar(e) if isinstance(e, ev.Warning) else None) if args.quiet else bar
    with bar:
        source = make_mask_source(args.masks, args.sam_model, warn=lambda msg: sink(ev.Warning(msg)))
        result = group_scene(scene, cameras, None, source=source, max_views=args.max_views,
                             max_side=args.max_side, emit=sink)
    args.out.mkdir(parents=True, exist_ok=True)
    save_scene(dataclasses.replace(scene, group_ids=result.group_ids), args.out / "scene.ply")
    write_groups(args.out / GROUPS_FILE, result.document)
    doc = result.document
    print(f"{args.out}: {len(doc['groups'])} objects over {len(scene):,} splats ({doc['ungrouped']:,} ungrouped) "
          f"from {doc['views']} views in {result.seconds:.1f} s")
    return 0
