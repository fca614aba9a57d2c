"""Quantisation-aware fine-tuning: the hook renders exactly what the file will hold, gradients pass the
rounding, and a fine-tune through it keeps more quality than rounding a scene tuned without it."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from engine.compress import codec
from engine.compress.importance import contributions
from engine.compress.qat import CodecRounding
from engine.compress.scene_codec import CodecSettings, decode_scene, encode_scene
from engine.metrics import psnr
from engine.render import render
from engine.train.config import TrainConfig
from engine.train.loop import train
from tests.factories import orbit_cameras, random_scene

BACKEND = "reference"
COARSE = CodecSettings(means="q10", opacity="q4", dc="vq64", log_scales="q4", quats="q4", sh_rest="vq32")


def _rows_in_file_order(scene, bits):
    """The encoder's Morton order of ``scene``'s splats (positions quantised to ``bits``)."""
    means = scene.means.numpy().astype(np.float64)
    cells = codec.quantize_range(means, means.min(axis=0), means.max(axis=0), bits)
    return np.argsort(codec.morton_encode_63(cells), kind="stable")


def test_the_rounded_scene_is_what_the_file_decodes_to():
    scene = random_scene(600, sh_degree=2, extent=0.6)
    for settings in (COARSE, CodecSettings(means="q14", opacity="q6", dc="q5", log_scales="vq128",
                                           quats="vq256", sh_rest="vq64")):
        rounding = CodecRounding(scene, settings)
        rounded = rounding.rounded(scene)
        back = decode_scene(encode_scene(scene, settings, codebooks=rounding.codebooks(scene)))
        order = _rows_in_file_order(scene, int(settings.means[1:]))
        ours = rounded.subset(torch.as_tensor(order))
        # positions, scales, opacity and colours to float32 rounding of the same grid points
        for name in ("means", "log_scales", "opacity_logits", "sh"):
            np.testing.assert_allclose(getattr(back, name).numpy(), getattr(ours, name).numpy(), atol=1e-4)
        # rotations: the same rotation (the hook keeps each input's sign and length)
        unit = ours.quats / ours.quats.norm(dim=1, keepdim=True)
        dots = (unit * (back.quats / back.quats.norm(dim=1, keepdim=True))).sum(1).abs()
        assert float(dots.min()) > 1 - 1e-5
        assert float((unit * scene.quats[torch.as_tensor(order)]).sum(1).min()) > 0  # same hemisphere


def test_rounding_is_coarse_and_gradients_pass_it_unchanged():
    scene = random_scene(300, sh_degree=1, extent=0.6)
    rounding = CodecRounding(scene, COARSE)
    means = scene.means.clone().requires_grad_(True)
    dc = scene.sh.clone().requires_grad_(True)
    moved = dataclasses.replace(scene, means=means, sh=dc)
    out = rounding.rounded(moved, straight_through=True)
    plain = rounding.rounded(scene)
    # x + (round(x) - x) is round(x) up to one float32 rounding
    torch.testing.assert_close(out.means.detach(), plain.means, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.sh.detach(), plain.sh, atol=1e-6, rtol=0)
    assert float((out.sh - scene.sh).abs().max()) > 1e-3  # a 64-word colour codebook does change colours
    weights = torch.randn_like(out.means)
    (out.means * weights).sum().backward()
    assert torch.equal(means.grad, weights)
    (out.sh * 2.0).sum().backward()
    assert torch.equal(dc.grad, torch.full_like(dc, 2.0))
    assert len(np.unique(plain.sh[:, 0].numpy(), axis=0)) <= 64


def _fit(scene, cams, photos, hooks, steps=150):
    config = TrainConfig(iterations=steps, backend=BACKEND, sh_degree=scene.sh_degree, sh_interval=1,
                         strategy="none", refine_start=steps + 1, start_resolution=1.0, lr_means=1.6e-5,
                         lr_means_final=1.6e-6, progress_every_s=1e9, snapshot_every_s=1e9, metrics_every=10**9)
    return train(scene, cams, photos, config, hooks=hooks).scene


def test_a_fine_tune_through_the_rounding_keeps_more_than_rounding_after_a_plain_one():
    truth = random_scene(250, sh_degree=0, extent=0.6, seed=3)
    cams = orbit_cameras(4, width=40, image_height=32)
    photos = [render(truth, c, background=(0, 0, 0), backend=BACKEND).rgb.clamp(0, 1) for c in cams]
    start = truth
    # coarse codebooks of colours and scales, where rounding a scene tuned without them costs the most
    settings = CodecSettings(means="q12", opacity="q6", dc="vq8", log_scales="vq8", quats="q6")

    def score(scene, rounding=None):  # the fine-tuned scene is stored with the codebooks it was trained with
        rounding = rounding or CodecRounding(scene, settings, weights)
        back = decode_scene(encode_scene(scene, settings, codebooks=rounding.codebooks(scene)))
        return np.mean([psnr(render(back, c, background=(0, 0, 0), backend=BACKEND).rgb.clamp(0, 1), p)
                        for c, p in zip(cams, photos)])

    weights = contributions(start, cams, backend=BACKEND)
    plain = score(_fit(start, cams, [p.numpy() for p in photos], []))
    rounding = CodecRounding(start, settings, weights)
    aware = score(_fit(start, cams, [p.numpy() for p in photos], [rounding]), rounding)
    assert aware > plain + 1.0, (aware, plain)
