"""What a stage sees of its job: the folder, the options, events and cancel, and the readers of the
earlier stages' files (cameras, images, the training split) that several stages share."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from .. import events as ev
from ..scene import Camera, CameraRig

if TYPE_CHECKING:
    from ..job import Job
    from .priors import PriorsPlan


class StageContext:
    def __init__(self, job: "Job", stage: str):
        self.job, self.stage = job, stage

    # ------------------------------------------------------------------ the job's parts
    @property
    def out(self) -> Path:
        return self.job.out

    @property
    def options(self):
        return self.job.options

    @property
    def inputs(self) -> list[Path]:
        return self.job.inputs

    @property
    def cancel(self) -> ev.CancelToken:
        return self.job.cancel

    @property
    def device(self) -> str:
        return self.job.device

    @property
    def background(self):
        return self.job.background

    @property
    def priors(self) -> "PriorsPlan":
        return self.job.priors

    def emit(self, event: ev.Event) -> None:
        self.job.emit(event)

    def progress(self, done, total, message="") -> None:
        self.job.emit(ev.Progress(self.stage, done, total, message))

    def warn(self, message: str, path=None) -> None:
        self.job.emit(ev.Warning(message, None if path is None else str(path)))

    def result(self, stage: str):
        """The saved result of ``stage`` when it finished with today's settings in this folder, else None."""
        return self.job.result_of(stage)

    # ------------------------------------------------------------------ earlier stages' files
    def ingested(self):
        from .ingest import IngestResult

        return IngestResult.load(self.out)

    def read_rig(self) -> CameraRig:
        from ..io import colmap

        rig = colmap.read(self.out / "sparse")
        for cam in rig.cameras:
            if cam.image_path is None or not Path(cam.image_path).is_file():
                cam.image_path = self.out / "images" / cam.name
        return rig

    def rig_after_training(self) -> CameraRig:
        """The estimated cameras, with the refined poses of the training cameras where training refined them."""
        rig = self.read_rig()
        if (self.out / "refined" / "images.txt").is_file():
            from ..io import colmap

            refined = colmap.read(self.out / "refined").by_name()
            rig.cameras = [dataclasses.replace(c, R=refined[c.name].R, t=refined[c.name].t) if c.name in refined
                           else c for c in rig.cameras]
        return rig

    def min_views_to_hold_out(self) -> int:
        return max(2 * self.options.eval_every, 8)

    def split_views(self, cams: list) -> tuple[list, list]:
        """(training, held-out): every eval_every-th photo is held out once there are enough photos."""
        k = self.options.eval_every
        if not k or len(cams) < self.min_views_to_hold_out():
            return list(cams), []  # too few photos to hold any out: evaluate on the training views
        test = [c for i, c in enumerate(cams) if i % k == 0]
        train = [c for i, c in enumerate(cams) if i % k != 0]
        return train, test

    def load_images(self, cams: list[Camera]):
        """Each camera's working photo on the job's background, at the camera's size."""
        from ..ingest import load_image

        out = []
        for cam in cams:
            img = load_image(cam.image_path, background=self.background.rgb)
            if img.shape[1] != cam.width or img.shape[0] != cam.height:
                import cv2

                img = cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
            out.append(img)
        return out

    def train_setup(self, refined: bool = False):
        """(rig, training cameras, held-out cameras, config) at the preset's training resolution;
        ``refined``: with the poses training refined."""
        from ..train import preset

        opts = self.options
        rig = self.rig_after_training() if refined else self.read_rig()
        train_cams, test_cams = self.split_views(rig.cameras)
        cfg = preset(opts.preset, num_images=len(train_cams), device=self.device)
        if opts.iterations is not None:
            cfg = dataclasses.replace(cfg, iterations=int(opts.iterations))
        if opts.refine_poses is not None:
            cfg = dataclasses.replace(cfg, pose_refinement=bool(opts.refine_poses))
        scale = train_scale(cfg, rig.cameras)
        if scale != 1.0:
            train_cams = [c.scaled(scale) for c in train_cams]
            test_cams = [c.scaled(scale) for c in test_cams]
        return rig, train_cams, test_cams, cfg

    def snapshot_forwarder(self, cameras):
        """An event sink that gives the training's snapshots the job's cameras (for the viewer)."""
        def forward(event):
            if isinstance(event, ev.Snapshot) and event.cameras is None:
                event = ev.Snapshot(event.scene, event.step, cameras)
            self.emit(event)

        return forward


def train_scale(cfg, cameras: list[Camera]) -> float:
    """Downscale factor so the long image edge fits the preset's training resolution."""
    max_edge = getattr(cfg, "max_image_side", None)
    if not max_edge or not cameras:
        return 1.0
    long_edge = max(max(c.width, c.height) for c in cameras)
    return min(1.0, float(max_edge) / long_edge)
