"""The shared codec layer and the .handful scene codec: each step round-trips within its stated error,
and damaged files give a FormatError, never a partial scene."""

from __future__ import annotations

import json
import math
import zlib

import numpy as np
import pytest
import torch

from engine.compress import codec, container, scene_codec
from engine.compress.scene_codec import LOSSLESS, CodecSettings, decode_scene, encode_scene
from engine.errors import FormatError, InputError
from engine.io import detect_format, load_scene, save_scene
from engine.io import handful
from tests.factories import assert_scenes_close, random_scene

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("bits", [1, 6, 8, 11, 16])
def test_uniform_quantiser_error_is_at_most_half_a_step(bits):
    values = RNG.uniform(-3, 5, size=(2000, 3))
    lo, hi = values.min(axis=0), values.max(axis=0)
    back = codec.dequantize_range(codec.quantize_range(values, lo, hi, bits), lo, hi, bits)
    step = (hi - lo) / ((1 << bits) - 1)
    assert (np.abs(back - values) <= step / 2 + 1e-12).all()
    assert np.abs(back - values).max() > step.min() / 4  # the bound is tight, not vacuous


def test_smallest_three_round_trip_and_error_bound():
    q = codec.normalize_quats(RNG.normal(size=(5000, 4)))
    largest, others = codec.smallest_three(q)
    assert (np.abs(others) <= codec.SQRT1_2 + 1e-12).all()
    exact = codec.from_smallest_three(largest, others)
    assert np.abs(np.abs((exact * q).sum(1)) - 1).max() < 1e-12
    bits = 8
    stored = codec.from_unorm(codec.unorm(others * codec.SQRT1_2 + 0.5, bits), bits)
    back = codec.from_smallest_three(largest, (stored - 0.5) / codec.SQRT1_2)
    per_component = 0.5 * math.sqrt(2) / ((1 << bits) - 1)
    assert np.abs(np.abs(back[:, :]) - np.abs(q)).max() < 4 * per_component  # the rebuilt component adds a little


def test_morton_codes_and_byte_planes_are_lossless():
    cells = RNG.integers(0, 1 << 21, size=(3000, 3))
    codes = codec.morton_encode_63(cells)
    assert (codec.morton_decode_63(codes) == cells).all()
    # Morton order of cells keeps each octant together: the top 3 bits are the coarsest cell
    assert ((codes >> np.uint64(60)) == ((cells[:, 0] >> 20) | ((cells[:, 1] >> 20) << 1) | ((cells[:, 2] >> 20) << 2))).all()
    sorted_codes = np.sort(codes)
    gaps = codec.delta_encode(sorted_codes)
    assert (codec.delta_decode(gaps) == sorted_codes).all()
    assert (codec.from_byte_planes(codec.byte_planes(gaps, 8), len(gaps), 8) == gaps).all()


def test_lossless_codec_is_exact_including_groups_and_features():
    scene = random_scene(700, sh_degree=3, with_groups=True, feature_dim=5)
    back = decode_scene(encode_scene(scene))
    assert_scenes_close(back, scene)
    assert torch.equal(back.group_ids, scene.group_ids) and torch.equal(back.features, scene.features)


def _sorted_like_codec(scene, bits):
    means = scene.means.numpy().astype(np.float64)
    lo, hi = means.min(axis=0), means.max(axis=0)
    order = np.argsort(codec.morton_encode_63(codec.quantize_range(means, lo, hi, bits)), kind="stable")
    return scene.subset(torch.as_tensor(order)), (hi - lo) / ((1 << bits) - 1)


def test_fixed_point_codecs_round_trip_within_their_steps():
    scene = random_scene(1500, sh_degree=2, extent=3.0)
    settings = CodecSettings(means="q14", opacity="q8", dc="q8", log_scales="q8", quats="q9", sh_rest="q6")
    back = decode_scene(encode_scene(scene, settings))
    ref, step = _sorted_like_codec(scene, 14)
    assert len(back) == len(scene) and back.sh_degree == 2
    assert (np.abs(back.means.numpy() - ref.means.numpy()) <= step / 2 + 1e-5).all()
    alpha_err = np.abs((torch.sigmoid(back.opacity_logits) - torch.sigmoid(ref.opacity_logits)).numpy())
    assert alpha_err.max() <= 0.5 / 255 + 1e-6
    ls = ref.log_scales.numpy()
    assert (np.abs(back.log_scales.numpy() - ls) <= (ls.max(0) - ls.min(0)) / 255 / 2 + 1e-5).all()
    dots = np.abs((back.quats.numpy() * ref.normalized_quats.numpy()).sum(1))
    assert dots.min() > 1 - 1e-4
    rest = ref.sh.numpy()[:, 1:].reshape(len(ref), -1)
    half = (rest.max(0) - rest.min(0)) / 63 / 2
    assert (np.abs(back.sh.numpy()[:, 1:].reshape(len(ref), -1) - rest) <= half + 1e-5).all()


def test_codebooks_map_each_splat_to_its_nearest_word_and_cut_sh_costs_one_word():
    scene = random_scene(900, sh_degree=1)
    sh = scene.sh.clone()
    sh[:300, 1:] = 0  # SH cut: these share the reserved zero word
    scene.sh = sh
    settings = CodecSettings(log_scales="vq64", sh_rest="vq32")
    back = decode_scene(encode_scene(scene, settings))  # means f32: order kept
    words = np.unique(back.log_scales.numpy(), axis=0)
    assert len(words) <= 64
    dist = np.sqrt(((scene.log_scales.numpy()[:, None, :] - words[None]) ** 2).sum(-1))
    chosen = np.sqrt(((scene.log_scales.numpy() - back.log_scales.numpy()) ** 2).sum(-1))
    # nearest word up to the words' 8-bit rounding: each moved by at most half a step of its column's range
    moved = np.linalg.norm((words.max(0) - words.min(0)) / 255 / 2)
    assert (chosen <= dist.min(axis=1) + 2 * moved + 1e-6).all()
    assert (back.sh[:300, 1:] == 0).all()
    assert len(np.unique(back.sh[300:, 1:].reshape(600, -1).numpy(), axis=0)) <= 31


def test_settings_are_validated():
    with pytest.raises(InputError, match="means"):
        CodecSettings(means="vq16").validate()
    with pytest.raises(InputError, match="q1-q21"):
        CodecSettings(means="q40").validate()


def _file(tmp_path, scene=None):
    path = tmp_path / "scene.handful"
    save_scene(scene if scene is not None else random_scene(300, sh_degree=2), path)
    return path


def test_truncated_or_bit_flipped_files_give_a_clear_error(tmp_path):
    data = _file(tmp_path).read_bytes()
    bad = tmp_path / "bad.handful"
    for cut in (5, 17, len(data) // 3, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(FormatError, match="truncated|damaged|checksum"):
            handful.read(bad)
    for position in (20, len(data) // 2, len(data) - 10, len(data) - 2):
        flipped = bytearray(data)
        flipped[position] ^= 0x10
        bad.write_bytes(bytes(flipped))
        with pytest.raises(FormatError, match="damaged|checksum"):
            load_scene(bad)


def test_a_newer_version_is_refused_clearly(tmp_path):
    data = bytearray(_file(tmp_path).read_bytes())
    data[8:12] = (container.FORMAT_VERSION + 1).to_bytes(4, "little")
    newer = tmp_path / "newer.handful"
    newer.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=rf"newer Handful .*version {container.FORMAT_VERSION + 1}.*update Handful"):
        load_scene(newer)


def test_big_streams_are_split_into_frames_that_decode_on_threads(monkeypatch):
    monkeypatch.setattr(container, "FRAME_BYTES", 4096)  # a small scene gets many frames
    scene = random_scene(3000, sh_degree=2, with_groups=True)
    data = encode_scene(scene)
    header, _ = container.unpack(data)
    frames = {s["name"]: s.get("frames", [s["csize"]]) for s in header["streams"]}
    assert len(frames["sh_rest"]) == -(-3000 * 24 * 4 // 4096) and sum(frames["sh_rest"]) > 0
    assert int.from_bytes(data[8:12], "little") == 2  # several frames: version 2
    for threads in (1, 3):
        assert_scenes_close(decode_scene(data, threads=threads), scene)
    # a flipped bit in a later frame, a cut inside one: refused as a whole
    flipped = bytearray(data)
    flipped[len(data) - 200] ^= 0x10
    for bad in (bytes(flipped), data[: len(data) - 5000]):
        with pytest.raises(FormatError, match="damaged|checksum"):
            decode_scene(bad)
    # a header listing too few frames for a stream's size (checksum made valid again)
    def fewer_frames(text: bytes) -> bytes:
        head = json.loads(text)
        for s in head["streams"]:
            if "frames" in s:
                s["frames"] = s["frames"][:1]
        return json.dumps(head).encode()

    with pytest.raises(FormatError, match="sh_rest|unexpected bytes"):
        decode_scene(_with_header(data, fewer_frames))


def _with_header(data: bytes, edit) -> bytes:
    header_len = int.from_bytes(data[12:16], "little")
    text = edit(data[16 : 16 + header_len])
    body = data[:12] + len(text).to_bytes(4, "little") + text + data[16 + header_len : -4]
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_a_file_of_single_frames_stays_version_1_for_older_readers():
    data = encode_scene(random_scene(200, sh_degree=1))
    assert int.from_bytes(data[8:12], "little") == 1
    header, _ = container.unpack(data)
    assert not any("frames" in s for s in header["streams"])


def test_handful_files_are_detected_and_written_atomically(tmp_path, monkeypatch):
    path = _file(tmp_path)
    assert detect_format(path) == "handful"
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(handful, "encode_scene", explode)
    with pytest.raises(RuntimeError):
        save_scene(random_scene(50), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scene.handful"]


def test_empty_scene_round_trips():
    from engine.scene import GaussianScene

    back = decode_scene(encode_scene(GaussianScene.empty(2), LOSSLESS))
    assert len(back) == 0 and back.sh_degree == 2


DECODER_CASES = {
    "lossless": CodecSettings(),
    "high": CodecSettings(means="q16", opacity="q8", dc="q8", log_scales="q8", quats="q8", sh_rest="vq256",
                          features="f16"),
    "codebooks": CodecSettings(means="q21", opacity="q16", dc="vq64", log_scales="vq32", quats="vq64", sh_rest="q11"),
}


@pytest.mark.parametrize("case", DECODER_CASES)
def test_block_decoder_matches_the_numpy_reference(case, monkeypatch):
    monkeypatch.setattr(scene_codec, "BLOCK_ROWS", 500)  # blocks that end inside the scene
    scene = random_scene(1200, sh_degree=3, extent=2.0, with_groups=True, feature_dim=3)
    data = encode_scene(scene, DECODER_CASES[case])
    fast, ref = decode_scene(data), decode_scene(data, reference=True)
    for name, want in ref.tensors().items():
        got = fast.tensors()[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        if name == "opacity_logits":  # the reference rounds to float32 before its logit: compare alphas
            got, want = torch.sigmoid(got), torch.sigmoid(want)
        # the same formulas, evaluated in float64 by both; only the last float32 bit may differ
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-6), name
    if case == "lossless":
        assert_scenes_close(fast, scene)


def _repacked(data: bytes, edit) -> bytes:
    """The file with its decoded streams changed by ``edit(header, streams)`` and a valid checksum again:
    damage the CRC cannot catch (a crafted or mis-written file)."""
    header, streams = container.unpack(data)
    streams = dict(streams)
    edit(header, streams)
    header.pop("streams")
    return container.pack(header, streams, 3)


def test_crafted_files_with_valid_checksums_never_read_outside_an_array(tmp_path):
    scene = random_scene(500, sh_degree=1)
    data = encode_scene(scene, CodecSettings(means="q16", quats="q8", sh_rest="vq16", log_scales="vq8"))

    def index_past_book(header, streams):
        labels = bytearray(streams["sh_rest"])
        labels[123] = 255  # the book has at most 16 words
        streams["sh_rest"] = bytes(labels)

    def impossible_largest(header, streams):
        largest = bytearray(streams["quats.largest"])
        largest[7] = 4
        streams["quats.largest"] = bytes(largest)

    def wrong_width(header, streams):
        header["attributes"]["log_scales"]["dim"] = 2

    for edit, message in ((index_past_book, "sh_rest indices past its"), (impossible_largest, "largest-component"),
                          (wrong_width, "2 values per splat for log_scales where 3")):
        bad = _repacked(data, edit)
        for reference in (False, True):
            with pytest.raises(FormatError, match=message):
                decode_scene(bad, tmp_path / "crafted.handful", reference=reference)


def test_snapping_towards_the_previous_texel_stays_within_the_slack():
    rng = np.random.default_rng(3)
    values = rng.integers(0, 1000, size=(500, 3))
    slack = rng.integers(0, 40, size=(500, 3))
    slack[::7] = 0
    width = 20
    out = codec.snap_towards_previous(values, slack, width)
    assert (np.abs(out - values) <= slack).all()
    assert (out[::7] == values[::7]).all()
    for i in range(1, 500):
        j = i - 1 if i % width else i - width
        if j < 0:
            assert (out[i] == values[i]).all()
            continue
        near = np.abs(out[j] - values[i]) <= slack[i]
        # within reach: the neighbour's value exactly; out of reach: as near to it as the slack allows
        assert (out[i][near] == out[j][near]).all()
        far = ~near
        assert (np.abs(out[i][far] - out[j][far]) == np.abs(values[i][far] - out[j][far]) - slack[i][far]).all()
    with pytest.raises(ValueError):
        codec.snap_towards_previous(values, -slack - 1, width)


def test_streams_alike_along_morton_order_are_stored_as_differences_and_read_back_exactly():
    scene = random_scene(3000, sh_degree=1, extent=2.0)
    sh = scene.sh.clone()
    sh[:, 0] = scene.means[:, :3] * 0.5  # colour that varies smoothly in space, as in trained scenes
    scene.sh = sh
    settings = CodecSettings(means="q14", opacity="q8", dc="q8", log_scales="q8", quats="q8", sh_rest="vq64")
    data = encode_scene(scene, settings)
    header, streams = container.unpack(data)
    assert "dc" in header["predicted"] and int.from_bytes(data[8:12], "little") == 3
    fast, reference = decode_scene(data), decode_scene(data, reference=True)
    for name in ("means", "quats", "log_scales", "sh"):  # the block decoder's tables round differently
        assert torch.allclose(getattr(fast, name), getattr(reference, name), rtol=1e-6, atol=1e-6), name
    assert torch.allclose(torch.sigmoid(fast.opacity_logits), torch.sigmoid(reference.opacity_logits), atol=1e-6)
    assert np.abs(np.sort(fast.sh[:, 0].numpy(), 0) - np.sort(scene.sh[:, 0].numpy(), 0)).max() < 0.05
    header["predicted"]["dc"]["dim"] = 5  # does not match the stream: refused by name, not misread
    del header["streams"]
    with pytest.raises(FormatError, match="predicted dc"):
        decode_scene(container.pack(header, streams, 3, version_floor=3))
