"""The quality knob: low / medium / high, each a pruning share, an SH tolerance and codec settings,
with a size prediction that needs no encoding (for dialogs) and the quality loss measured for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.compress.scene_codec import CodecSettings
from engine.errors import InputError


@dataclass(frozen=True)
class Quality:
    name: str
    kept_share: float  # prune until the kept Gaussians hold this share of the total contribution
    sh_tolerance: float  # RMS colour a Gaussian's cut SH bands may add up to
    settings: CodecSettings
    # Measured by benchmarks/compress_bench.py (PSNR of held-out renders against the uncompressed scene's
    # renders; mean of lego, 25 views, and fern, 17 views at 504 px, CPU Standard scenes of 22-25k splats,
    # SH distilled, no fine-tune); shown before writing.
    expected_psnr_vs_original: float
    # Bytes per kept splat, mean over the benchmark scenes: the size prediction before encoding.
    bytes_per_kept_splat: float
    expected_kept_fraction: float


# Scales and rotations use fixed point, not codebooks: on the benchmark scenes (13k splats) a k-means
# codebook of scales cost 14 dB of PSNR against the original for the same bytes as 8-bit fixed point.
QUALITIES = {
    "high": Quality(
        "high", 0.9999, 0.002,
        CodecSettings(means="q16", opacity="q8", dc="q8", log_scales="q8", quats="q8",
                      sh_rest="vq4096", features="f16", zstd_level=19),
        expected_psnr_vs_original=44.0, bytes_per_kept_splat=11.8, expected_kept_fraction=0.75,
    ),
    "medium": Quality(
        "medium", 0.999, 0.005,
        CodecSettings(means="q15", opacity="q7", dc="q7", log_scales="q7", quats="q7",
                      sh_rest="vq2048", features="f16", zstd_level=19),
        expected_psnr_vs_original=40.0, bytes_per_kept_splat=10.2, expected_kept_fraction=0.71,
    ),
    "low": Quality(
        "low", 0.995, 0.01,
        CodecSettings(means="q14", opacity="q6", dc="q6", log_scales="q6", quats="q6",
                      sh_rest="vq1024", features="f16", zstd_level=19),
        expected_psnr_vs_original=34.0, bytes_per_kept_splat=8.6, expected_kept_fraction=0.65,
    ),
}
QUALITY_NAMES = tuple(QUALITIES)


def quality(name: str) -> Quality:
    try:
        return QUALITIES[name]
    except KeyError:
        raise InputError(f"unknown quality {name!r}", hint=f"choose one of {', '.join(QUALITIES)}") from None


def predicted_bytes(num_gaussians: int, name: str) -> int:
    """Size of a compressed .handful file for a scene of ``num_gaussians``, before any work is done."""
    q = quality(name)
    return int(num_gaussians * q.expected_kept_fraction * q.bytes_per_kept_splat) + 2048


__all__ = ["Quality", "QUALITIES", "QUALITY_NAMES", "quality", "predicted_bytes"]
