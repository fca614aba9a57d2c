"""Projection and SH colour for the ``cpu`` backend as numba kernels with a hand-written backward.

Same maths as ``projection.py`` (the torch version the reference backend uses, whose autograd is the
oracle for these gradients): on the CPU, torch spends ~3 us per Gaussian on the ~300 small element-wise
ops of projection + SH + their backward; one fused pass per Gaussian is ~10x cheaper. Outputs cover
all N Gaussians; culled ones have radii 0 and zero outputs, and receive zero gradients.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from engine.render.projection import ALPHA_THRESHOLD, EPS2D, FAR, MAX_EXTEND, NEAR, Projection
from engine.scene import Camera, GaussianScene

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2_0, C2_1, C2_2, C2_3, C2_4 = (
    1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396
)
C3_0, C3_1, C3_2, C3_3, C3_4, C3_5, C3_6 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
    1.445305721320277, -0.5900435899266435,
)


@njit(inline="always")
def _rotmat(w, x, y, z, R):
    R[0, 0] = 1 - 2 * (y * y + z * z)
    R[0, 1] = 2 * (x * y - w * z)
    R[0, 2] = 2 * (x * z + w * y)
    R[1, 0] = 2 * (x * y + w * z)
    R[1, 1] = 1 - 2 * (x * x + z * z)
    R[1, 2] = 2 * (y * z - w * x)
    R[2, 0] = 2 * (x * z - w * y)
    R[2, 1] = 2 * (y * z + w * x)
    R[2, 2] = 1 - 2 * (x * x + y * y)


@njit(inline="always")
def _sh_basis(degree, x, y, z, b):
    b[0] = C0
    if degree >= 1:
        b[1] = -C1 * y
        b[2] = C1 * z
        b[3] = -C1 * x
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        b[4] = C2_0 * x * y
        b[5] = C2_1 * y * z
        b[6] = C2_2 * (2 * zz - xx - yy)
        b[7] = C2_3 * x * z
        b[8] = C2_4 * (xx - yy)
    if degree >= 3:
        b[9] = C3_0 * y * (3 * xx - yy)
        b[10] = C3_1 * x * y * z
        b[11] = C3_2 * y * (4 * zz - xx - yy)
        b[12] = C3_3 * z * (2 * zz - 3 * xx - 3 * yy)
        b[13] = C3_4 * x * (4 * zz - xx - yy)
        b[14] = C3_5 * z * (xx - yy)
        b[15] = C3_6 * x * (xx - 3 * yy)


@njit(inline="always")
def _sh_basis_grad(degree, x, y, z, g, out):
    """out = sum_k g[k] * grad(basis_k) at (x, y, z), for k >= 1."""
    gx = gy = gz = 0.0
    if degree >= 1:
        gy += -C1 * g[1]
        gz += C1 * g[2]
        gx += -C1 * g[3]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        gx += g[4] * C2_0 * y
        gy += g[4] * C2_0 * x
        gy += g[5] * C2_1 * z
        gz += g[5] * C2_1 * y
        gx += g[6] * C2_2 * (-2 * x)
        gy += g[6] * C2_2 * (-2 * y)
        gz += g[6] * C2_2 * (4 * z)
        gx += g[7] * C2_3 * z
        gz += g[7] * C2_3 * x
        gx += g[8] * C2_4 * (2 * x)
        gy += g[8] * C2_4 * (-2 * y)
    if degree >= 3:
        gx += g[9] * C3_0 * 6 * x * y
        gy += g[9] * C3_0 * (3 * xx - 3 * yy)
        gx += g[10] * C3_1 * y * z
        gy += g[10] * C3_1 * x * z
        gz += g[10] * C3_1 * x * y
        gx += g[11] * C3_2 * (-2 * x * y)
        gy += g[11] * C3_2 * (4 * zz - xx - 3 * yy)
        gz += g[11] * C3_2 * 8 * y * z
        gx += g[12] * C3_3 * (-6 * x * z)
        gy += g[12] * C3_3 * (-6 * y * z)
        gz += g[12] * C3_3 * (6 * zz - 3 * xx - 3 * yy)
        gx += g[13] * C3_4 * (4 * zz - 3 * xx - yy)
        gy += g[13] * C3_4 * (-2 * x * y)
        gz += g[13] * C3_4 * 8 * x * z
        gx += g[14] * C3_5 * 2 * x * z
        gy += g[14] * C3_5 * (-2 * y * z)
        gz += g[14] * C3_5 * (xx - yy)
        gx += g[15] * C3_6 * (3 * xx - 3 * yy)
        gy += g[15] * C3_6 * (-6 * x * y)
    out[0], out[1], out[2] = gx, gy, gz


@njit(parallel=True, fastmath=False, cache=True)
def project_forward(means, quats, log_scales, logits, sh, degree, Rc, tc, campos, fx, fy, cx, cy, width, height,
                    means2d, conics, opacities, colors, depths, radii):
    n = means.shape[0]
    K = (degree + 1) * (degree + 1)
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    for i in prange(n):
        radii[i, 0] = 0
        radii[i, 1] = 0
        means2d[i, 0] = means2d[i, 1] = 0.0
        conics[i, 0] = conics[i, 1] = conics[i, 2] = 0.0
        opacities[i] = 0.0
        colors[i, 0] = colors[i, 1] = colors[i, 2] = 0.0
        mx, my, mz = np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2])
        x = Rc[0, 0] * mx + Rc[0, 1] * my + Rc[0, 2] * mz + tc[0]
        y = Rc[1, 0] * mx + Rc[1, 1] * my + Rc[1, 2] * mz + tc[1]
        z = Rc[2, 0] * mx + Rc[2, 1] * my + Rc[2, 2] * mz + tc[2]
        depths[i] = z
        if not (z >= NEAR and z <= FAR):
            continue
        qw, qx = np.float64(quats[i, 0]), np.float64(quats[i, 1])
        qy, qz = np.float64(quats[i, 2]), np.float64(quats[i, 3])
        qn = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
        Rq = np.empty((3, 3))
        _rotmat(qw / qn, qx / qn, qy / qn, qz / qn, Rq)
        rz = 1.0 / z
        tx = z * min(max(x * rz, -lim_x_neg), lim_x_pos)
        ty = z * min(max(y * rz, -lim_y_neg), lim_y_pos)
        j00, j02 = fx * rz, -fx * tx * rz * rz
        j11, j12 = fy * rz, -fy * ty * rz * rz
        c00 = c01 = c11 = 0.0
        for b in range(3):
            s = math.exp(np.float64(log_scales[i, b]))
            p0 = Rc[0, 0] * Rq[0, b] + Rc[0, 1] * Rq[1, b] + Rc[0, 2] * Rq[2, b]
            p1 = Rc[1, 0] * Rq[0, b] + Rc[1, 1] * Rq[1, b] + Rc[1, 2] * Rq[2, b]
            p2 = Rc[2, 0] * Rq[0, b] + Rc[2, 1] * Rq[1, b] + Rc[2, 2] * Rq[2, b]
            t0 = (j00 * p0 + j02 * p2) * s
            t1 = (j11 * p1 + j12 * p2) * s
            c00 += t0 * t0
            c01 += t0 * t1
            c11 += t1 * t1
        c00 += EPS2D
        c11 += EPS2D
        det = c00 * c11 - c01 * c01
        if not det > 0.0:
            continue
        op = 1.0 / (1.0 + math.exp(-np.float64(logits[i])))
        if op < ALPHA_THRESHOLD:
            continue
        extend = min(MAX_EXTEND, math.sqrt(2.0 * math.log(op / ALPHA_THRESHOLD)))
        rx = math.ceil(extend * math.sqrt(c00))
        ry = math.ceil(extend * math.sqrt(c11))
        if rx <= 0 and ry <= 0:
            continue
        u = fx * x * rz + cx
        v = fy * y * rz + cy
        if u + rx <= 0 or u - rx >= width or v + ry <= 0 or v - ry >= height:
            continue
        radii[i, 0] = min(rx, 2.0**30)
        radii[i, 1] = min(ry, 2.0**30)
        means2d[i, 0] = u
        means2d[i, 1] = v
        conics[i, 0] = c11 / det
        conics[i, 1] = -c01 / det
        conics[i, 2] = c00 / det
        opacities[i] = op
        # View-dependent colour.
        dx, dy, dz = mx - campos[0], my - campos[1], mz - campos[2]
        dn = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        basis = np.empty(16)
        _sh_basis(degree, dx / dn, dy / dn, dz / dn, basis)
        for c in range(3):
            acc = 0.0
            for k in range(K):
                acc += basis[k] * sh[i, k, c]
            colors[i, c] = max(acc + 0.5, 0.0)


@njit(parallel=True, fastmath=False, cache=True)
def project_backward(means, quats, log_scales, logits, sh, degree, Rc, tc, campos, fx, fy, cx, cy, width, height,
                     radii, opacities, conics, colors, v_means2d, v_conics, v_opacities, v_colors, v_depths,
                     g_means, g_quats, g_log_scales, g_logits, g_sh, pose_terms):
    """Gradients for every Gaussian; with ``pose_terms`` of shape (n, 15) also each Gaussian's share of
    the pose gradient: [v_cam p^T + vP Rq^T (9, row-major), v_cam (3), SH direction gradient (3)],
    which ``pose_gradient`` sums. Pass a (0, 15) array to skip them.

    Scalars are written out rather than indexed from tuples: a runtime-indexed tuple inside this prange
    loop compiled to wrong gradients (numba 0.6x), with no error."""
    n = means.shape[0]
    want_pose = pose_terms.shape[0] == n
    K = (degree + 1) * (degree + 1)
    # The same limits as project_forward, written out: a helper returning the four as a tuple (even
    # called outside the prange loop) compiled to wrong images.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    for i in prange(n):
        for a in range(3):
            g_means[i, a] = 0.0
            g_log_scales[i, a] = 0.0
        for a in range(4):
            g_quats[i, a] = 0.0
        g_logits[i] = 0.0
        for k in range(sh.shape[1]):
            for c in range(3):
                g_sh[i, k, c] = 0.0
        if want_pose:
            for a in range(15):
                pose_terms[i, a] = 0.0
        mx, my, mz = np.float64(means[i, 0]), np.float64(means[i, 1]), np.float64(means[i, 2])
        x = Rc[0, 0] * mx + Rc[0, 1] * my + Rc[0, 2] * mz + tc[0]
        y = Rc[1, 0] * mx + Rc[1, 1] * my + Rc[1, 2] * mz + tc[1]
        z = Rc[2, 0] * mx + Rc[2, 1] * my + Rc[2, 2] * mz + tc[2]
        # Depth is differentiable wherever it was output (the depth channel only uses visible ones).
        v_x = v_y = 0.0
        v_z = np.float64(v_depths[i])
        if radii[i, 0] <= 0 or radii[i, 1] <= 0:
            for a in range(3):
                g_means[i, a] = Rc[2, a] * v_z
            if want_pose:
                pose_terms[i, 6] = v_z * mx
                pose_terms[i, 7] = v_z * my
                pose_terms[i, 8] = v_z * mz
                pose_terms[i, 11] = v_z
            continue
        # Opacity.
        op = np.float64(opacities[i])
        g_logits[i] = v_opacities[i] * op * (1.0 - op)
        # Colour: clamp_min(sum basis * sh + 0.5, 0).
        dx, dy, dz = mx - campos[0], my - campos[1], mz - campos[2]
        dn = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        ux, uy, uz = dx / dn, dy / dn, dz / dn
        basis = np.empty(16)
        _sh_basis(degree, ux, uy, uz, basis)
        vraw = np.empty(3)
        for c in range(3):
            acc = 0.0
            for k in range(K):
                acc += basis[k] * sh[i, k, c]
            vraw[c] = v_colors[i, c] if acc + 0.5 >= 0.0 else 0.0
        gk = np.zeros(16)
        for k in range(K):
            for c in range(3):
                g_sh[i, k, c] = basis[k] * vraw[c]
                gk[k] += vraw[c] * sh[i, k, c]
        if degree > 0:
            vd = np.empty(3)
            _sh_basis_grad(degree, ux, uy, uz, gk, vd)
            dot = ux * vd[0] + uy * vd[1] + uz * vd[2]
            gdx = (vd[0] - ux * dot) / dn
            gdy = (vd[1] - uy * dot) / dn
            gdz = (vd[2] - uz * dot) / dn
            g_means[i, 0] += gdx
            g_means[i, 1] += gdy
            g_means[i, 2] += gdz
            if want_pose:
                pose_terms[i, 12] = gdx
                pose_terms[i, 13] = gdy
                pose_terms[i, 14] = gdz
        # Recompute the forward quantities.
        qw, qx = np.float64(quats[i, 0]), np.float64(quats[i, 1])
        qy, qz = np.float64(quats[i, 2]), np.float64(quats[i, 3])
        qn = max(math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12)
        w_, x_, y_, z_ = qw / qn, qx / qn, qy / qn, qz / qn
        Rq = np.empty((3, 3))
        _rotmat(w_, x_, y_, z_, Rq)
        rz = 1.0 / z
        x_ratio, y_ratio = x * rz, y * rz
        tx = z * min(max(x_ratio, -lim_x_neg), lim_x_pos)
        ty = z * min(max(y_ratio, -lim_y_neg), lim_y_pos)
        j00, j02 = fx * rz, -fx * tx * rz * rz
        j11, j12 = fy * rz, -fy * ty * rz * rz
        P = np.empty((3, 3))
        s = np.empty(3)
        T0 = np.empty(3)
        T1 = np.empty(3)
        for b in range(3):
            s[b] = math.exp(np.float64(log_scales[i, b]))
            for a in range(3):
                P[a, b] = Rc[a, 0] * Rq[0, b] + Rc[a, 1] * Rq[1, b] + Rc[a, 2] * Rq[2, b]
            T0[b] = (j00 * P[0, b] + j02 * P[2, b]) * s[b]
            T1[b] = (j11 * P[1, b] + j12 * P[2, b]) * s[b]
        # Conic (inverse of the dilated 2D covariance) -> covariance.
        ca, cb, cc = np.float64(conics[i, 0]), np.float64(conics[i, 1]), np.float64(conics[i, 2])
        va, vb, vc = np.float64(v_conics[i, 0]), np.float64(v_conics[i, 1]), np.float64(v_conics[i, 2])
        v_c00 = -va * ca * ca - vb * ca * cb - vc * cb * cb
        v_c11 = -va * cb * cb - vb * cb * cc - vc * cc * cc
        v_c01 = -2.0 * va * ca * cb - vb * (ca * cc + cb * cb) - 2.0 * vc * cb * cc
        # Covariance -> T rows -> Jacobian, scales, rotations.
        v_j00 = v_j02 = v_j11 = v_j12 = 0.0
        vP = np.empty((3, 3))
        for b in range(3):
            vt0 = 2.0 * v_c00 * T0[b] + v_c01 * T1[b]
            vt1 = 2.0 * v_c11 * T1[b] + v_c01 * T0[b]
            v_j00 += vt0 * P[0, b] * s[b]
            v_j02 += vt0 * P[2, b] * s[b]
            v_j11 += vt1 * P[1, b] * s[b]
            v_j12 += vt1 * P[2, b] * s[b]
            v_s = vt0 * (j00 * P[0, b] + j02 * P[2, b]) + vt1 * (j11 * P[1, b] + j12 * P[2, b])
            g_log_scales[i, b] = v_s * s[b]
            vP[0, b] = vt0 * j00 * s[b]
            vP[1, b] = vt1 * j11 * s[b]
            vP[2, b] = (vt0 * j02 + vt1 * j12) * s[b]
        if want_pose:  # P = Rc Rq: d loss / d Rc = vP Rq^T
            for a in range(3):
                for c in range(3):
                    pose_terms[i, 3 * a + c] = vP[a, 0] * Rq[c, 0] + vP[a, 1] * Rq[c, 1] + vP[a, 2] * Rq[c, 2]
        G = np.empty((3, 3))  # d loss / d Rq = Rc^T vP
        for a in range(3):
            for b in range(3):
                G[a, b] = Rc[0, a] * vP[0, b] + Rc[1, a] * vP[1, b] + Rc[2, a] * vP[2, b]
        vw = 2 * (-z_ * G[0, 1] + y_ * G[0, 2] + z_ * G[1, 0] - x_ * G[1, 2] - y_ * G[2, 0] + x_ * G[2, 1])
        vx = 2 * (y_ * G[0, 1] + z_ * G[0, 2] + y_ * G[1, 0] - 2 * x_ * G[1, 1] - w_ * G[1, 2] + z_ * G[2, 0]
                  + w_ * G[2, 1] - 2 * x_ * G[2, 2])
        vy = 2 * (-2 * y_ * G[0, 0] + x_ * G[0, 1] + w_ * G[0, 2] + x_ * G[1, 0] + z_ * G[1, 2] - w_ * G[2, 0]
                  + z_ * G[2, 1] - 2 * y_ * G[2, 2])
        vz = 2 * (-2 * z_ * G[0, 0] - w_ * G[0, 1] + x_ * G[0, 2] + w_ * G[1, 0] - 2 * z_ * G[1, 1] + y_ * G[1, 2]
                  + x_ * G[2, 0] + y_ * G[2, 1])
        dot = w_ * vw + x_ * vx + y_ * vy + z_ * vz
        g_quats[i, 0] = (vw - w_ * dot) / qn
        g_quats[i, 1] = (vx - x_ * dot) / qn
        g_quats[i, 2] = (vy - y_ * dot) / qn
        g_quats[i, 3] = (vz - z_ * dot) / qn
        # Jacobian entries -> camera-space mean (tx, ty follow x, y inside the clamp, else z * limit).
        v_z += -(v_j00 * fx + v_j11 * fy) * rz * rz + 2.0 * (v_j02 * fx * tx + v_j12 * fy * ty) * rz * rz * rz
        v_tx = -v_j02 * fx * rz * rz
        v_ty = -v_j12 * fy * rz * rz
        if -lim_x_neg <= x_ratio <= lim_x_pos:
            v_x += v_tx
        else:
            v_z += v_tx * (tx * rz)
        if -lim_y_neg <= y_ratio <= lim_y_pos:
            v_y += v_ty
        else:
            v_z += v_ty * (ty * rz)
        # 2D mean.
        vu, vv = np.float64(v_means2d[i, 0]), np.float64(v_means2d[i, 1])
        v_x += vu * fx * rz
        v_y += vv * fy * rz
        v_z += -(vu * fx * x + vv * fy * y) * rz * rz
        for a in range(3):
            g_means[i, a] += Rc[0, a] * v_x + Rc[1, a] * v_y + Rc[2, a] * v_z
        if want_pose:  # camera-space mean = Rc p + tc
            pose_terms[i, 0] += v_x * mx
            pose_terms[i, 1] += v_x * my
            pose_terms[i, 2] += v_x * mz
            pose_terms[i, 3] += v_y * mx
            pose_terms[i, 4] += v_y * my
            pose_terms[i, 5] += v_y * mz
            pose_terms[i, 6] += v_z * mx
            pose_terms[i, 7] += v_z * my
            pose_terms[i, 8] += v_z * mz
            pose_terms[i, 9] = v_x
            pose_terms[i, 10] = v_y
            pose_terms[i, 11] = v_z


def pose_gradient(pose_terms: np.ndarray, Rc: np.ndarray, tc: np.ndarray) -> np.ndarray:
    """(4,4) gradient of the loss w.r.t. the world->camera matrix from ``project_backward``'s pose terms.

    The SH colours see the camera centre c = -Rc^T tc; its gradient is minus the summed direction
    gradient, which reaches Rc and tc through that formula."""
    total = pose_terms.sum(axis=0)
    g_dir = total[12:15]
    grad = np.zeros((4, 4))
    grad[:3, :3] = total[:9].reshape(3, 3) + np.outer(tc, g_dir)
    grad[:3, 3] = total[9:12] + Rc @ g_dir
    return grad


class ProjectCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, log_scales, logits, sh, viewmat, degree: int, camera: Camera):
        n = means.shape[0]
        dtype = means.dtype
        if viewmat is None:
            Rc, tc = camera.R, camera.t
        else:
            pose = viewmat.detach().cpu().to(torch.float64).numpy()
            Rc, tc = pose[:3, :3], pose[:3, 3]
        Rc = np.ascontiguousarray(Rc, dtype=np.float64)
        tc = np.ascontiguousarray(tc, dtype=np.float64)
        campos = -Rc.T @ tc
        arrays = [t.detach().contiguous().numpy() for t in (means, quats, log_scales, logits, sh)]
        np_dtype = arrays[0].dtype
        means2d = np.empty((n, 2), np_dtype)
        conics = np.empty((n, 3), np_dtype)
        opacities = np.empty(n, np_dtype)
        colors = np.empty((n, 3), np_dtype)
        depths = np.empty(n, np_dtype)
        radii = np.empty((n, 2), np.int32)
        cam = (Rc, tc, campos, camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)
        project_forward(*arrays, degree, *cam, means2d, conics, opacities, colors, depths, radii)
        ctx.saved = (arrays, degree, cam, radii, opacities, conics, colors)
        out = [torch.from_numpy(a) for a in (means2d, conics, opacities, colors, depths)]
        radii_t = torch.from_numpy(radii)
        ctx.mark_non_differentiable(radii_t)
        return (*[o.to(dtype) for o in out], radii_t)

    @staticmethod
    def backward(ctx, v_means2d, v_conics, v_opacities, v_colors, v_depths, _v_radii):
        arrays, degree, cam, radii, opacities, conics, colors = ctx.saved
        n = arrays[0].shape[0]

        def np_grad(g, shape):
            if g is None:
                return np.zeros(shape)
            return g.detach().to(torch.float64).contiguous().numpy()

        grads_in = [np_grad(v_means2d, (n, 2)), np_grad(v_conics, (n, 3)), np_grad(v_opacities, (n,)),
                    np_grad(v_colors, (n, 3)), np_grad(v_depths, (n,))]
        means, quats, log_scales, logits, sh = arrays
        g_means = np.empty((n, 3))
        g_quats = np.empty((n, 4))
        g_log_scales = np.empty((n, 3))
        g_logits = np.empty(n)
        g_sh = np.empty(sh.shape)
        want_pose = ctx.needs_input_grad[5]
        pose_terms = np.empty((n if want_pose else 0, 15))
        project_backward(*arrays, degree, *cam, radii, opacities, conics, colors, *grads_in,
                         g_means, g_quats, g_log_scales, g_logits, g_sh, pose_terms)
        dtype = torch.float64 if means.dtype == np.float64 else torch.float32
        outs = [torch.from_numpy(g).to(dtype) for g in (g_means, g_quats, g_log_scales, g_logits, g_sh)]
        g_pose = torch.from_numpy(pose_gradient(pose_terms, cam[0], cam[1])).to(dtype) if want_pose else None
        return (*outs, g_pose, None, None)


def project_cpu(scene: GaussianScene, camera: Camera, sh_degree: int, features: torch.Tensor | None,
                viewmat: torch.Tensor | None = None) -> Projection:
    """Like ``projection.project`` but rows are all N Gaussians (culled ones have radii 0)."""
    means2d, conics, opacities, colors, depths, radii = ProjectCPU.apply(
        scene.means, scene.quats, scene.log_scales, scene.opacity_logits, scene.sh, viewmat, sh_degree, camera
    )
    if means2d.requires_grad:
        means2d.retain_grad()
    n = len(scene)
    return Projection(
        index=torch.arange(n),
        means2d=means2d,
        conics=conics,
        opacities=opacities,
        depths=depths,
        radii=radii,
        colors=colors,
        features=features,
        means2d_full=means2d,
        radii_full=radii,
        depths_full=depths.detach(),
    )
