"""glTF 2.0 with the Khronos ``KHR_gaussian_splatting`` extension (binary .glb; .gltf with the buffer
embedded as a data URI).

After the ratified extension's description: one mesh primitive in POINTS mode whose attributes are
POSITION (VEC3 float), ``KHR_gaussian_splatting:ROTATION`` (VEC4 float, x y z w),
``KHR_gaussian_splatting:SCALE`` (VEC3 float, linear), ``KHR_gaussian_splatting:OPACITY`` (SCALAR
float, after the sigmoid) and ``KHR_gaussian_splatting:SH_DEGREE_l_COEF_m`` (VEC3 float, one per SH
coefficient, the DC term is degree 0), plus COLOR_0 for viewers without the extension.

glTF is Y-up; the engine's (and the 3DGS .ply's) world is y-down, z-forward. Like PlayCanvas, the
writer turns the scene 180 degrees about z: (x, y, z) -> (-x, -y, z); rotations are pre-multiplied
by that turn and the SH coefficients odd in x + y change sign. Reading undoes it.
"""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import numpy as np

from engine.compress import codec
from engine.errors import FormatError
from engine.io.atomic import atomic_write_bytes
from engine.io.reading import read_bytes
from engine.scene import SH_C0, GaussianScene, sh_coeffs_for_degree

FORMAT_NAME = "gltf"
EXTENSIONS = (".glb", ".gltf")
EXTENSION = "KHR_gaussian_splatting"
_PREFIX = f"{EXTENSION}:"
_GLB_MAGIC, _JSON_CHUNK, _BIN_CHUNK = 0x46546C67, 0x4E4F534A, 0x004E4942
_FLOAT, _UBYTE = 5126, 5121
_COMPONENTS = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}
# sign of each SH basis function (bands 1-3, 3DGS order) under (x, y, z) -> (-x, -y, z)
_SH_REST_TURN = np.array([-1, 1, -1] + [1, -1, 1, -1, 1] + [-1, 1, -1, 1, -1, 1, -1], dtype=np.float64)
_AXIS_TURN = np.array([-1.0, -1.0, 1.0])


def sniff(head: bytes) -> bool:
    return head[:4] == b"glTF" or (head.lstrip()[:1] == b"{" and b'"asset"' in head)


def _turn_quats(wxyz: np.ndarray) -> np.ndarray:
    """180 degrees about z, then the rotation: (0, 0, 0, 1) x q in (w, x, y, z)."""
    w, x, y, z = wxyz.T
    return np.stack([-z, -y, x, w], axis=1)


def _unturn_quats(wxyz: np.ndarray) -> np.ndarray:
    w, x, y, z = wxyz.T  # the inverse turn: (0, 0, 0, -1) x q
    return np.stack([z, y, -x, -w], axis=1)


def _coef_names(degree: int) -> list[str]:
    return [f"{_PREFIX}SH_DEGREE_{l}_COEF_{m}" for l in range(degree + 1) for m in range(2 * l + 1)]


def encode(scene: GaussianScene, binary: bool = True) -> bytes:
    scene = scene.detach().to("cpu")
    n = len(scene)
    means = scene.means.numpy().astype(np.float64) * _AXIS_TURN
    unit = codec.normalize_quats(scene.quats.numpy())
    wxyz = _turn_quats(unit)
    sh = scene.sh.numpy().astype(np.float64).copy()
    sh[:, 1:] *= _SH_REST_TURN[: sh.shape[1] - 1, None]
    alpha = codec.sigmoid(scene.opacity_logits.numpy())
    rgba = codec.round_u8(np.concatenate([np.clip(0.5 + SH_C0 * sh[:, 0], 0, 1), alpha[:, None]], axis=1) * 255)
    columns: list[tuple[str, np.ndarray, str, int]] = [
        ("POSITION", means.astype("<f4"), "VEC3", _FLOAT),
        ("COLOR_0", rgba, "VEC4", _UBYTE),
        (f"{_PREFIX}ROTATION", wxyz[:, [1, 2, 3, 0]].astype("<f4"), "VEC4", _FLOAT),
        (f"{_PREFIX}SCALE", np.exp(scene.log_scales.numpy().astype(np.float64)).astype("<f4"), "VEC3", _FLOAT),
        (f"{_PREFIX}OPACITY", alpha.astype("<f4"), "SCALAR", _FLOAT),
    ]
    for k, name in enumerate(_coef_names(scene.sh_degree)):
        columns.append((name, sh[:, k].astype("<f4"), "VEC3", _FLOAT))

    blob, views, accessors, attributes = bytearray(), [], [], {}
    for i, (name, data, kind, component) in enumerate(columns):
        raw = np.ascontiguousarray(data).tobytes()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw), "target": 34962})
        accessor = {"bufferView": i, "componentType": component, "count": n, "type": kind}
        if name == "POSITION":
            accessor["min"] = data.min(axis=0).tolist() if n else [0.0] * 3
            accessor["max"] = data.max(axis=0).tolist() if n else [0.0] * 3
        if component == _UBYTE:
            accessor["normalized"] = True
        accessors.append(accessor)
        attributes[name] = i
        blob += raw + b"\0" * (-len(raw) % 4)
    buffer = {"byteLength": len(blob)}
    if not binary:
        buffer["uri"] = "data:application/octet-stream;base64," + base64.b64encode(bytes(blob)).decode("ascii")
    doc = {
        "asset": {"version": "2.0", "generator": "Handful"},
        "extensionsUsed": [EXTENSION],
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": attributes, "mode": 0, "extensions": {EXTENSION: {
            "kernel": "ellipse", "colorSpace": "srgb_rec709_display",
            "sortingMethod": "cameraDistance", "projection": "perspective"}}}]}],
        "buffers": [buffer],
        "bufferViews": views,
        "accessors": accessors,
    }
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    if not binary:
        return text
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    return b"".join([struct.pack("<III", _GLB_MAGIC, 2, total), struct.pack("<II", len(text), _JSON_CHUNK), text,
                     struct.pack("<II", len(blob), _BIN_CHUNK), bytes(blob)])


def write(scene: GaussianScene, path: str | Path) -> None:
    path = Path(path)
    atomic_write_bytes(path, encode(scene, binary=path.suffix.lower() != ".gltf"))


def _split(data: bytes, path: Path) -> tuple[dict, bytes]:
    if data[:4] == b"glTF":
        if len(data) < 20:
            raise FormatError("is truncated inside its GLB header", path, "export it again")
        _, _, total = struct.unpack_from("<III", data)
        if total != len(data):
            raise FormatError(f"says it is {total:,} bytes long but has {len(data):,}", path, "export it again")
        jlen, jtype = struct.unpack_from("<II", data, 12)
        if jtype != _JSON_CHUNK or 20 + jlen > len(data):
            raise FormatError("has no JSON chunk where GLB puts it", path)
        doc = json.loads(data[20 : 20 + jlen].decode("utf-8"))
        blob = b""
        if 28 + jlen <= len(data):
            blen, btype = struct.unpack_from("<II", data, 20 + jlen)
            blob = data[28 + jlen : 28 + jlen + blen] if btype == _BIN_CHUNK else b""
        return doc, blob
    doc = json.loads(data.decode("utf-8"))
    uri = doc["buffers"][0].get("uri", "")
    if not uri.startswith("data:"):
        raise FormatError("refers to an external buffer file, which is not read", path, "export it as .glb")
    return doc, base64.b64decode(uri.split(",", 1)[1])


def read(path: str | Path) -> GaussianScene:
    path = Path(path)
    data = read_bytes(path, "a glTF file (.glb or .gltf)")
    try:
        doc, blob = _split(data, path)
        prim = next(p for m in doc.get("meshes", []) for p in m["primitives"] if EXTENSION in p.get("extensions", {}))
        attrs = prim["attributes"]

        def column(name: str) -> np.ndarray:
            acc = doc["accessors"][attrs[name]]
            view = doc["bufferViews"][acc["bufferView"]]
            if acc["componentType"] != _FLOAT:
                raise FormatError(f"stores {name} as component type {acc['componentType']}; float is read", path)
            width = _COMPONENTS[acc["type"]]
            start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
            size = acc["count"] * width * 4
            if start + size > len(blob):
                raise FormatError(f"is truncated: {name} runs past the end of its buffer", path, "export it again")
            return np.frombuffer(blob, "<f4", acc["count"] * width, start).reshape(acc["count"], width).astype(np.float64)

        means = column("POSITION") * _AXIS_TURN
        xyzw = column(f"{_PREFIX}ROTATION")
        quats = _unturn_quats(xyzw[:, [3, 0, 1, 2]])
        log_scales = np.log(np.maximum(column(f"{_PREFIX}SCALE"), np.finfo(np.float32).tiny))
        logits = codec.logit(column(f"{_PREFIX}OPACITY")[:, 0], 1e-7)
        degree = 0
        while degree < 3 and all(n in attrs for n in _coef_names(degree + 1)):
            degree += 1
        sh = np.stack([column(name) for name in _coef_names(degree)], axis=1)
        sh[:, 1:] *= _SH_REST_TURN[: sh_coeffs_for_degree(degree) - 1, None]
    except FormatError:
        raise
    except (StopIteration, KeyError, IndexError, TypeError, ValueError, struct.error) as e:
        raise FormatError(f"is not a glTF file with {EXTENSION} splats ({type(e).__name__}: {e})", path,
                          "export it again") from None
    return GaussianScene.from_numpy(means, quats, log_scales, logits, sh)


__all__ = ["FORMAT_NAME", "EXTENSIONS", "sniff", "read", "write", "encode"]
