"""The job's stages, in the order they run. Each is a ``Stage`` (engine/stages/base.py): the options it
reads (its fingerprint), the files it writes and a typed ``StageResult`` saved next to them.

    ingest   images/, ingest.json
    poses    sparse/ (COLMAP text model), poses.json
    depth    depth/<photo>.npz, depth.json               (priors fast / full)
    init     init.ply, init.json
    train    scene.ply, trained.ply, train.json, refined/
    repair   pseudo/, repair.json; updates scene.ply      (priors full)
    evaluate report.json, previews/
    group    groups.json, group.json; group ids in scene.ply
    compress scene.handful, compress.json                 (with JobOptions.compress)
"""

from .base import Stage, StageResult, jsonable
from .compress import CompressResult, CompressStage
from .context import StageContext
from .depth import DepthResult, DepthStage
from .evaluate import EvaluateStage, Report
from .group import GroupResult, GroupStage
from .ingest import IngestResult, IngestStage
from .init import InitResult, InitStage
from .poses import PosesResult, PosesStage
from .repair import RepairResult, RepairStage
from .train import TrainResult, TrainStage

ALL_STAGES: tuple[Stage, ...] = (IngestStage(), PosesStage(), DepthStage(), InitStage(), TrainStage(),
                                 RepairStage(), EvaluateStage(), GroupStage(), CompressStage())
STAGE_NAMES = tuple(s.name for s in ALL_STAGES)
BY_NAME = {s.name: s for s in ALL_STAGES}

__all__ = [
    "Stage", "StageResult", "StageContext", "jsonable", "ALL_STAGES", "STAGE_NAMES", "BY_NAME",
    "IngestResult", "PosesResult", "DepthResult", "InitResult", "TrainResult", "RepairResult", "Report",
    "GroupResult", "CompressResult",
    "IngestStage", "PosesStage", "DepthStage", "InitStage", "TrainStage", "RepairStage", "EvaluateStage",
    "GroupStage", "CompressStage",
]
