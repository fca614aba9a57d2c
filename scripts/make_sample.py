"""Make the bundled sample photo set: a procedural textured still life, ray-cast from known cameras.

Everything here is generated (noise textures, boxes, a ball on a textured floor), so the sample is free to
redistribute. Deterministic: running it again gives the same images.

    python scripts/make_sample.py [--out resources/sample] [--views 24] [--size 480x360]

Writes ``images/view_XX.jpg`` (EXIF carries the focal length) and ``transforms.json`` (the true cameras, OpenCV world-to-camera converted to the
nerfstudio camera-to-world layout) so tests can compare estimated poses with the truth.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.scene import Camera  # noqa: E402


def value_noise(rng: np.random.Generator, size: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1], tileable enough for texturing."""
    out = np.zeros((size, size))
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 4 * 2**o
        grid = rng.random((cells + 1, cells + 1))
        out += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.55
    out /= total
    return (out - out.min()) / (out.max() - out.min() + 1e-9)


def make_texture(rng: np.random.Generator, base: tuple, size: int = 512) -> np.ndarray:
    n1, n2 = value_noise(rng, size), value_noise(rng, size, octaves=7)
    base = np.asarray(base, dtype=np.float64)
    tex = base[None, None, :] * (0.45 + 0.75 * n1[..., None]) + 0.25 * (n2[..., None] - 0.5)
    # sharp blobs and lines give SIFT something to hold on to
    for _ in range(60):
        c = rng.integers(0, size, 2)
        r = int(rng.integers(3, 18))
        col = tuple(float(x) for x in rng.random(3))
        cv2.circle(tex, (int(c[0]), int(c[1])), r, col, -1)
    for _ in range(8):
        p, q = rng.integers(0, size, 2), rng.integers(0, size, 2)
        cv2.line(tex, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), tuple(float(x) for x in rng.random(3)), 2)
    return np.clip(tex, 0, 1)


def sample_texture(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = tex.shape[0]
    x = (np.mod(u, 1.0) * (s - 1)).astype(np.int64)
    y = (np.mod(v, 1.0) * (s - 1)).astype(np.int64)
    return tex[y, x]


class StillLife:
    """A floor (z=0), three boxes and a ball; world z up, units ~ metres."""

    def __init__(self, seed: int = 7):
        rng = np.random.default_rng(seed)
        self.floor_tex = make_texture(rng, (0.55, 0.5, 0.42))
        self.boxes = [  # (min corner, max corner, texture)
            (np.array([-0.9, -0.6, 0.0]), np.array([-0.1, 0.2, 0.7]), make_texture(rng, (0.75, 0.3, 0.2))),
            (np.array([0.2, -0.8, 0.0]), np.array([0.8, -0.2, 0.45]), make_texture(rng, (0.2, 0.45, 0.75))),
            (np.array([0.1, 0.3, 0.0]), np.array([0.5, 0.7, 1.0]), make_texture(rng, (0.3, 0.65, 0.3))),
        ]
        self.ball = (np.array([-0.45, 0.75, 0.35]), 0.35, make_texture(rng, (0.85, 0.75, 0.25)))
        self.light = np.array([0.4, -0.5, 0.75]) / np.linalg.norm([0.4, -0.5, 0.75])

    def trace(self, origins: np.ndarray, dirs: np.ndarray, sky: np.ndarray) -> np.ndarray:
        n = len(dirs)
        best_t = np.full(n, np.inf)
        color = np.broadcast_to(sky, (n, 3)).copy()
        normal = np.zeros((n, 3))

        # floor, limited to a disc so the horizon shows sky
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -origins[:, 2] / dirs[:, 2]
        p = origins + t[:, None] * dirs
        hit = (t > 1e-4) & (np.hypot(p[:, 0], p[:, 1]) < 3.0)
        best_t[hit] = t[hit]
        color[hit] = sample_texture(self.floor_tex, p[hit, 0] / 1.5, p[hit, 1] / 1.5)
        normal[hit] = [0, 0, 1]

        for lo, hi, tex in self.boxes:
            with np.errstate(divide="ignore", invalid="ignore"):
                t0 = (lo - origins) / dirs
                t1 = (hi - origins) / dirs
            tmin = np.minimum(t0, t1)
            tmax = np.maximum(t0, t1)
            t_near = np.nanmax(tmin, axis=1)
            t_far = np.nanmin(tmax, axis=1)
            hit = (t_near <= t_far) & (t_near > 1e-4) & (t_near < best_t)
            if not hit.any():
                continue
            axis = np.argmax(tmin[hit], axis=1)
            p = origins[hit] + t_near[hit, None] * dirs[hit]
            nrm = np.zeros((hit.sum(), 3))
            nrm[np.arange(len(axis)), axis] = -np.sign(dirs[hit][np.arange(len(axis)), axis])
            # texture coordinates from the two axes orthogonal to the face normal
            uv_axes = np.array([[1, 2], [0, 2], [0, 1]])[axis]
            u = p[np.arange(len(axis)), uv_axes[:, 0]] + 0.37 * axis
            v = p[np.arange(len(axis)), uv_axes[:, 1]] + 0.61 * axis
            best_t[hit] = t_near[hit]
            color[hit] = sample_texture(tex, u, v)
            normal[hit] = nrm

        centre, radius, tex = self.ball
        oc = origins - centre
        b = np.einsum("ij,ij->i", oc, dirs)
        c = np.einsum("ij,ij->i", oc, oc) - radius**2
        disc = b * b - c
        t = -b - np.sqrt(np.maximum(disc, 0))
        hit = (disc > 0) & (t > 1e-4) & (t < best_t)
        p = origins[hit] + t[hit, None] * dirs[hit]
        nrm = (p - centre) / radius
        best_t[hit] = t[hit]
        u = np.arctan2(nrm[:, 1], nrm[:, 0]) / (2 * np.pi) + 0.5
        v = np.arccos(np.clip(nrm[:, 2], -1, 1)) / np.pi
        color[hit] = sample_texture(tex, u * 2, v)
        normal[hit] = nrm

        lit = np.isfinite(best_t)
        shade = 0.55 + 0.45 * np.clip(normal[lit] @ self.light, 0, 1)
        color[lit] = color[lit] * shade[:, None]
        return np.clip(color, 0, 1)

    def render(self, cam: Camera, supersample: int = 2) -> np.ndarray:
        s = supersample
        w, h = cam.width * s, cam.height * s
        xs = (np.arange(w) + 0.5) / s
        ys = (np.arange(h) + 0.5) / s
        px, py = np.meshgrid(xs, ys)
        d_cam = np.stack([(px - cam.cx) / cam.fx, (py - cam.cy) / cam.fy, np.ones_like(px)], -1).reshape(-1, 3)
        d_world = d_cam @ cam.R  # R^T d
        d_world /= np.linalg.norm(d_world, axis=1, keepdims=True)
        origins = np.broadcast_to(cam.center, d_world.shape)
        sky = np.array([0.78, 0.85, 0.95])
        img = self.trace(origins, d_world, sky).reshape(h, w, 3)
        return cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)


def ring_cameras(views: int, width: int, height: int, radius: float = 3.4, elevation: float = 1.7) -> list[Camera]:
    f = 0.5 * width / math.tan(math.radians(55) / 2)
    cams = []
    for i in range(views):
        a = 2 * math.pi * i / views + 0.3
        wobble = 0.15 * math.sin(3 * a)
        eye = np.array([radius * math.cos(a), radius * math.sin(a), elevation + wobble])
        cams.append(
            Camera.look_at(
                eye, (0.0, 0.0, 0.35), up=(0, 0, 1), fx=f, fy=f, cx=width / 2, cy=height / 2,
                width=width, height=height, name=f"view_{i:02d}.jpg",
            )
        )
    return cams


def save_jpeg_with_focal(rgb: np.ndarray, cam: Camera, path: Path) -> None:
    """A JPEG whose EXIF gives the true focal length (a virtual 4 mm lens), as a real camera's would."""
    from PIL import Image, TiffImagePlugin

    lens_mm = 4.0
    exif = Image.Exif()
    exif[0x010F] = "Handful"  # Make
    exif[0x0110] = "procedural sample"  # Model
    ifd = exif.get_ifd(0x8769)
    ifd[0x920A] = TiffImagePlugin.IFDRational(lens_mm)  # FocalLength (mm)
    ifd[0xA20E] = TiffImagePlugin.IFDRational(cam.fx / lens_mm)  # FocalPlaneXResolution (px per mm)
    ifd[0xA20F] = TiffImagePlugin.IFDRational(cam.fy / lens_mm)
    ifd[0xA210] = 4  # FocalPlaneResolutionUnit: millimetre
    ifd[0xA002] = cam.width  # PixelXDimension
    ifd[0xA003] = cam.height
    Image.fromarray(rgb).save(path, quality=92, exif=exif)


def write_transforms(cams: list[Camera], path: Path) -> None:
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL camera axes
    c0 = cams[0]
    frames = [
        {"file_path": f"images/{c.name}", "transform_matrix": (c.camera_to_world @ flip).tolist()} for c in cams
    ]
    doc = {
        "camera_model": "OPENCV",
        "fl_x": c0.fx, "fl_y": c0.fy, "cx": c0.cx, "cy": c0.cy, "w": c0.width, "h": c0.height,
        "frames": frames,
    }
    path.write_text(json.dumps(doc, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "resources" / "sample")
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--size", default="480x360")
    args = ap.parse_args(argv)
    w, h = (int(x) for x in args.size.lower().split("x"))
    scene = StillLife()
    cams = ring_cameras(args.views, w, h)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for cam in cams:
        img = scene.render(cam)
        save_jpeg_with_focal((img * 255 + 0.5).astype(np.uint8), cam, args.out / "images" / cam.name)
    write_transforms(cams, args.out / "transforms.json")
    print(f"wrote {len(cams)} views of {w}x{h} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
