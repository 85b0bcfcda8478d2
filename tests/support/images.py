"""Real image files for tests, made with Pillow (with and without GPS EXIF)."""

from __future__ import annotations

import io

from PIL import ExifTags, Image


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    deg = int(value)
    minutes_full = (value - deg) * 60
    minutes = int(minutes_full)
    seconds = round((minutes_full - minutes) * 60, 4)
    return (float(deg), float(minutes), seconds)


def jpeg_bytes(
    size=(640, 480),
    color=(200, 60, 40),
    lat: float | None = None,
    lon: float | None = None,
    orientation: int | None = None,
    make: str | None = "CivicCam",
) -> bytes:
    img = Image.new("RGB", size, color)
    # a stripe so orientation changes are visible in pixels
    for x in range(size[0] // 4):
        for y in range(size[1]):
            img.putpixel((x, y), (0, 0, 255))
    exif = Image.Exif()
    if make:
        exif[ExifTags.Base.Make] = make
    if orientation:
        exif[ExifTags.Base.Orientation] = orientation
    if lat is not None and lon is not None:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N" if lat >= 0 else "S",
            ExifTags.GPS.GPSLatitude: _dms(lat),
            ExifTags.GPS.GPSLongitudeRef: "E" if lon >= 0 else "W",
            ExifTags.GPS.GPSLongitude: _dms(lon),
        }
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def png_bytes(size=(100, 80)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (10, 200, 10, 128)).save(out, "PNG")
    return out.getvalue()
