"""The preset a job uses when none is chosen follows the device it trains on (CLI and JobOptions)."""

import pytest
import torch

from engine.__main__ import build_parser
from engine.job import Job, JobOptions
from engine.render import gsplat_backend
from engine.train import default_preset, describe_preset, preset


def test_default_preset_is_preview_on_a_cpu_and_standard_on_a_gpu(monkeypatch):
    assert default_preset("cpu") == "preview"
    assert default_preset("cuda") == "standard" and default_preset("cuda:0") == "standard"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_preset("auto") == "preview"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_preset("auto") == "standard"


def test_a_job_without_a_preset_takes_the_one_for_its_training_device(tmp_path, monkeypatch):
    assert JobOptions().preset == "auto"
    assert Job([tmp_path], tmp_path / "cpu", JobOptions(device="cpu")).options.preset == "preview"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gsplat_backend, "kernel_status", lambda: (True, ""))
    assert Job([tmp_path], tmp_path / "gpu", JobOptions()).options.preset == "standard"
    # a GPU whose kernels do not load trains on the CPU: the CPU's preset
    monkeypatch.setattr(gsplat_backend, "kernel_status", lambda: (False, "no kernels"))
    assert Job([tmp_path], tmp_path / "fallback", JobOptions()).options.preset == "preview"
    # a chosen preset is kept, and the fingerprint records the resolved one (resume sees no change)
    chosen = Job([tmp_path], tmp_path / "high", JobOptions(device="cpu", preset="high"))
    assert chosen.options.preset == "high" and chosen.options.fingerprint("train")["preset"] == "high"


def test_reconstruct_cli_defaults_to_the_device_preset():
    args = build_parser().parse_args(["reconstruct", "photos", "-o", "out"])
    assert args.preset == "auto"
    assert build_parser().parse_args(["reconstruct", "p", "-o", "o", "--preset", "high"]).preset == "high"


def test_describe_preset_says_what_the_preset_does():
    cfg = preset("standard", num_images=12, device="cpu")
    text = describe_preset("standard", 12, "cpu")
    assert f"{cfg.iterations:,} steps" in text and f"{cfg.max_image_side} px" in text and f"{cfg.cap_max:,} splats" in text
    assert describe_preset("preview", 12, "cpu") != text
    assert "full size" in describe_preset("high", 12, "cuda")  # the GPU's High trains at full resolution
