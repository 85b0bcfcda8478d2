"""The photo pipeline: verify by content, read GPS, normalise, strip EXIF, store.

It lives in spatial, the layer every package may import, because residents (intake)
and crews (routing actions: completion photos) both use it.

Every upload is checked with Pillow before anything is written: size cap, pixel cap
(decompression-bomb guard), a full decode. The original is kept private; the copies we
serve (``public`` and ``thumb``) are re-encoded from pixels only, so no EXIF (GPS, camera,
owner) survives in them. Storage is content-addressed under ``MEDIA_DIR``:

    private/ab/abcdef....jpg        the original bytes, never served
    public/ab/abcdef....jpg         orientation applied, max 2048 px, no metadata
    public/ab/abcdef...._t.jpg      thumbnail, max 320 px, no metadata
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from spatial.errors import InvalidInput

MAX_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_PHOTOS = 5
PUBLIC_MAX_SIDE = 2048
THUMB_MAX_SIDE = 320
ALLOWED_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
_EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


@dataclass(frozen=True)
class PhotoUpload:
    """Bytes received from a channel, with the name the sender gave them."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class ProcessedPhoto:
    """A verified image, ready to store; ``gps`` is (lon, lat) from EXIF if present."""

    content_hash: str
    format: str
    mime_type: str
    width: int
    height: int
    size: int
    gps: tuple[float, float] | None
    original: bytes
    public: bytes
    thumb: bytes

    @property
    def original_key(self) -> str:
        return f"private/{self.content_hash[:2]}/{self.content_hash}.{_EXT[self.format]}"

    @property
    def public_key(self) -> str:
        return f"public/{self.content_hash[:2]}/{self.content_hash}.jpg"

    @property
    def thumb_key(self) -> str:
        return f"public/{self.content_hash[:2]}/{self.content_hash}_t.jpg"


def _rational(value) -> float:
    try:
        return float(value)
    except (TypeError, ZeroDivisionError, ValueError):
        num, den = value
        return float(num) / float(den)


def gps_from_exif(img: Image.Image) -> tuple[float, float] | None:
    """(lon, lat) from an image's EXIF GPS block, or None if absent or implausible."""
    try:
        exif = img.getexif()
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001 - malformed EXIF is common; it just has no GPS
        return None
    if not gps:
        return None
    try:
        lat_dms = gps[ExifTags.GPS.GPSLatitude]
        lon_dms = gps[ExifTags.GPS.GPSLongitude]
        lat = sum(_rational(v) / d for v, d in zip(lat_dms, (1, 60, 3600), strict=True))
        lon = sum(_rational(v) / d for v, d in zip(lon_dms, (1, 60, 3600), strict=True))
        if str(gps.get(ExifTags.GPS.GPSLatitudeRef, "N")).upper().startswith("S"):
            lat = -lat
        if str(gps.get(ExifTags.GPS.GPSLongitudeRef, "E")).upper().startswith("W"):
            lon = -lon
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return (round(lon, 7), round(lat, 7))


def _encode_jpeg(img: Image.Image, max_side: int, quality: int) -> bytes:
    img = img.copy()
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if img.mode not in ("RGB", "L"):
        background = Image.new("RGB", img.size, (255, 255, 255))
        rgba = img.convert("RGBA")
        background.paste(rgba, mask=rgba.getchannel("A"))
        img = background
    # A fresh image from pixels only: no exif, no icc/xmp comments carried over.
    clean = Image.new(img.mode, img.size)
    clean.paste(img)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()


def process_photo(upload: PhotoUpload, field: str = "photos") -> ProcessedPhoto:
    """Verify one upload and build its served copies; raises ``InvalidInput`` if unusable."""
    name = os.path.basename(upload.filename or "photo") or "photo"
    size = len(upload.data)
    if size == 0:
        raise InvalidInput(f"{name}: the file is empty", field=field)
    if size > MAX_BYTES:
        raise InvalidInput(
            f"{name}: {size / 1048576:.1f} MB is over the {MAX_BYTES // 1048576} MB limit",
            field=field,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(upload.data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if width * height > MAX_PIXELS:
                    raise InvalidInput(
                        f"{name}: {width}x{height} pixels is too large "
                        f"(at most {MAX_PIXELS // 1_000_000} megapixels)",
                        field=field,
                    )
                if fmt not in ALLOWED_FORMATS:
                    raise InvalidInput(
                        f"{name}: {fmt or 'this'} images are not accepted "
                        "(use JPEG, PNG, WebP or GIF)",
                        field=field,
                    )
                probe.verify()
            img = Image.open(io.BytesIO(upload.data))
            img.load()
    except InvalidInput:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput(
            f"{name}: the image is too large (at most {MAX_PIXELS // 1_000_000} megapixels)",
            field=field,
        ) from None
    except UnidentifiedImageError:
        raise InvalidInput(f"{name}: not an image we can read", field=field) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise InvalidInput(f"{name}: the image is damaged or incomplete", field=field) from None
    gps = gps_from_exif(img)
    upright = ImageOps.exif_transpose(img)
    public = _encode_jpeg(upright, PUBLIC_MAX_SIDE, 85)
    thumb = _encode_jpeg(upright, THUMB_MAX_SIDE, 80)
    return ProcessedPhoto(
        content_hash=hashlib.sha256(upload.data).hexdigest(),
        format=fmt,
        mime_type=ALLOWED_FORMATS[fmt],
        width=upright.width,
        height=upright.height,
        size=size,
        gps=gps,
        original=upload.data,
        public=public,
        thumb=thumb,
    )


def process_photos(uploads: list[PhotoUpload], field: str = "photos") -> list[ProcessedPhoto]:
    """Verify all uploads (at most ``MAX_PHOTOS``) before any is stored."""
    uploads = [u for u in uploads if u.data or u.filename]
    if len(uploads) > MAX_PHOTOS:
        raise InvalidInput(f"at most {MAX_PHOTOS} photos per report", field=field)
    return [process_photo(u, field=field) for u in uploads]


def _write_atomic(path: Path, data: bytes) -> None:
    if path.exists():
        return  # content-addressed: same name, same bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def store_photo(media_dir: Path, photo: ProcessedPhoto) -> None:
    """Write the original (private) and the served copies under ``media_dir``."""
    media_dir = Path(media_dir)
    _write_atomic(media_dir / photo.original_key, photo.original)
    _write_atomic(media_dir / photo.public_key, photo.public)
    _write_atomic(media_dir / photo.thumb_key, photo.thumb)
