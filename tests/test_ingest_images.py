import math

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.errors import FormatError
from engine.ingest import decode_image, focal_px_from_exif, image_size, load_image, load_image_rgba

EXIF_IFD = 0x8769


def texture(h=48, w=64, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    for _ in range(30):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, centre, int(rng.integers(2, max(3, w // 4))), colour, -1)
    return img


def save(path, rgb, exif=None, **kw):
    Image.fromarray(rgb).save(path, exif=exif if exif is not None else Image.Exif(), **kw)
    return path


def exif_with(orientation=None, **ifd_tags) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    ifd = exif.get_ifd(EXIF_IFD)
    for tag, value in ifd_tags.items():
        ifd[int(tag, 16)] = value
    return exif


@pytest.mark.parametrize(
    "ext,options,exact",
    [(".png", {}, True), (".tif", {}, True), (".webp", {"lossless": True}, True), (".jpg", {"quality": 95}, False)],
)
def test_formats_decode_to_rgb(tmp_path, ext, options, exact):
    rgb = texture()
    path = save(tmp_path / f"a{ext}", rgb, **options)
    out = load_image(path)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    if exact:
        np.testing.assert_array_equal(out, rgb)
    else:  # lossy: the same pixels OpenCV's own decoder gives
        reference = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        assert np.abs(out.astype(int) - reference).mean() < 1
    assert image_size(path) == (64, 48)


@pytest.mark.parametrize(
    "orientation,expected",
    [
        (1, lambda a: a),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # shown turned 90 degrees clockwise
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, expected):
    rgb = texture(30, 50)
    path = save(tmp_path / "o.png", rgb, exif=exif_with(orientation))
    out = load_image(path)
    np.testing.assert_array_equal(out, expected(rgb))
    w, h = image_size(path)
    assert (h, w) == out.shape[:2]
    assert decode_image(path).original_size == (w, h)


def test_rgba_composited_on_background_and_kept_by_rgba_loader(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red-ish, bottom transparent
    rgba[2, :, 3] = 128
    path = save(tmp_path / "a.png", rgba)
    white = load_image(path)
    np.testing.assert_array_equal(white[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(white[3, 0], [255, 255, 255])
    half = 128 / 255
    np.testing.assert_allclose(white[2, 0], np.round([200 * half + 255 * (1 - half), 255 * (1 - half), 255 * (1 - half)]))
    black = load_image(path, background=(0, 0, 0))
    np.testing.assert_array_equal(black[3, 0], [0, 0, 0])
    np.testing.assert_array_equal(load_image_rgba(path), rgba)
    # an opaque image gains a full alpha channel
    opaque = load_image_rgba(save(tmp_path / "b.png", texture()))
    assert opaque.shape == (48, 64, 4) and (opaque[..., 3] == 255).all()


def test_sixteen_bit_grey_keeps_its_range(tmp_path):
    grey = np.linspace(0, 65535, 64 * 8).astype(np.uint16).reshape(8, 64)
    path = tmp_path / "g16.png"
    cv2.imwrite(str(path), grey)
    out = load_image(path)
    assert out.shape == (8, 64, 3)
    np.testing.assert_allclose(out[..., 0].astype(float), grey / 257.0, atol=1)


def test_jpeg_draft_decode_keeps_the_long_edge(tmp_path):
    path = save(tmp_path / "big.jpg", texture(600, 800), quality=90)
    decoded = decode_image(path, max_long_edge=300)
    assert decoded.original_size == (800, 600)
    assert max(decoded.pixels.shape[:2]) >= 300
    assert decoded.pixels.shape[1] == 400  # decoded at half size: the reduction that keeps >= 300


def test_bad_files_raise_format_error_naming_the_file(tmp_path):
    good = save(tmp_path / "a.jpg", texture(200, 300), quality=90).read_bytes()
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all" * 10)
    for path in (truncated, garbage):
        with pytest.raises(FormatError) as info:
            load_image(path)
        assert info.value.path == path
        assert path.name in str(info.value)
    with pytest.raises(FormatError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")


def test_focal_from_35mm_equivalent(tmp_path):
    path = save(tmp_path / "a.jpg", texture(400, 600), exif=exif_with(**{"0xA405": 36}))
    # a 36 mm-equivalent lens on a 3:2 frame spans exactly the long edge
    assert focal_px_from_exif(path, 600, 400) == pytest.approx(600.0)
    assert focal_px_from_exif(path, 300, 200) == pytest.approx(300.0)
    # 4:3 frame: the equivalent is defined on the diagonal
    assert focal_px_from_exif(path, 400, 300) == pytest.approx(36 * 500 / math.hypot(36, 24))


def test_focal_from_focal_length_and_sensor_resolution(tmp_path):
    # 5 mm lens, 1000 px per mm on a sensor 4000 px wide (focal-plane unit: centimetres)
    exif = exif_with(**{"0x920A": 5.0, "0xA20E": 10000.0, "0xA210": 3, "0xA002": 4000, "0xA003": 3000})
    path = save(tmp_path / "a.jpg", texture(300, 400), exif=exif)
    assert focal_px_from_exif(path, 4000, 3000) == pytest.approx(5000.0)
    assert focal_px_from_exif(path, 800, 600) == pytest.approx(1000.0)


def test_focal_absent_or_absurd_is_none(tmp_path):
    assert focal_px_from_exif(save(tmp_path / "a.jpg", texture()), 64, 48) is None
    assert focal_px_from_exif(save(tmp_path / "b.jpg", texture(), exif=exif_with(**{"0xA405": 1})), 64, 48) is None
    assert focal_px_from_exif(tmp_path / "missing.jpg", 64, 48) is None


def test_heic_photo_from_a_phone_decodes_upright_with_its_focal_length(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    from engine.ingest.images import heif_available

    assert heif_available()
    rgb = texture(40, 60)
    exif = exif_with(orientation=6, **{"0xA405": 36})  # held upright; a 36 mm-equivalent lens
    path = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(Image.fromarray(rgb)).save(path, quality=95, exif=exif.tobytes())
    out = load_image(path)
    # HEIF keeps the turn as a transform the decoder applies (and resets EXIF orientation): turned once
    assert out.shape == (60, 40, 3)
    assert np.abs(out.astype(int) - np.rot90(rgb, -1)).mean() < 6
    assert image_size(path) == (40, 60)
    assert focal_px_from_exif(path, 40, 60) == pytest.approx(60.0)


def test_heic_without_the_decoder_says_what_to_install(tmp_path, monkeypatch):
    from engine.ingest import images

    monkeypatch.setattr(images, "heif_available", lambda: False)
    path = tmp_path / "phone.heic"
    path.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    with pytest.raises(FormatError, match="pillow-heif") as info:
        load_image(path)
    assert info.value.path == path
