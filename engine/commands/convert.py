"""``python -m engine convert IN OUT``: convert between splat formats (.ply .splat .spz .compressed.ply
.handful .sog .glb).

The output format comes from ``--format`` or OUT's extension and is checked before anything is read;
the write is atomic, so a failed conversion never leaves a partial OUT behind.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import InputError
from ..io.detect import EXTENSIONS as FORMAT_EXTENSIONS
from ..events import Progress, Warning

# Below this size a conversion takes well under a second and a bar would only flicker.
PROGRESS_MIN_BYTES = 32 << 20
STAGE = "convert"


def register(subparsers) -> None:
    p = subparsers.add_parser("convert", help="convert a splat file to another format")
    p.add_argument("input", type=Path, help="the file to read (format detected from its content)")
    p.add_argument("output", type=Path, help="the file to write (format from its extension or --format)")
    p.add_argument("--format", choices=tuple(FORMAT_EXTENSIONS), help="output format")
    p.add_argument("--spz-version", type=int, choices=(2, 3, 4), metavar="V",
                   help="for .spz output: the file version (default 4; 2 and 3 for readers that predate 4)")
    p.add_argument("--sh-degree", type=int, choices=range(4), metavar="D",
                   help="keep spherical harmonics up to degree D (0-3): higher bands are dropped; a file "
                        "with fewer bands keeps its own degree")
    p.add_argument("--drop-invalid", action="store_true", help="drop splats with NaN/inf values instead of failing")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="show a progress bar (auto: for inputs over 32 MiB)")
    p.set_defaults(func=run)


def convert(input_path: Path, output_path: Path, format: str | None = None, sh_degree: int | None = None,
            drop_invalid: bool = False, on_event=None, spz_version: int | None = None) -> dict:
    """Read, optionally reduce SH, write. Emits ``Progress`` events (3 steps) to ``on_event``."""
    from ..io import detect_format, load_scene, resolve_save_format, save_scene
    from ..io.atomic import cannot_write

    emit = on_event or (lambda _event: None)
    input_path, output_path = Path(input_path), Path(output_path)
    if output_path.is_dir():
        raise InputError("the output is a folder", output_path, "give a file name, e.g. scene.ply")
    out_format = resolve_save_format(output_path, format)
    write_options = {}
    if spz_version is not None:
        if out_format != "spz":
            raise InputError(f"--spz-version is for .spz output, and this output is {out_format}", output_path,
                             "leave --spz-version out, or write an .spz file")
        write_options["version"] = spz_version
    in_format = detect_format(input_path)

    emit(Progress(STAGE, 0, 3, f"reading {input_path.name}"))
    options = {"drop_invalid": True} if drop_invalid else {}
    scene = load_scene(input_path, **options)
    emit(Progress(STAGE, 1, 3, f"{len(scene):,} splats read"))
    if sh_degree is not None and sh_degree > scene.sh_degree:
        # Padding with zero bands would only make the file bigger: the colours stay the same.
        emit(Warning(f"the file has SH degree {scene.sh_degree}; --sh-degree only drops bands, so degree "
                     f"{scene.sh_degree} is kept", str(input_path)))
    elif sh_degree is not None:
        scene = scene.with_sh_degree(sh_degree)
    if out_format == "splat" and scene.sh_degree > 0:
        emit(Warning(".splat stores only the base colour: view-dependent colour (SH) is dropped",
                     str(output_path)))
    emit(Progress(STAGE, 2, 3, f"writing {output_path.name}"))
    try:
        save_scene(scene, output_path, format=out_format, **write_options)
    except OSError as e:  # read-only, no permission, disk full: the atomic write left nothing behind
        raise cannot_write(e, output_path, "choose another folder") from e
    emit(Progress(STAGE, 3, 3, "done"))
    return {"input_format": in_format, "output_format": out_format, "num_gaussians": len(scene),
            "sh_degree": 0 if out_format == "splat" else scene.sh_degree, "output_bytes": output_path.stat().st_size}


def run(args) -> int:
    from ..progress import ProgressBar

    if not args.input.exists():
        raise InputError("no such file", args.input, "check the path")
    show = args.progress == "always" or (
        args.progress == "auto" and args.input.is_file() and args.input.stat().st_size >= PROGRESS_MIN_BYTES
    )
    with ProgressBar(stream=sys.stderr) as bar:
        def on_event(event):
            if show or isinstance(event, Warning):
                bar(event)

        result = convert(args.input, args.output, args.format, args.sh_degree, args.drop_invalid, on_event,
                         spz_version=args.spz_version)
    print(
        f"wrote {args.output} ({result['output_format']}, {result['num_gaussians']:,} Gaussians, "
        f"SH degree {result['sh_degree']}, {result['output_bytes']:,} bytes)"
    )
    return 0
