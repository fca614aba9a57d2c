"""What every stage of a job is: a name, the options it reads, the files it writes, and a typed result.

A stage's result holds the facts it found besides its files (which photos were used, how many steps ran,
which backend made the depth maps...). It is saved as JSON in the job's folder next to the files, so a
resumed job, a later stage and the report read it back without re-running anything.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..errors import StageError
from ..io.atomic import atomic_write_text

if TYPE_CHECKING:
    from .context import StageContext


def jsonable(value):
    """An option value as it is stored in job.json (paths as text, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    return value


@dataclasses.dataclass
class StageResult:
    """The base of every stage's result: a dataclass of JSON values saved as ``file`` in the job's folder."""

    file: ClassVar[str] = ""

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @classmethod
    def from_dict(cls, doc: dict):
        # keys a newer or older job wrote and this version does not know are left out, not an error
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})

    def save(self, folder: Path) -> Path:
        path = Path(folder) / self.file
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, folder: Path):
        path = Path(folder) / cls.file
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise StageError(f"{path.name} is missing: the stage that writes it has not run in this folder",
                             path=path, hint="run the job again without --until, or in a fresh folder") from None
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise StageError(f"cannot read {path.name}: {e}", path=path,
                             hint="delete the file (or the job folder) and run the job again") from e


class Stage:
    """One step of the job. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...]] = ()  # the JobOptions fields its output depends on
    outputs: ClassVar[tuple[str, ...]] = ()  # the files and folders it writes, relative to the job folder
    result_type: ClassVar[type[StageResult]] = StageResult
    replaces_scene: ClassVar[bool] = False  # writes a new scene.ply (not only adds to it, as group does)

    def enabled(self, ctx: "StageContext") -> bool:
        """Whether this job runs the stage at all (compress only with a quality, depth only with priors)."""
        return True

    def settings(self, ctx: "StageContext") -> dict:
        """Settings the stage reads that are not plain options (resolved ones, e.g. the priors plan)."""
        return {}

    def fingerprint(self, ctx: "StageContext") -> dict:
        """Everything the stage's output depends on: a change re-runs it and every stage after it."""
        return {**{k: jsonable(getattr(ctx.options, k)) for k in self.reads}, **self.settings(ctx)}

    def run(self, ctx: "StageContext") -> StageResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<stage {self.name}>"
