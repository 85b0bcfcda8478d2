"""The photo pipeline on real image bytes (no database)."""

import io

import pytest
from PIL import Image

from spatial.errors import InvalidInput
from spatial.media import (
    MAX_PHOTOS,
    PhotoUpload,
    gps_from_exif,
    process_photo,
    process_photos,
    store_photo,
)
from tests.support.images import jpeg_bytes, png_bytes


def test_gps_is_read_and_every_served_copy_has_no_exif(tmp_path):
    data = jpeg_bytes(lat=34.0522, lon=-118.2437)
    assert gps_from_exif(Image.open(io.BytesIO(data))) == pytest.approx(
        (-118.2437, 34.0522), abs=1e-5
    )
    photo = process_photo(PhotoUpload("street.jpg", data))
    assert photo.gps == pytest.approx((-118.2437, 34.0522), abs=1e-5)
    store_photo(tmp_path, photo)
    for key in (photo.public_key, photo.thumb_key):
        served = Image.open(tmp_path / key)
        assert served.format == "JPEG"
        assert len(served.getexif()) == 0
        assert "exif" not in served.info and "icc_profile" not in served.info
    # the private original keeps the bytes as received
    assert (tmp_path / photo.original_key).read_bytes() == data
    thumb = Image.open(tmp_path / photo.thumb_key)
    assert max(thumb.size) <= 320


def test_orientation_is_applied():
    # orientation 6 = rotate 90 degrees clockwise to display
    photo = process_photo(PhotoUpload("tilted.jpg", jpeg_bytes(size=(400, 200), orientation=6)))
    assert (photo.width, photo.height) == (200, 400)
    img = Image.open(io.BytesIO(photo.public))
    assert img.size == (200, 400)
    # the blue stripe that was on the left is now on top
    r, g, b = img.getpixel((100, 10))
    assert b > 150 and r < 100


def test_content_addressed_names():
    data = jpeg_bytes()
    a = process_photo(PhotoUpload("a.jpg", data))
    b = process_photo(PhotoUpload("b.jpg", data))
    assert a.content_hash == b.content_hash and a.public_key == b.public_key


@pytest.mark.parametrize(
    "upload, message",
    [
        (PhotoUpload("notes.jpg", b"this is not an image at all"), "not an image we can read"),
        (PhotoUpload("empty.jpg", b""), "the file is empty"),
        (PhotoUpload("cut.jpg", jpeg_bytes()[:600]), "damaged or incomplete"),
        (
            PhotoUpload("big.jpg", b"\xff\xd8" + b"0" * (15 * 1024 * 1024 + 10)),
            "over the 15 MB limit",
        ),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(upload, message):
    with pytest.raises(InvalidInput) as err:
        process_photo(upload)
    assert message in str(err.value)
    assert upload.filename in str(err.value)


def test_decompression_bomb_is_refused_without_decoding():
    # a tiny PNG that claims to be 20000 x 20000 pixels
    img = Image.new("1", (20000, 20000))
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    assert len(out.getvalue()) < 15 * 1024 * 1024
    with pytest.raises(InvalidInput) as err:
        process_photo(PhotoUpload("bomb.png", out.getvalue()))
    assert "too large" in str(err.value)


def test_png_with_alpha_becomes_a_clean_jpeg():
    photo = process_photo(PhotoUpload("x.png", png_bytes()))
    assert photo.mime_type == "image/png" and photo.gps is None
    assert Image.open(io.BytesIO(photo.public)).mode == "RGB"


def test_at_most_five_photos():
    uploads = [PhotoUpload(f"{i}.jpg", jpeg_bytes(color=(i, i, i))) for i in range(MAX_PHOTOS + 1)]
    with pytest.raises(InvalidInput) as err:
        process_photos(uploads)
    assert "at most 5 photos" in str(err.value)
