"""group: the trained scene split into objects: groups.json and a group_id per Gaussian in scene.ply."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .base import Stage, StageResult


@dataclass
class GroupResult(StageResult):
    file = "group.json"
    objects: int = 0
    ungrouped: int = 0
    mask_source: str | None = None
    views: int = 0
    off: bool = False


class GroupStage(Stage):
    name = "group"
    reads = ("group", "masks", "sam_model")
    outputs = ("groups.json", "group.json", "scene.ply")
    result_type = GroupResult

    def run(self, ctx) -> GroupResult:
        from ..grouping import GROUPS_FILE, group_scene, make_mask_source, write_groups
        from ..io import load_scene, save_scene

        scene_path, groups_path = ctx.out / "scene.ply", ctx.out / GROUPS_FILE
        scene = load_scene(scene_path)
        if not ctx.options.group:
            groups_path.unlink(missing_ok=True)
            if scene.group_ids is not None:  # ids from an earlier run would no longer match a groups.json
                save_scene(dataclasses.replace(scene, group_ids=None), scene_path)
            ctx.progress(1, 1, "grouping is off")
            return GroupResult(off=True)
        _, train_cams, _, _ = ctx.train_setup(refined=True)
        source = make_mask_source(ctx.options.masks, ctx.options.sam_model, warn=ctx.warn)
        # a cancel raises between views, before anything is written: scene.ply stays as training left it
        result = group_scene(scene.to(ctx.device), train_cams, None, source=source, emit=ctx.emit, cancel=ctx.cancel)
        save_scene(dataclasses.replace(scene, group_ids=result.group_ids), scene_path)
        write_groups(groups_path, result.document)
        return GroupResult(objects=result.num_groups, ungrouped=result.document["ungrouped"],
                           mask_source=result.document["mask_source"], views=len(result.views))
