"""Edit model: time and undo memory per command on scenes of 100k / 1M splats (SH degree 3).

Run:  .venv/bin/python benchmarks/edit_bench.py [--sizes 100000 1000000]

Each row applies one command to a ``SceneDocument`` of four objects, then undoes and redoes it. Columns:
- apply ms / undo ms / redo ms: the document's own work (no viewer), as CPU time of this process
  (``time.process_time``: the machine is shared, and wall times there mostly measure other people's work);
- kept: bytes the history holds for that step (the rows it touched, old and new);
- baseline: a full snapshot of the scene (``GaussianScene.clone()``), what undo by snapshots would copy and
  keep per step, measured in the same process; ms x and bytes x = snapshot / this command.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks._machine import print_table  # noqa: E402
from engine.camera_projection import project_points  # noqa: E402
from engine.edit import Delete, FloaterOptions, RemoveFloaters, SceneDocument, Select, Transform  # noqa: E402
from engine.edit.transform import rotation_from_euler_degrees  # noqa: E402
from tests.scene_objects import CLICK_POINTS, front_camera, objects_scene  # noqa: E402


def _kept_bytes(change) -> int:
    total = sum(p.old.nbytes + p.new.nbytes + (0 if p.index is None else p.index.nbytes) for p in change.patches)
    if change.appended is not None:
        total += sum(v.nbytes for v in change.appended.values())
    return total


def _ms(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return (time.process_time() - t0) * 1000, out


def run(size: int) -> list[list]:
    doc = SceneDocument(objects_scene(per_object=size // 4, sh_degree=3))
    snapshot_ms, snap = _ms(lambda: doc.scene().clone())
    snapshot_bytes = snap.nbytes() + 3 * doc.count  # plus the three masks
    cam = front_camera(1280, 720)
    uv, _ = project_points(np.asarray(CLICK_POINTS[2], dtype=np.float64)[None], cam)
    commands = [
        ("pick object", lambda d: Select.pick(cam, *uv[0])),
        ("rect select", lambda d: Select.rect(cam, (0, 0, 640, 720))),
        ("select object", lambda d: Select.group(3)),
        ("rotate object", lambda d: Transform(rotation=rotation_from_euler_degrees([0, 30, 0]).tolist(),
                                              pivot=d.selection_centre().tolist())),
        ("delete object", lambda d: Delete()),
        ("floater cleanup", lambda d: RemoveFloaters(FloaterOptions(isolation=1.5, max_opacity=0.5).to_json())),
    ]
    rows = []
    for name, make in commands:
        command = make(doc)
        apply_ms, result = _ms(lambda: doc.apply(command))
        if not result.changed:
            rows.append([size, name, "no-op: " + result.message] + [None] * 6)
            continue
        kept = _kept_bytes(doc._entries[doc.position - 1].change)
        undo_ms, _ = _ms(doc.undo)
        redo_ms, _ = _ms(doc.redo)
        rows.append([size, name, result.count, round(apply_ms, 1), round(undo_ms, 2), round(redo_ms, 2),
                     f"{kept / 1e6:.2f} MB", round(snapshot_ms / max(undo_ms, 1e-3), 1),
                     round(snapshot_bytes / max(kept, 1), 1)])
    rows.append([size, "baseline: snapshot", doc.count, round(snapshot_ms, 1), None, None,
                 f"{snapshot_bytes / 1e6:.1f} MB", 1.0, 1.0])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        rows += run(size)
    print_table("edit model: per-command time and undo memory",
                ["splats", "command", "splats touched", "apply ms", "undo ms", "redo ms", "kept",
                 "snapshot/undo ms x", "snapshot/kept bytes x"], rows)


if __name__ == "__main__":
    main()
