"""Similarity alignment of camera sets and pose-error figures (used by tests and benchmarks).

Poses from photos alone are known only up to a similarity (rotation, translation, scale), so
estimated cameras are compared with reference cameras after the best such alignment.
"""

from __future__ import annotations

import numpy as np

from dataclasses import replace

from engine.errors import InputError
from engine.scene import Camera, CameraRig


def align_similarity(src_centers, dst_centers) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity ``dst ~ s * R @ src + t`` (Umeyama 1991); returns ``(s, R, t)``.

    Written here because scipy only offers the rotation part (``Rotation.align_vectors``) and
    the closed form is a few lines.
    """
    src = np.asarray(src_centers, dtype=np.float64).reshape(-1, 3)
    dst = np.asarray(dst_centers, dtype=np.float64).reshape(-1, 3)
    if src.shape != dst.shape or len(src) < 2:
        raise InputError(f"need two or more matching point pairs to align, got {len(src)} and {len(dst)}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    var_s = (xs**2).sum() / len(src)
    cov = xd.T @ xs / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / var_s) if var_s > 0 else 1.0
    t = mu_d - s * R @ mu_s
    return s, R, t


def align_cameras(src: list[Camera], dst: list[Camera]) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity ``x_dst ~ s * R @ x_src + t`` that carries cameras ``src`` onto ``dst`` (same order).

    The rotation is the chordal mean of what each pair of orientations says it is; scale and translation
    are then the least-squares fit of the centres. A fit to the centres alone leaves the rotation about
    their line free when the centres are nearly collinear (a few forward-facing photos), which the
    orientations fix whatever the layout. Needs two cameras with distinct centres.
    """
    if len(src) != len(dst) or len(src) < 2:
        raise InputError(f"need two or more matching cameras to align, got {len(src)} and {len(dst)}")
    # A world change x' = R x turns a camera's world-to-camera rotation R_c into R_c @ R.T.
    u, _, vt = np.linalg.svd(sum(b.R.T @ a.R for a, b in zip(src, dst)))
    R = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    cs = np.array([c.center for c in src])
    cd = np.array([c.center for c in dst])
    xs, xd = cs - cs.mean(0), cd - cd.mean(0)
    spread = float((xs**2).sum())
    if spread == 0:
        raise InputError("the cameras to align share one centre: their scale is unknown")
    s = float(np.einsum("ij,ij->", xd, xs @ R.T) / spread)
    return s, R, cd.mean(0) - s * R @ cs.mean(0)


def transform_cameras(cameras: list[Camera], s: float, R: np.ndarray, t: np.ndarray) -> list[Camera]:
    """``cameras`` moved by the world change ``x' = s * R @ x + t`` (intrinsics kept)."""
    moved = []
    for cam in cameras:
        rotation = cam.R @ R.T
        moved.append(replace(cam, R=rotation, t=-rotation @ (s * R @ cam.center + t)))
    return moved


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of rotation matrix ``R`` in degrees, accurate down to float rounding at any angle.

    ``arccos((trace - 1) / 2)`` loses half the digits near 0 (a 1e-8 rounding of the cosine reads
    as 0.01 degrees), so the angle comes from atan2 of its sine (the skew part) and cosine.
    """
    R = np.asarray(R, dtype=np.float64)
    sin = np.linalg.norm([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2
    cos = (np.trace(R) - 1) / 2
    return float(np.degrees(np.arctan2(sin, cos)))


def relative_rotation_deg(a, b) -> float:
    """Angle in degrees between two cameras' orientations (world-to-camera ``R``)."""
    return rotation_angle_deg(a.R @ b.R.T)


def pose_errors(estimated: CameraRig, reference: CameraRig) -> dict:
    """Rotation and centre errors of ``estimated`` against ``reference`` cameras with the same names.

    The similarity is fitted on the camera centres (with two cameras, on their centres and a point
    one baseline ahead along each viewing direction, so that the rotation about the baseline is
    fixed too). Centre errors are relative to the reference cameras' spread (the largest distance
    of a reference centre from their mean). Returns ``count``, ``median_rot_deg``, ``max_rot_deg``,
    ``median_center_rel``, ``max_center_rel``, ``scale``.
    """
    ref = reference.by_name()
    pairs = [(c, ref[c.name]) for c in estimated.cameras if c.name in ref]
    if len(pairs) < 2:
        raise InputError(
            f"only {len(pairs)} estimated camera(s) share a name with the reference cameras; need 2 or more"
        )
    est_c = np.array([e.center for e, _ in pairs])
    ref_c = np.array([r.center for _, r in pairs])
    src, dst = est_c, ref_c
    if len(pairs) == 2:
        # A point ahead of each camera (third row of R is the viewing direction in world).
        b_est = np.linalg.norm(est_c[1] - est_c[0]) or 1.0
        b_ref = np.linalg.norm(ref_c[1] - ref_c[0]) or 1.0
        src = np.vstack([est_c, est_c + b_est * np.array([e.R[2] for e, _ in pairs])])
        dst = np.vstack([ref_c, ref_c + b_ref * np.array([r.R[2] for _, r in pairs])])
    s, R_align, t_align = align_similarity(src, dst)
    aligned = (s * (R_align @ est_c.T)).T + t_align
    spread = float(np.linalg.norm(ref_c - ref_c.mean(0), axis=1).max()) or 1.0
    center_rel = np.linalg.norm(aligned - ref_c, axis=1) / spread
    # World change x_ref = s R_a x_est + t: the estimated camera rotation becomes R_est @ R_a^T.
    rot = np.array([rotation_angle_deg(r.R @ (e.R @ R_align.T).T) for e, r in pairs])
    return {
        "count": len(pairs),
        "median_rot_deg": float(np.median(rot)),
        "max_rot_deg": float(rot.max()),
        "median_center_rel": float(np.median(center_rel)),
        "max_center_rel": float(center_rel.max()),
        "scale": s,
    }
