"""intake.submit(): validation before any write, storage, routing and acknowledgement."""

import pytest
import sqlalchemy as sa
from PIL import Image

from intake.submit import Draft, ValidationFailed, submit
from spatial.media import PhotoUpload
from spatial.models import OutboxMessage, Photo, RequestEvent, ServiceRequest
from tests.support.city import INSIDE, OUTSIDE, make_small_city
from tests.support.images import jpeg_bytes

BASE = "http://311.test"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        make_small_city(s)


def _count(sessions, model):
    with sessions() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def _draft(**kw):
    base = dict(
        city="testville",
        service_code="pothole",
        lat=INSIDE[0],
        lon=INSIDE[1],
        attributes={"depth": "12"},
        description="Deep hole by the bus stop",
    )
    base.update(kw)
    return Draft(**base)


def test_a_good_report_is_stored_routed_and_acknowledged(sessions, city, tmp_path):
    with sessions.begin() as s:
        res = submit(
            s,
            _draft(
                contact_email="ana@example.org",
                contact_name="Ana",
                attributes={"depth": "12", "hazards": ["water", "traffic"]},
            ),
            media_dir=tmp_path,
            public_base_url=BASE,
        )
        public_id, token = res.request.public_id, res.token
    assert public_id.startswith("TV-") and public_id.endswith("-000001")
    assert len(token) >= 32
    assert res.notice.startswith("Small potholes")
    with sessions() as s:
        req = s.scalar(sa.select(ServiceRequest).where(ServiceRequest.public_id == public_id))
        assert req.attributes == {"depth": 12, "hazards": ["water", "traffic"]}
        assert req.department.name == "Streets"
        assert req.zone.code == "E" or req.zone.code == "W"
        assert req.routing_explanation
        assert req.due_at is not None
        msg = s.scalar(sa.select(OutboxMessage).where(OutboxMessage.request_id == req.id))
        assert msg.kind == "acknowledgement" and msg.to_addr == "ana@example.org"
        assert f"{BASE}/c/testville/requests/{public_id}?token={token}" in msg.body_text
        kinds = [
            e.kind
            for e in s.scalars(sa.select(RequestEvent).where(RequestEvent.request_id == req.id))
        ]
        assert kinds[0] == "submitted"


def test_the_pin_is_stored_exactly_as_given(sessions, city, tmp_path):
    lat, lon = INSIDE[0] + 0.000123456789, INSIDE[1] - 0.000987654321
    with sessions.begin() as s:
        res = submit(s, _draft(lat=lat, lon=lon), media_dir=tmp_path, public_base_url=BASE)
        request_id = res.request.id
    with sessions() as s:
        x, y, srid = s.execute(
            sa.text(
                "SELECT ST_X(location), ST_Y(location), ST_SRID(location) "
                "FROM service_request WHERE id = :id"
            ),
            {"id": request_id},
        ).one()
    assert (x, y, srid) == (lon, lat, 4326)


def test_every_error_is_reported_and_nothing_is_written(sessions, city, tmp_path):
    bad = _draft(
        lat=OUTSIDE[0],
        lon=OUTSIDE[1],
        attributes={"depth": "deep", "lane": "middle", "colour": "red"},
        contact_email="not-an-email",
        description="<script>alert(1)</script>",
        photos=[PhotoUpload("x.jpg", b"garbage")],
    )
    with pytest.raises(ValidationFailed) as err, sessions.begin() as s:
        submit(s, bad, media_dir=tmp_path, public_base_url=BASE)
    errors = err.value.errors
    assert "outside Testville" in errors["location"]
    assert errors["attribute[depth]"] == "'deep' is not a number"
    assert "not one of the choices" in errors["attribute[lane]"]
    assert "attribute[colour]" in errors
    assert "e-mail" in errors["contact_email"]
    assert "plain text" in errors["description"]
    assert "not an image" in errors["photos"]
    assert _count(sessions, ServiceRequest) == 0
    assert _count(sessions, OutboxMessage) == 0
    assert not any(tmp_path.rglob("*.jpg"))


def test_required_answer_and_missing_location(sessions, city, tmp_path):
    with pytest.raises(ValidationFailed) as err, sessions.begin() as s:
        submit(
            s, _draft(attributes={}, lat=None, lon=None), media_dir=tmp_path, public_base_url=BASE
        )
    assert err.value.errors["attribute[depth]"] == "Please answer: How deep (cm)?"
    assert "Show where" in err.value.errors["location"]


def test_photo_gps_places_the_pin_and_served_copy_has_no_exif(sessions, city, tmp_path):
    photo = PhotoUpload("p.jpg", jpeg_bytes(lat=34.0612, lon=-118.2811))
    with sessions.begin() as s:
        res = submit(
            s, _draft(lat=None, lon=None, photos=[photo]), media_dir=tmp_path, public_base_url=BASE
        )
        rid = res.request.id
    assert res.photo_location_used
    with sessions() as s:
        lon, lat = s.execute(
            sa.select(
                sa.func.ST_X(ServiceRequest.location), sa.func.ST_Y(ServiceRequest.location)
            ).where(ServiceRequest.id == rid)
        ).one()
        assert (lat, lon) == pytest.approx((34.0612, -118.2811), abs=1e-5)
        stored = s.scalar(sa.select(Photo).where(Photo.request_id == rid))
    assert len(Image.open(tmp_path / stored.public_key).getexif()) == 0


def test_contact_required_category(sessions, city, tmp_path):
    with pytest.raises(ValidationFailed) as err, sessions.begin() as s:
        submit(
            s,
            _draft(service_code="abuse", attributes={}, anonymous=True),
            media_dir=tmp_path,
            public_base_url=BASE,
        )
    assert "need an e-mail address or phone" in err.value.errors["contact_email"]


def test_public_ids_are_sequential(sessions, city, tmp_path):
    ids = []
    for _ in range(3):
        with sessions.begin() as s:
            ids.append(
                submit(s, _draft(), media_dir=tmp_path, public_base_url=BASE).request.public_id
            )
    assert [i[-6:] for i in ids] == ["000001", "000002", "000003"]
