"""``encode_scene(scene) -> bytes`` / ``decode_scene(bytes) -> scene``: the .handful scene codec.

Each attribute has its own codec, named by a short spec in :class:`CodecSettings`:

- ``"f32"``: lossless float32 (byte planes, then zstd); the splats keep their order.
- ``"q<b>"``: uniform ``b``-bit quantisation over the attribute's per-column range (error <= half a
  step); for positions this means fixed point on a ``2^b`` grid over the bounds, the splats sorted by
  the exact Morton code of their cells and the sorted codes stored as gaps (delta coding); for
  rotations, the smallest-three packing with ``b`` bits per component; for opacity, sigmoid(logit).
- ``"vq<k>"``: a k-means codebook of ``k`` words (8 bits per value on a grid symmetric about 0; float16
  before version 3) and one index per splat (SH words start with a reserved all-zero word, so the
  splats whose higher bands were cut cost one shared index).

With the splats in Morton order (quantised positions), each integer stream whose values code smaller as
differences from the previous splat's is stored that way and listed in the header's "predicted".

Every stream goes through zstd; the container (``container.py``) adds the version and checksum.
"""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import Executor, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from engine.compress import codec, container
from engine.compress import decode_blocks as blocks
from engine.errors import FormatError, InputError
from engine.scene import GaussianScene, SceneError, sh_coeffs_for_degree

_SPEC = re.compile(r"^(f32|q(\d+)|vq(\d+))$")


@dataclass(frozen=True)
class CodecSettings:
    """One codec spec per attribute (see the module docstring); the default is lossless."""

    means: str = "f32"
    opacity: str = "f32"
    dc: str = "f32"
    log_scales: str = "f32"
    quats: str = "f32"
    sh_rest: str = "f32"
    features: str = "f32"  # identity features: "f32" or "f16"
    zstd_level: int = 9

    def validate(self) -> "CodecSettings":
        limits = {"means": 21, "opacity": 16, "dc": 16, "log_scales": 16, "quats": 15, "sh_rest": 16}
        for name, top in limits.items():
            spec = getattr(self, name)
            m = _SPEC.match(spec)
            if not m or (m.group(2) and not 1 <= int(m.group(2)) <= top) or (m.group(3) and not 1 <= int(m.group(3)) <= 65536):
                raise InputError(f"codec {spec!r} for {name} is not f32, q1-q{top} or vq1-vq65536")
            if name in ("means", "opacity") and spec.startswith("vq"):
                raise InputError(f"{name} cannot use a codebook; use f32 or q<bits>")
        if self.features not in ("f32", "f16"):
            raise InputError(f"features codec {self.features!r} is not f32 or f16")
        if not 1 <= self.zstd_level <= 22:
            raise InputError(f"zstd level {self.zstd_level} is not 1-22")
        return self

    @property
    def lossless(self) -> bool:
        return all(getattr(self, f.name) == "f32" for f in fields(self) if f.name not in ("zstd_level",))


LOSSLESS = CodecSettings()
# One word per 32 splats: on the 16k-splat lego with all SH bands (87 % kept), one per 8 made the float16
# SH codebook 10 of the 18.4 bytes per splat; one per 32 gave 11.9 bytes per splat for 0.017 dB of held-out
# PSNR (benchmarks/compress_bench.py, medium).
SPLATS_PER_WORD = 32


def spec_kind(spec: str) -> tuple[str, int]:
    m = _SPEC.match(spec)
    return ("f32", 32) if m.group(1) == "f32" else ("q", int(m.group(2))) if m.group(2) else ("vq", int(m.group(3)))


def _nbytes(bits: int) -> int:
    return max(1, math.ceil(bits / 8))


# ===================================================================== encoding


def _rows(values: np.ndarray) -> np.ndarray:
    """(N, D) view (reshape(N, -1) fails for N = 0)."""
    return values.reshape(len(values), int(np.prod(values.shape[1:], dtype=np.int64)))


# a stream is stored as differences from the previous splat's values when that saves at least this share of
# its order-0 entropy (so that a near tie does not flip between files of one scene)
PREDICTION_GAIN = 0.03


class _Writer:
    def __init__(self, predict: bool = False):
        self.streams: dict[str, bytes] = {}
        self.predict = predict  # the splats are in Morton order: neighbours in the file are near in space
        self.predicted: dict[str, dict] = {}

    def predicted_ints(self, name: str, values: np.ndarray, bits: int) -> None:
        """``values`` (N, D) as rows of ``bits``-bit integers, or their differences from the row before
        (``codec.predict_previous``, listed in the header's "predicted") where those code smaller."""
        values = np.asarray(values).reshape(len(values), -1)
        if self.predict and len(values) > 1:
            residuals = codec.predict_previous(values, bits)
            if codec.entropy_bits(residuals, bits) < (1 - PREDICTION_GAIN) * codec.entropy_bits(values, bits):
                self.predicted[name] = {"dim": values.shape[1], "bits": bits}
                values = residuals
        self.ints(name, values, bits)

    def floats(self, name: str, values: np.ndarray) -> dict:
        v = np.ascontiguousarray(values, dtype="<f4")
        self.streams[name] = codec.byte_planes(v.view("<u4").reshape(-1), 4)
        return {"codec": "f32", "dim": int(np.prod(v.shape[1:], dtype=np.int64))}

    def ints(self, name: str, values: np.ndarray, bits: int) -> None:
        self.streams[name] = codec.byte_planes(np.asarray(values).reshape(-1).astype(np.uint64), _nbytes(bits))

    def uniform(self, name: str, values: np.ndarray, bits: int) -> dict:
        values = _rows(values).astype(np.float64)
        lo, hi = codec.column_range(values)
        self.predicted_ints(name, codec.quantize_range(values, lo, hi, bits), bits)
        return {"codec": "q", "bits": bits, "dim": values.shape[1], "lo": lo.tolist(), "hi": hi.tolist()}

    def codebook(self, name: str, values: np.ndarray, k: int, weights, zero_word: bool = False,
                 fitted: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
        """``fitted``: (codebook, labels) to store as they are (a quantisation-aware fine-tune's), with the
        labels in this writer's splat order; otherwise k-means fits them here."""
        book, labels = fitted if fitted is not None else fit_codebook(values, k, weights, zero_word)
        book = np.asarray(book, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.int64)
        stored, lo, hi = _stored_words(book, zero_word)
        self.streams[f"{name}.codebook"] = codec.quantize_range(stored, lo, hi, 8).astype(np.uint8).tobytes()
        bits = max(1, int(len(book) - 1).bit_length())
        self.predicted_ints(name, labels, bits)
        return {"codec": "vq", "k": len(book), "bits": bits, "dim": book.shape[1],
                "book": {"bits": 8, "lo": lo.tolist(), "hi": hi.tolist(), "zero_word": bool(zero_word)}}


def fit_codebook(values: np.ndarray, k: int, weights=None, zero_word: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(codebook (k', D) float32, labels (N,)) of ``values`` for a ``vq<k>`` spec: k-means weighted by
    importance; with ``zero_word`` word 0 is all zeros and holds exactly the all-zero rows (cut SH bands)."""
    values = _rows(values).astype(np.float32)
    dim = values.shape[1]
    labels = np.zeros(len(values), dtype=np.int64)
    words = [np.zeros((1, dim), np.float32)] if zero_word else []
    rows = np.flatnonzero(np.abs(values).max(axis=1) > 0) if zero_word else np.arange(len(values))
    # a codebook much larger than a small scene costs more bytes than it saves: at most one word
    # per SPLATS_PER_WORD splats (the spec's k is the ceiling, reached from k * SPLATS_PER_WORD up)
    k = min(k, max(16, len(rows) // SPLATS_PER_WORD + len(words)))
    if len(rows):
        from engine.compress.vq import kmeans  # scipy.sparse: a reader never needs it

        book, lab = kmeans(values[rows], k - len(words), weights=None if weights is None else np.asarray(weights)[rows])
        labels[rows] = lab + len(words)
        words.append(book)
    return (np.concatenate(words) if words else np.zeros((0, dim), np.float32)), labels


def _stored_words(book: np.ndarray, zero_word: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the words a file stores, each column's lo and hi): 8-bit words on each column's range, and the
    reserved zero word is not stored (it stays exact). Half the bytes of float16, and a step of 1/255 of
    the range is far below the codebook's own error."""
    stored = book[1:] if zero_word else book
    return (stored, *codec.column_range(stored))


def codebook_words(book: np.ndarray, zero_word: bool) -> np.ndarray:
    """The words as a reader gets them (``_stored_words``)."""
    stored, lo, hi = _stored_words(book, zero_word)
    if not len(stored):
        return np.asarray(book, np.float32)
    words = codec.dequantize_range(codec.quantize_range(stored, lo, hi, 8), lo, hi, 8, np.float32)
    return np.concatenate([np.zeros((1, book.shape[1]), np.float32), words]) if zero_word else words


def encode_scene(scene: GaussianScene, settings: CodecSettings = LOSSLESS, weights: np.ndarray | None = None,
                 codebooks: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> bytes:
    """The bytes of a .handful file holding ``scene`` (``weights``: per-splat importance for codebooks;
    ``codebooks``: {attribute: (codebook, labels in the scene's order)} to store instead of fitting them,
    see ``qat.CodecRounding``)."""
    settings = settings.validate()
    scene = scene.detach().to("cpu")
    n = len(scene)
    np_ = lambda t: t.numpy().astype(np.float64)  # noqa: E731
    means, quats, log_scales = np_(scene.means), np_(scene.quats), np_(scene.log_scales)
    logits, sh = np_(scene.opacity_logits), scene.sh.numpy()
    kind, bits = spec_kind(settings.means)
    w = _Writer(predict=kind == "q")
    attrs: dict[str, dict] = {}

    order = np.arange(n)
    if kind == "f32":
        attrs["means"] = w.floats("means", means)
    else:
        lo, hi = codec.column_range(means)
        cells = codec.quantize_range(means, lo, hi, bits)
        codes = codec.morton_encode_63(cells)
        order = np.argsort(codes, kind="stable")
        w.ints("means", codec.delta_encode(codes[order]), 3 * bits)
        attrs["means"] = {"codec": "q", "bits": bits, "dim": 3, "lo": lo.tolist(), "hi": hi.tolist(), "sorted": True}
    take = lambda a: a[order]  # noqa: E731
    weights = None if weights is None else np.asarray(weights, dtype=np.float64)[order]
    fitted = {name: (book, np.asarray(labels)[order]) for name, (book, labels) in (codebooks or {}).items()}

    kind, bits = spec_kind(settings.opacity)
    attrs["opacity"] = w.floats("opacity", take(logits)) if kind == "f32" else \
        {**w.uniform("opacity", codec.sigmoid(take(logits))[:, None], bits), "space": "sigmoid"}
    attrs["dc"] = _encode_plain(w, "dc", settings.dc, take(sh[:, 0].astype(np.float64)), weights, fitted)
    attrs["log_scales"] = _encode_plain(w, "log_scales", settings.log_scales, take(log_scales), weights, fitted)
    attrs["quats"] = _encode_quats(w, settings.quats, take(quats), weights, fitted)
    if sh.shape[1] > 1:
        rest = take(_rows(sh[:, 1:]).astype(np.float64))
        attrs["sh_rest"] = _encode_plain(w, "sh_rest", settings.sh_rest, rest, weights, fitted, zero_word=True)
    if scene.group_ids is not None:
        w.ints("group_ids", take(scene.group_ids.numpy().astype(np.int64)).astype(np.uint32), 32)
        attrs["group_ids"] = {"codec": "i32"}
    if scene.features is not None:
        feats = take(scene.features.numpy())
        if settings.features == "f16":
            w.streams["features"] = feats.astype("<f2").tobytes()
            attrs["features"] = {"codec": "f16", "dim": int(feats.shape[1])}
        else:
            attrs["features"] = w.floats("features", feats)
    header = {"count": n, "sh_degree": scene.sh_degree, "attributes": attrs, "settings": asdict(settings)}
    if w.predicted:
        header["predicted"] = w.predicted
    # predicted streams and 8-bit codebooks are version 3: an older reader would misread them
    v3 = bool(w.predicted) or any("book" in a for a in attrs.values())
    with ThreadPoolExecutor(decode_threads(), thread_name_prefix="handful-encode") as pool:
        return container.pack(header, w.streams, settings.zstd_level, pool=pool, version_floor=3 if v3 else 1)


def _encode_plain(w: _Writer, name: str, spec: str, values: np.ndarray, weights, fitted: dict,
                  zero_word: bool = False) -> dict:
    kind, arg = spec_kind(spec)
    if kind == "f32":
        return w.floats(name, values)
    if kind == "q":
        return w.uniform(name, values, arg)
    return w.codebook(name, values, arg, weights, zero_word=zero_word, fitted=fitted.get(name))


def quats_for_codebook(quats: np.ndarray) -> np.ndarray:
    """Unit quaternions on the half with w >= 0 (q and -q are one rotation), as a codebook clusters them."""
    unit = codec.normalize_quats(quats)
    return np.where(unit[:, :1] < 0, -unit, unit)


def _encode_quats(w: _Writer, spec: str, quats: np.ndarray, weights, fitted: dict) -> dict:
    kind, arg = spec_kind(spec)
    if kind == "f32":
        return w.floats("quats", quats)
    if kind == "vq":
        return w.codebook("quats", quats_for_codebook(quats), arg, weights, fitted=fitted.get("quats"))
    unit = codec.normalize_quats(quats)
    largest, others = codec.smallest_three(unit)
    w.predicted_ints("quats.largest", largest.astype(np.uint8), 2)
    w.predicted_ints("quats", codec.unorm(others * codec.SQRT1_2 + 0.5, arg), arg)
    return {"codec": "smallest_three", "bits": arg, "dim": 4}


# ===================================================================== decoding
#
# Two decoders read the same streams: ``BlockStreams`` (blocks of rows on a thread pool, written straight
# into the scene's arrays; what ``decode_scene`` uses) and ``NumpyStreams`` (plain numpy on whole arrays,
# the readable reference the blocks are tested against, and the benchmark's baseline). Both fill float32
# arrays in place: ``into(name, meta, out, col, width)`` writes an attribute of ``width`` values per splat
# (by default the rest of the row) into ``out[:, col:col + width]``, so that DC and the higher SH bands
# land in one (N, K, 3) array without a copy.


class _Streams:
    def __init__(self, streams: dict[str, bytes], n: int, path):
        self.streams, self.n, self.path = streams, n, path

    def raw(self, name: str, size: int) -> bytes:
        data = self.streams.get(name)
        if data is None:
            raise FormatError(f"has no {name} stream", self.path, "the file is damaged or from an unknown writer")
        if len(data) != size:
            raise FormatError(f"has a {name} stream of {len(data):,} bytes where {size:,} are needed", self.path)
        return data

    def planes(self, name: str, count: int, bits: int) -> np.ndarray:
        """The stream as (nbytes, count) uint8 byte planes (no copy)."""
        nb = _nbytes(bits)
        return np.frombuffer(self.raw(name, count * nb), dtype=np.uint8).reshape(nb, count)

    def codebook(self, name: str, meta: dict) -> np.ndarray:
        k, dim = int(meta["k"]), int(meta["dim"])
        if "book" not in meta:  # versions 1-2: float16 words
            return np.frombuffer(self.raw(f"{name}.codebook", k * dim * 2), "<f2").reshape(k, dim).astype(np.float32)
        book = meta["book"]
        if int(book["bits"]) != 8:
            raise FormatError(f"stores its {name} codebook with {book['bits']}-bit words", self.path, "update Handful")
        zero = 1 if book["zero_word"] else 0
        if k < zero:
            raise FormatError(f"has an empty {name} codebook", self.path, "the file is damaged")
        lo, hi = (np.asarray(book[key], dtype=np.float64).reshape(dim) for key in ("lo", "hi"))
        q = np.frombuffer(self.raw(f"{name}.codebook", (k - zero) * dim), np.uint8).reshape(k - zero, dim)
        words = codec.dequantize_range(q, lo, hi, 8, np.float32)
        return np.concatenate([np.zeros((zero, dim), np.float32), words]) if zero else words

    def finish(self) -> None:
        """Wait for any decoding still running (a FormatError if it found impossible contents)."""

    def bad_index(self, name: str, k: int):
        return FormatError(f"has {name} indices past its {k}-word codebook", self.path)

    def check_dim(self, name: str, meta: dict, width: int) -> int:
        dim = int(meta["dim"])
        if dim != width:
            raise FormatError(f"stores {dim} values per splat for {name} where {width} are needed", self.path)
        return dim

    def unknown(self, name: str, kind):
        return FormatError(f"stores {name} with an unknown codec {kind!r}", self.path, "update Handful")

    def f16(self, name: str, dim: int) -> np.ndarray:
        return np.frombuffer(self.raw(name, self.n * dim * 2), "<f2").reshape(self.n, dim)


class NumpyStreams(_Streams):
    """The reference decoder: numpy on whole arrays, one step at a time."""

    def ints(self, name: str, count: int, bits: int) -> np.ndarray:
        nb = _nbytes(bits)
        return codec.from_byte_planes(self.raw(name, count * nb), count, nb)

    def words(self, name: str, count: int) -> np.ndarray:
        return self.ints(name, count, 32).astype(np.uint32)

    def attribute(self, name: str, meta: dict) -> np.ndarray:
        kind, dim = meta["codec"], int(meta["dim"])
        if kind == "f32":
            return self.words(name, self.n * dim).view("<f4").reshape(self.n, dim)
        if kind == "q":
            bits = int(meta["bits"])
            q = self.ints(name, self.n * dim, bits).reshape(self.n, dim)
            return codec.dequantize_range(q, np.asarray(meta["lo"]), np.asarray(meta["hi"]), bits, np.float32)
        if kind == "vq":
            labels = self.ints(name, self.n, int(meta["bits"])).astype(np.int64)
            book = self.codebook(name, meta)
            if len(labels) and labels.max() >= len(book):
                raise self.bad_index(name, len(book))
            return book[labels]
        raise self.unknown(name, kind)

    def into(self, name: str, meta: dict, out: np.ndarray, col: int = 0, width: int | None = None,
             logit_edge: float = 0.0) -> None:
        dim = self.check_dim(name, meta, out.shape[1] - col if width is None else width)
        values = self.attribute(name, meta)
        out[:, col : col + dim] = codec.logit(values, logit_edge) if logit_edge else values

    def sorted_means(self, meta: dict, out: np.ndarray) -> None:
        bits = int(meta["bits"])
        codes = codec.delta_decode(self.ints("means", self.n, 3 * bits))
        cells = codec.morton_decode_63(codes)
        out[:] = codec.dequantize_range(cells, np.asarray(meta["lo"]), np.asarray(meta["hi"]), bits)

    def smallest_three(self, meta: dict, out: np.ndarray) -> None:
        bits, n = int(meta["bits"]), self.n
        largest = self.ints("quats.largest", n, 2).astype(np.int64)
        if len(largest) and largest.max() > 3:
            raise FormatError("has a rotation with an impossible largest-component index", self.path)
        others = (codec.from_unorm(self.ints("quats", 3 * n, bits), bits).reshape(n, 3) - 0.5) / codec.SQRT1_2
        out[:] = codec.from_smallest_three(largest, others)


BLOCK_ROWS = 1 << 16  # a block's temporaries (up to 12 MB for 45 SH values per splat) stay small


def decode_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class BlockStreams(_Streams):
    """The decoder ``decode_scene`` uses: each attribute in blocks of rows (``decode_blocks``), the blocks
    run on ``pool``'s threads and written straight into the scene's arrays; ``finish`` waits for them."""

    def __init__(self, streams: dict[str, bytes], n: int, path, pool: Executor):
        super().__init__(streams, n, path)
        self.pool, self.jobs = pool, []

    def _blocks(self, step, *args, error=None) -> None:
        for r0 in range(0, self.n, BLOCK_ROWS):
            self.jobs.append((self.pool.submit(step, *args, r0, min(self.n, r0 + BLOCK_ROWS)), error))

    def finish(self) -> None:
        wait([job for job, _ in self.jobs])  # every block done before an error is raised: none writes later
        for job, error in self.jobs:
            if job.result() is False:
                raise error

    def words(self, name: str, count: int) -> np.ndarray:
        out = np.empty((count, 1), dtype=np.uint32)
        blocks.words_into(self.planes(name, count, 32), out, 0, 1, 0, count)
        return out[:, 0]

    def into(self, name: str, meta: dict, out: np.ndarray, col: int = 0, width: int | None = None,
             logit_edge: float = 0.0) -> None:
        kind = meta["codec"]
        dim = self.check_dim(name, meta, out.shape[1] - col if width is None else width)
        if kind == "f32":
            self._blocks(blocks.words_into, self.planes(name, self.n * dim, 32), out.view(np.uint32), col, dim)
        elif kind == "q":
            lo, hi = (np.asarray(meta[k], dtype=np.float64).reshape(dim) for k in ("lo", "hi"))
            bits = int(meta["bits"])
            if not 1 <= bits <= 32:
                raise FormatError(f"stores {name} with {bits}-bit values", self.path, "the file is damaged")
            table = blocks.uniform_table(bits, lo, hi, logit_edge)
            self._blocks(blocks.uniform_into, self.planes(name, self.n * dim, bits), bits, lo, hi, table, out, col,
                         logit_edge)
        elif kind == "vq":
            book = self.codebook(name, meta)
            self._blocks(blocks.gather_into, self.planes(name, self.n, int(meta["bits"])), book, out, col,
                         error=self.bad_index(name, len(book)))
        else:
            raise self.unknown(name, kind)

    def sorted_means(self, meta: dict, out: np.ndarray) -> None:
        bits = int(meta["bits"])
        if not 1 <= bits <= 21:
            raise FormatError(f"stores positions with {bits}-bit cells (at most 21)", self.path, "the file is damaged")
        lo, hi = (np.asarray(meta[k], dtype=np.float64).reshape(3) for k in ("lo", "hi"))
        gaps = self.planes("means", self.n, 3 * bits)
        codes = np.cumsum(blocks.ints(gaps, 0, self.n), dtype=np.uint64)  # a running sum: one pass, in order
        self._blocks(blocks.morton_means, codes, bits, lo, hi, out)

    def smallest_three(self, meta: dict, out: np.ndarray) -> None:
        bits = int(meta["bits"])
        if not 1 <= bits <= 15:
            raise FormatError(f"stores rotations with {bits}-bit components", self.path, "the file is damaged")
        bad = FormatError("has a rotation with an impossible largest-component index", self.path)
        self._blocks(blocks.smallest_three_into, self.planes("quats.largest", self.n, 2),
                     self.planes("quats", 3 * self.n, bits), bits, out, error=bad)


def decode_scene(data: bytes, path: str | Path | None = None, *, reference: bool = False,
                 threads: int | None = None) -> GaussianScene:
    """The scene in the bytes of a .handful file, or a FormatError (never a partial scene).
    ``reference=True`` decodes with the plain-numpy reference decoder (tests and benchmarks); ``threads``:
    how many threads decompress and decode (default: the cores, up to 8)."""
    with ThreadPoolExecutor(threads or decode_threads(), thread_name_prefix="handful-decode") as pool:
        return _decode(data, path, reference, pool)


def _undo_prediction(predicted, streams: dict[str, bytes], n: int, path) -> dict[str, bytes]:
    """The streams with each one the header lists under "predicted" summed back from its differences."""
    if not isinstance(predicted, dict):
        raise FormatError("has an unreadable list of predicted streams", path, "the file is damaged")
    streams = dict(streams)
    for name, entry in predicted.items():
        try:
            dim, bits = int(entry["dim"]), int(entry["bits"])
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"has an unreadable prediction entry for {name}", path, "the file is damaged") from None
        raw = streams.get(name)
        nb = _nbytes(bits) if 1 <= bits <= 32 else 0
        if raw is None or dim < 1 or not nb or len(raw) != n * dim * nb:
            raise FormatError(f"lists a predicted {name} stream that does not match it", path, "the file is damaged")
        residuals = codec.from_byte_planes(raw, n * dim, nb).reshape(n, dim)
        streams[name] = codec.byte_planes(codec.unpredict_previous(residuals, bits).reshape(-1), nb)
    return streams


def _decode(data: bytes, path, reference: bool, pool: Executor) -> GaussianScene:
    header, streams = container.unpack(data, path, pool=None if reference else pool)
    try:
        n, degree, attrs = int(header["count"]), int(header["sh_degree"]), dict(header["attributes"])
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"has an unreadable header ({e})", path, "the file is damaged") from None
    if n < 0 or not 0 <= degree <= 3:
        raise FormatError(f"claims {n} splats of SH degree {degree}", path, "the file is damaged")
    streams = _undo_prediction(header.get("predicted", {}), streams, n, path)
    r = NumpyStreams(streams, n, path) if reference else BlockStreams(streams, n, path, pool)
    k = sh_coeffs_for_degree(degree)
    means, quats = np.empty((n, 3), np.float32), np.empty((n, 4), np.float32)
    log_scales, logits = np.empty((n, 3), np.float32), np.empty((n, 1), np.float32)
    sh = np.empty((n, k, 3), dtype=np.float32)
    group_ids = features = None
    name = "means"
    try:
        m = attrs.get("means", {})
        if m.get("codec") == "q" and m.get("sorted"):
            r.sorted_means(m, means)
        else:
            r.into(name, m, means)
        name = "opacity"
        o = attrs.get("opacity", {})
        sigmoid_q = o.get("space") == "sigmoid" and o.get("codec") == "q"  # the only pairing the writer makes
        r.into(name, o, logits, logit_edge=0.5 / ((1 << int(o["bits"])) - 1) if sigmoid_q else 0.0)
        name = "quats"
        q = attrs.get("quats", {})
        if q.get("codec") == "smallest_three":
            r.smallest_three(q, quats)
        else:
            r.into(name, q, quats)
        name = "log_scales"
        r.into(name, attrs.get(name, {}), log_scales)
        flat = sh.reshape(n, 3 * k)
        name = "dc"
        r.into(name, attrs.get(name, {}), flat, width=3)
        if k > 1:
            name = "sh_rest"
            r.into(name, attrs.get(name, {}), flat, col=3)
        if "group_ids" in attrs:
            name = "group_ids"
            group_ids = r.words(name, n).view(np.int32)
        if "features" in attrs:
            name = "features"
            f = attrs[name]
            if f.get("codec") == "f16":
                features = r.f16(name, int(f["dim"]))
            else:
                features = np.empty((n, int(f["dim"])), np.float32)
                r.into(name, f, features)
        name = "the scene"
        r.finish()
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"has an unreadable description of {name} ({e})", path) from None
    try:
        return GaussianScene.from_numpy(means, quats, log_scales, logits[:, 0], sh, group_ids=group_ids,
                                        features=features)
    except SceneError as e:
        raise FormatError(f"holds an invalid scene: {e}", path) from None


__all__ = ["CodecSettings", "LOSSLESS", "encode_scene", "decode_scene", "BlockStreams", "NumpyStreams"]
