import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.errors import Cancelled, InputError
from engine.events import CancelToken, Progress, Warning
from engine.ingest import IngestResult, ingest, load_image

EXIF_IFD = 0x8769


def scene_texture(h=900, w=1600, seed=0) -> np.ndarray:
    """A large picture with detail at several scales; crops of it stand in for views of one scene."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(400):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (p1[0] + int(rng.integers(-80, 80)), p1[1] + int(rng.integers(-80, 80)))
        cv2.line(img, p1, p2, colour, int(rng.integers(1, 4)))
    return img


def views(n=5, size=(300, 400), seed=0) -> list[np.ndarray]:
    """n crops stepping 12% of the width across the texture: related but clearly different views."""
    big = scene_texture(seed=seed)
    h, w = size
    step = int(w * 0.12)
    return [big[50 : 50 + h, 40 + i * step : 40 + i * step + w].copy() for i in range(n)]


def write(path, rgb, exif=None, **kw):
    Image.fromarray(rgb).save(path, exif=exif if exif is not None else Image.Exif(), **kw)
    return path


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, v in enumerate(views(5)):
        write(folder / f"IMG_{i + 1}.jpg", v, quality=95)
    (folder / "notes.txt").write_text("not a photo")  # ignored: not an image extension
    return folder


def test_folder_of_photos(tmp_path, photo_folder):
    rec = Recorder()
    result = ingest([photo_folder], tmp_path / "work", emit=rec)
    assert [im.name for im in result.images] == [f"IMG_{i}.jpg" for i in range(1, 6)]
    assert result.skipped == [] and result.warnings == []
    for im in result.images:
        assert im.path.is_file() and im.path.parent == tmp_path / "work"
        assert (im.width, im.height, im.scale) == (400, 300, 1.0)
        assert im.source.parent == photo_folder
        # unchanged JPEGs are copied byte for byte
        assert im.path.read_bytes() == im.source.read_bytes()
    progress = rec.of(Progress)
    assert progress and all(p.stage == "ingest" for p in progress)
    assert progress[-1].done == progress[-1].total == 5
    # the manifest reads back as the same result
    again = IngestResult.load(tmp_path / "work")
    assert [(i.name, i.path, i.width, i.source) for i in again.images] == [
        (i.name, i.path, i.width, i.source) for i in result.images
    ]


def test_problems_are_warned_or_skipped_not_fatal(tmp_path, photo_folder):
    v = views(5)
    # a blurred copy of a view, a byte-identical copy, a truncated JPEG
    write(photo_folder / "IMG_6_blurred.jpg", cv2.GaussianBlur(scene_texture(seed=3)[:300, :400], (0, 0), 3), quality=95)
    shutil.copy(photo_folder / "IMG_2.jpg", photo_folder / "IMG_2_copy.jpg")
    data = (photo_folder / "IMG_3.jpg").read_bytes()
    (photo_folder / "IMG_7_cut.jpg").write_bytes(data[: len(data) // 3])
    write(photo_folder / "IMG_8_again.png", cv2.GaussianBlur(v[4], (0, 0), 0.4))  # near-duplicate of IMG_5
    rec = Recorder()
    result = ingest([photo_folder], tmp_path / "work", emit=rec)

    names = [im.name for im in result.images]
    assert "IMG_6_blurred.jpg" in names and "IMG_8_again.png" in names
    skipped = {p.name: reason for p, reason in result.skipped}
    assert set(skipped) == {"IMG_2_copy.jpg", "IMG_7_cut.jpg"}
    assert "identical to IMG_2.jpg" in skipped["IMG_2_copy.jpg"]
    assert "cannot read" in skipped["IMG_7_cut.jpg"]
    blur = [w for w in result.warnings if "blurry" in w]
    assert len(blur) == 1 and blur[0].startswith("IMG_6_blurred.jpg")
    dup = [w for w in result.warnings if "nearly the same" in w]
    assert len(dup) == 1 and "IMG_8_again.png" in dup[0] and "IMG_5.jpg" in dup[0]
    events = rec.of(Warning)
    assert any(e.path and e.path.endswith("IMG_7_cut.jpg") for e in events)
    assert len(events) == len(result.warnings) + len(result.skipped)


def test_orientation_downscale_focal_and_unique_names(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    big = scene_texture(1200, 1600, seed=1)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    exif.get_ifd(EXIF_IFD)[0xA405] = 36  # 36 mm equivalent
    write(a / "shot.jpg", big, exif=exif, quality=95)
    write(b / "shot.jpg", scene_texture(600, 800, seed=2), quality=95)
    write(b / "odd name (1).png", scene_texture(600, 800, seed=4)[:450])
    result = ingest([a / "shot.jpg", b], tmp_path / "work", max_long_edge=800)
    first, third, second = result.images  # folder b in name order
    assert (first.name, third.name, second.name) == ("shot.jpg", "odd_name_1.png", "shot_2.jpg")
    assert (first.width, first.height) == (600, 800)  # upright and downscaled
    assert first.scale == pytest.approx(0.5)
    assert first.focal_px == pytest.approx(36 * 1000 / np.hypot(36, 24))  # at the working size
    assert second.focal_px is None and second.scale == 1.0
    upright = load_image(first.path)
    assert upright.shape == (800, 600, 3)
    expected = cv2.resize(np.rot90(big, -1), (600, 800), interpolation=cv2.INTER_AREA)
    turned_wrong = expected[::-1, ::-1]
    # two JPEG generations and a reduced-size decode differ by a few levels; a wrong turn by far more
    assert np.abs(upright.astype(int) - expected).mean() < 8
    assert np.abs(upright.astype(int) - turned_wrong).mean() > 30
    assert any("aspect ratios" in w for w in result.warnings)
    assert any("resolutions" in w for w in result.warnings)
    # the same inputs give the same names
    again = ingest([a / "shot.jpg", b], tmp_path / "work2", max_long_edge=800)
    assert [i.name for i in again.images] == [i.name for i in result.images]


def test_max_images_keeps_an_even_spread(tmp_path, photo_folder):
    result = ingest([photo_folder], tmp_path / "work", max_images=3)
    assert [im.name for im in result.images] == ["IMG_1.jpg", "IMG_3.jpg", "IMG_5.jpg"]
    assert any("3 of 5" in w for w in result.warnings)


def test_input_errors(tmp_path, photo_folder):
    with pytest.raises(InputError, match="does not exist"):
        ingest([tmp_path / "nowhere"], tmp_path / "work")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="no photos") as info:
        ingest([empty], tmp_path / "work")
    assert info.value.path == empty
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InputError, match="1 usable image of 2") as info:
        ingest([photo_folder / "IMG_1.jpg", bad], tmp_path / "work")
    assert "bad.jpg" in str(info.value) and "at least 2" in str(info.value)


def test_cancel_stops_between_images(tmp_path, photo_folder):
    token = CancelToken()
    seen = []

    def emit(event):
        if isinstance(event, Progress):
            seen.append(event.done)
            if event.done == 2:
                token.cancel()

    with pytest.raises(Cancelled):
        ingest([photo_folder], tmp_path / "work", emit=emit, cancel=token)
    assert max(seen) == 2
    assert len(list((tmp_path / "work").glob("IMG_*.jpg"))) == 2


def write_video(path, frames, fourcc="MJPG", fps=10):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.mark.parametrize("fourcc,ext", [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_video_gives_the_sharpest_frame_of_each_segment(tmp_path, fourcc, ext):
    big = scene_texture(400, 1600, seed=5)
    frames = []
    for i in range(40):  # a pan; in each block of 8 frames only frame 3 is sharp
        crop = big[:240, i * 20 : i * 20 + 320]
        frames.append(crop if i % 8 == 3 else cv2.GaussianBlur(crop, (0, 0), 2.5))
    video = write_video(tmp_path / f"walk{ext}", frames, fourcc)
    rec = Recorder()
    result = ingest([video], tmp_path / "work", video_frames=5, emit=rec)
    assert [im.frame_index for im in result.images] == [3, 11, 19, 27, 35]
    assert [im.name for im in result.images] == [f"walk_f{i:06d}.jpg" for i in (3, 11, 19, 27, 35)]
    assert all(im.source == video and (im.width, im.height) == (320, 240) for im in result.images)
    assert rec.of(Progress)[-1].done == 5
    assert not any("blurry" in w for w in result.warnings)


def test_video_mixed_with_photos_and_limits(tmp_path, photo_folder):
    frames = [cv2.resize(v, (320, 240)) for v in views(6, seed=6)]
    video = write_video(tmp_path / "clip.avi", frames)
    result = ingest([photo_folder, video], tmp_path / "work", video_frames=10, max_images=8)
    assert len(result.images) <= 8
    assert sum(im.frame_index is not None for im in result.images) >= 1
    assert [im.frame_index for im in result.images if im.frame_index is not None] == sorted(
        im.frame_index for im in result.images if im.frame_index is not None
    )


def test_video_without_frames_is_an_input_error(tmp_path, photo_folder):
    empty = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)).release()
    with pytest.raises(InputError, match="no frames") as info:
        ingest([photo_folder, empty], tmp_path / "work")
    assert info.value.path == empty


@pytest.mark.slow
def test_real_llff_fern_folder(dataset, tmp_path):
    images = dataset("llff_fern") / "images"
    result = ingest([images], tmp_path / "work", max_long_edge=504)
    sources = sorted(p.name for p in images.iterdir())
    assert [im.name for im in result.images] == sources
    assert result.skipped == []
    # a careful hand-held set: nothing blurry, no duplicates, one camera
    assert result.warnings == []
    assert all((im.width, im.height) == (504, 378) and im.scale == pytest.approx(0.5) for im in result.images)


def test_downscaled_cut_out_keeps_its_edge_colours(tmp_path):
    # a red disc on transparent pixels whose stored colour is black, as renders often save them
    rgba = np.zeros((400, 400, 4), np.uint8)
    cv2.circle(rgba, (200, 200), 120, (255, 40, 40, 255), -1)  # hard edge: partial alpha comes from the resize
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgba).save(src / "disc.png")
    Image.fromarray(rgba[:, ::-1].copy()).save(src / "disc_2.png")  # ingest wants two photos
    result = ingest([src], tmp_path / "work", max_long_edge=100)
    small = load_image(result.images[0].path, background=(1.0, 1.0, 1.0)).astype(int)
    assert small.shape == (100, 100, 3)
    # on white, every pixel lies between red and white: no dark fringe from the black under the alpha
    assert small[..., 0].min() >= 250 and small.sum(axis=2).min() > 3 * 100, small[..., 0].min()
