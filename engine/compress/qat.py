"""Quantisation-aware fine-tuning: train the scene as the .handful codec will store it.

``CodecRounding`` is a training hook (``engine.train.hooks.Hook``). Every step renders the scene with each
attribute rounded exactly as ``encode_scene`` then ``decode_scene`` round it (fixed point on the values' own
range, smallest-three rotations, opacity in sigmoid space, 8-bit codebook words), and lets the gradient
pass through the rounding unchanged (the straight-through estimator of Compact3D and other
quantisation-aware training). The other Gaussians then learn to make up for each one's rounding, which a
fine-tune of the unrounded scene cannot teach them.

Codebook labels are fixed when the hook is made (k-means once, as the writer would fit them). Each step a
word is the importance-weighted mean of its splats' current values, so it moves with its members' updates;
``codebooks(scene)`` hands the words and labels to ``encode_scene`` so that the file holds exactly what was
trained. Hand-written because no library rounds to this file format's quantisers.
"""

from __future__ import annotations

import numpy as np
import torch

from engine.compress import codec
from engine.compress.scene_codec import CodecSettings, codebook_words, fit_codebook, quats_for_codebook, spec_kind
from engine.scene import GaussianScene
from engine.train.hooks import Hook


def _round_range(values: np.ndarray, bits: int) -> np.ndarray:
    """Fixed point on each column's own [min, max], as the writer's ``uniform`` codec stores it."""
    lo, hi = codec.column_range(values)
    return codec.dequantize_range(codec.quantize_range(values, lo, hi, bits), lo, hi, bits)


def _round_smallest_three(quats: np.ndarray, bits: int) -> np.ndarray:
    largest, others = codec.smallest_three(codec.normalize_quats(quats))
    q = codec.unorm(others * codec.SQRT1_2 + 0.5, bits)
    return codec.from_smallest_three(largest, (codec.from_unorm(q, bits) - 0.5) / codec.SQRT1_2)


def _same_hemisphere(rounded: np.ndarray, quats: np.ndarray) -> np.ndarray:
    """``rounded`` (the same rotations) with the sign and length of ``quats``, so that a gradient passed
    straight through to ``quats`` points the right way (q and -q are one rotation)."""
    sign = np.where(np.einsum("ij,ij->i", rounded, quats) < 0, -1.0, 1.0)
    norm = np.linalg.norm(rounded, axis=1) + 1e-300
    return rounded * (sign * np.linalg.norm(quats, axis=1) / norm)[:, None]


class CodecRounding(Hook):
    """Rounds a scene to ``settings`` (see the module docstring); made from the scene the fine-tune starts
    from, whose Gaussians keep their number and order until the end."""

    def __init__(self, scene: GaussianScene, settings: CodecSettings, weights: np.ndarray | None = None):
        self.settings = settings.validate()
        self._labels: dict[str, tuple[np.ndarray, bool]] = {}
        self._books: dict[str, np.ndarray] = {}
        # a word is its splats' importance-weighted mean: Adam moves every splat's copy by about its learning
        # rate however little the splat shows, so an unweighted mean would follow the splats nobody sees
        self._weights = np.ones(len(scene)) if weights is None else np.asarray(weights, np.float64) + 1e-12
        for name, values, zero_word in self._vq_values(_attributes(scene)):
            book, labels = fit_codebook(values, spec_kind(getattr(self.settings, name))[1], weights, zero_word)
            self._labels[name] = (labels, zero_word)
            self._books[name] = book

    def _vq_values(self, attrs: dict[str, np.ndarray]):
        """(attribute, (N, D) values as the codebook sees them, zero word) for each codebook attribute."""
        for name in ("dc", "log_scales", "quats", "sh_rest"):
            if name in attrs and spec_kind(getattr(self.settings, name))[0] == "vq":
                values = quats_for_codebook(attrs[name]) if name == "quats" else attrs[name]
                yield name, values, name == "sh_rest"

    def codebooks(self, scene: GaussianScene) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{attribute: (codebook, labels)} of ``scene`` for ``encode_scene(codebooks=)``."""
        return self._codebooks(_attributes(scene))

    def _codebooks(self, attrs: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {name: (self._words(name, values), self._labels[name][0]) for name, values, _ in self._vq_values(attrs)}

    def _words(self, name: str, values: np.ndarray) -> np.ndarray:
        """The codebook with each word the weighted mean of its splats' ``values`` (a word nobody uses stays)."""
        labels, zero_word = self._labels[name]
        book = self._books[name].astype(np.float64)
        count = np.bincount(labels, weights=self._weights, minlength=len(book))
        sums = np.zeros_like(book)
        np.add.at(sums, labels, values * self._weights[:, None])
        used = count > 0
        book[used] = sums[used] / count[used, None]
        if zero_word:
            book[0] = 0.0
        return book.astype(np.float32)

    def rounded(self, scene: GaussianScene, straight_through: bool = False) -> GaussianScene:
        """``scene`` as the codec stores it; ``straight_through``: each value is ``x + (round(x) - x)``
        with the difference detached, so gradients reach ``x`` as if nothing were rounded."""
        attrs = _attributes(scene)
        books = self._codebooks(attrs)
        s = self.settings
        out: dict[str, np.ndarray] = {}
        for name, spec in (("means", s.means), ("dc", s.dc), ("log_scales", s.log_scales), ("sh_rest", s.sh_rest)):
            if name not in attrs:
                continue
            kind, arg = spec_kind(spec)
            if kind == "q":
                out[name] = _round_range(attrs[name], arg)
            elif kind == "vq":
                book, labels = books[name]
                out[name] = codebook_words(book, self._labels[name][1])[labels]
            else:
                out[name] = attrs[name].astype(np.float32)
        kind, arg = spec_kind(s.opacity)
        if kind == "q":
            edge = 0.5 / ((1 << arg) - 1)  # the reader's
            out["opacity"] = codec.logit(_round_range(codec.sigmoid(attrs["opacity"])[:, None], arg)[:, 0], edge)
        else:
            out["opacity"] = attrs["opacity"].astype(np.float32)
        kind, arg = spec_kind(s.quats)
        quats = attrs["quats"]
        if kind == "q":
            out["quats"] = _same_hemisphere(_round_smallest_three(quats, arg), quats)
        elif kind == "vq":
            book, labels = books["quats"]
            out["quats"] = _same_hemisphere(codebook_words(book, False)[labels].astype(np.float64), quats)
        else:
            out["quats"] = quats.astype(np.float32)

        def back(x: torch.Tensor, values: np.ndarray) -> torch.Tensor:
            v = torch.as_tensor(np.asarray(values), dtype=x.dtype, device=x.device).reshape(x.shape)
            return x + (v - x).detach() if straight_through else v

        sh = scene.sh
        dc = back(sh[:, 0], out["dc"])[:, None]
        parts = [dc, back(sh[:, 1:], out["sh_rest"])] if sh.shape[1] > 1 else [dc]
        return GaussianScene(
            means=back(scene.means, out["means"]), quats=back(scene.quats, out["quats"]),
            log_scales=back(scene.log_scales, out["log_scales"]),
            opacity_logits=back(scene.opacity_logits, out["opacity"]), sh=torch.cat(parts, dim=1),
            group_ids=scene.group_ids, features=scene.features,
        )

    def transform_scene(self, scene, step, total, generator):
        return self.rounded(scene, straight_through=True)


def _attributes(scene: GaussianScene) -> dict[str, np.ndarray]:
    """The scene's attributes as float64 rows, named as ``CodecSettings`` names them."""
    f = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
    sh = f(scene.sh)
    attrs = {"means": f(scene.means), "quats": f(scene.quats), "log_scales": f(scene.log_scales),
             "opacity": f(scene.opacity_logits), "dc": sh[:, 0]}
    if sh.shape[1] > 1:
        attrs["sh_rest"] = sh[:, 1:].reshape(len(sh), -1)
    return attrs


__all__ = ["CodecRounding"]
