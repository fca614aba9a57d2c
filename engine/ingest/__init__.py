"""Photos and videos in, working images out: decoding, EXIF, downscaling, blur/duplicate checks."""

from .exif import focal_px_from_exif, focal_px_from_exif_data
from .images import IMAGE_EXTENSIONS, composite, decode_image, image_size, load_image, load_image_rgba
from .pipeline import MIN_PHOTOS, IngestedImage, IngestResult, ingest
from .video import VIDEO_EXTENSIONS, sharp_frames

__all__ = [
    "IMAGE_EXTENSIONS",
    "MIN_PHOTOS",
    "VIDEO_EXTENSIONS",
    "IngestResult",
    "IngestedImage",
    "composite",
    "decode_image",
    "focal_px_from_exif",
    "focal_px_from_exif_data",
    "image_size",
    "ingest",
    "load_image",
    "load_image_rgba",
    "sharp_frames",
]
