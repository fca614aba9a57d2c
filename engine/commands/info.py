"""``python -m engine info FILE``: what a splat file holds (format, count, SH degree, bounds, size)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..units import human_bytes


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="describe a splat file (.ply, .splat, .spz, .compressed.ply, .handful, .sog, .glb)")
    p.add_argument("file", type=Path, help="the splat file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def describe_file(path: str | Path) -> dict:
    from ..io import detect_format, load_scene

    path = Path(path)
    fmt = detect_format(path)
    scene = load_scene(path)
    size = path.stat().st_size
    lo, hi = scene.bounds()
    count = len(scene)
    return {
        "file": str(path),
        "format": fmt,
        "num_gaussians": count,
        "sh_degree": scene.sh_degree,
        "bounds_min": [float(v) for v in lo],
        "bounds_max": [float(v) for v in hi],
        "size_bytes": size,
        "bytes_per_gaussian": size / count if count else None,
        "has_groups": scene.group_ids is not None,
        "feature_dim": 0 if scene.features is None else int(scene.features.shape[1]),
    }


def format_text(info: dict) -> str:
    lo, hi = info["bounds_min"], info["bounds_max"]
    per = info["bytes_per_gaussian"]
    lines = [
        f"file:           {info['file']}",
        f"format:         {info['format']}",
        f"gaussians:      {info['num_gaussians']:,}",
        f"sh degree:      {info['sh_degree']}",
        f"bounds min:     {lo[0]:.6g} {lo[1]:.6g} {lo[2]:.6g}",
        f"bounds max:     {hi[0]:.6g} {hi[1]:.6g} {hi[2]:.6g}",
        f"size on disk:   {human_bytes(info['size_bytes'])} ({info['size_bytes']:,} bytes)",
        f"bytes/gaussian: {'n/a' if per is None else f'{per:.2f}'}",
    ]
    if info["has_groups"]:
        lines.append("groups:         yes")
    if info["feature_dim"]:
        lines.append(f"features:       {info['feature_dim']} per Gaussian")
    return "\n".join(lines)


def run(args) -> int:
    if not args.file.exists():
        raise InputError("no such file", args.file, "check the path")
    info = describe_file(args.file)
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0
