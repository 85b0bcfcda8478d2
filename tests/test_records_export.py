"""``civicpin records export``: the zip holds the public record of a period and nothing
personal; its manifest counts what it holds and what it withheld; bad arguments stop it
with one line and leave nothing behind."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from PIL import Image

from intake.submit import Draft, submit
from records import moderation
from records.public_export import REMOVED, redact
from routing import actions
from spatial.media import PhotoUpload
from spatial.models import Jurisdiction, Photo, now_utc
from tests.support.dispatch_city import BASE_URL, WEST, make_dispatch_city, user
from tests.support.images import jpeg_bytes

PEOPLE = [
    ("Wilhelmina Farquharson", "wilhelmina.f@example.org", "+1 213 555 0147"),
    ("Bartholomew Ngata", "bart.ngata@example.net", "(323) 555-0199"),
    ("Ottilie Vanderspek", "ottilie@example.com", "818 555 0123"),
    ("Cornelius Abernathy", "corny.a@example.org", "626-555-0111"),
    ("Philippa Oyelaran", "pip.oyelaran@example.net", "310 555 0188"),
    ("Ignatius Ferreira", "ig.ferreira@example.org", "562 555 0176"),
]
ANSWER = "4217"
INTERNAL = "Caller sounded distressed; lives alone at number 12"
HIDDEN_TEXT = "Hole by the house of Septimus Blackwood, the drunk"


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


def _submit(s, settings, person, *, service="pothole", channel="web", now=None, **kw):
    name, email, phone = person
    draft = Draft(
        city="testville",
        service_code=service,
        lat=WEST[0],
        lon=WEST[1],
        attributes={"depth": ANSWER} if service == "pothole" else {},
        contact_name=name,
        contact_email=email,
        contact_phone=phone,
        channel=channel,
        **kw,
    )
    return submit(s, draft, media_dir=settings.media_dir, public_base_url=BASE_URL, now=now).request


@pytest.fixture
def records(sessions, settings, city):
    """Six requests of today and one of three weeks ago, one of each kind the export
    treats apart, with their expectations."""
    out = {}
    with sessions.begin() as s:
        staff = user(s, "dispatcher")
        plain = _submit(
            s,
            settings,
            PEOPLE[0],
            description=(
                "Deep hole. Wilhelmina Farquharson here, call 213 555 0147 "
                "or write to wilhelmina.f@example.org, or my neighbour at kim@example.com"
            ),
            address="100 Main St",
            photos=[PhotoUpload("a.jpg", jpeg_bytes(lat=34.05, lon=-118.28))],
        )
        actions.add_note(s, staff, plain, text=INTERNAL)
        actions.add_note(s, staff, plain, text="Crew booked for Monday", public=True)
        hidden = _submit(
            s,
            settings,
            PEOPLE[1],
            description=HIDDEN_TEXT,
            photos=[
                PhotoUpload("b.jpg", jpeg_bytes(color=(10, 200, 10))),
                PhotoUpload("c.jpg", jpeg_bytes(color=(10, 10, 200))),
            ],
        )
        moderation.moderate_description(s, staff, hidden, mode="hide", reason="insult")
        hidden_photo = s.scalars(
            sa.select(Photo).where(Photo.request_id == hidden.id).order_by(Photo.id)
        ).first()
        moderation.hide_photo(s, staff, hidden, hidden_photo.id, reason="a face")
        redacted = _submit(s, settings, PEOPLE[2], description="Pothole, says Ottilie Vanderspek")
        moderation.moderate_description(
            s, staff, redacted, mode="redact", text="Pothole, says a resident", reason="name"
        )
        actions.close(s, staff, redacted, reason="Fixed on Tuesday", public_base_url=BASE_URL)
        private = _submit(s, settings, PEOPLE[3], service="abuse", description="Private matter")
        s.get(Jurisdiction, city.city_id).moderation_hold = "email"
        held = _submit(s, settings, PEOPLE[4], channel="email", description="Held mail report")
        s.get(Jurisdiction, city.city_id).moderation_hold = "none"
        old = _submit(
            s,
            settings,
            PEOPLE[5],
            description="Three weeks old",
            now=now_utc() - timedelta(days=21),
        )
        out = {
            "plain": plain.public_id,
            "hidden": hidden.public_id,
            "redacted": redacted.public_id,
            "private": private.public_id,
            "held": held.public_id,
            "old": old.public_id,
            "hidden_photo": hidden_photo.public_key,
        }
    today = now_utc().astimezone(ZoneInfo("America/Los_Angeles")).date()
    out["since"] = (today - timedelta(days=1)).isoformat()
    out["until"] = (today + timedelta(days=1)).isoformat()
    return out


def _export(cli, records, out, *extra):
    return cli(
        "records",
        "export",
        "--city",
        "testville",
        "--since",
        records["since"],
        "--until",
        records["until"],
        "--out",
        str(out),
        *extra,
    )


def test_the_zip_holds_the_public_record_and_no_personal_data(cli, records, settings, tmp_path):
    out = tmp_path / "exports" / "testville.zip"
    out.parent.mkdir()
    res = _export(cli, records, out)
    assert res.returncode == 0, res.stderr
    assert re.fullmatch(
        rf"wrote {re.escape(str(out))}: 3 requests, \d+ public events, 2 photos; "
        r"2 requests withheld \(see manifest.json\)",
        res.stdout.strip(),
    ), res.stdout
    assert [p.name for p in out.parent.iterdir()] == ["testville.zip"]  # no temporary left
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        blobs = {name: zf.read(name) for name in names}
    manifest = json.loads(blobs["manifest.json"])

    # Nothing personal anywhere, in any file: contacts, answers, internal notes, the
    # reporter's words staff hid, and nothing of the withheld requests.
    for name, blob in blobs.items():
        text = blob.decode("utf-8", "replace").lower()
        for person in PEOPLE:
            for value in person:
                assert value.lower() not in text, (name, value)
        assert "555" not in text or name.startswith("photos/"), name
        for secret in (INTERNAL, "kim@example.com", "Septimus", "Ottilie", "Private matter"):
            assert secret.lower() not in text, (name, secret)
        for withheld in ("private", "held", "old"):
            assert records[withheld].lower() not in text, (name, withheld)
        if not name.startswith("photos/"):
            assert ANSWER not in text, name

    rows = list(csv.DictReader(io.StringIO(blobs["requests.csv"].decode())))
    by_id = {r["public_id"]: r for r in rows}
    assert set(by_id) == {records["plain"], records["hidden"], records["redacted"]}
    assert not {"contact_name", "contact_email", "contact_phone", "attributes", "depth"} & set(
        rows[0]
    )
    assert by_id[records["hidden"]]["description"] == moderation.TEXT_REMOVED
    assert by_id[records["redacted"]]["description"] == "Pothole, says a resident"
    assert by_id[records["redacted"]]["close_reason"] == "Fixed on Tuesday"
    assert by_id[records["plain"]]["description"].count(REMOVED) == 4
    assert by_id[records["plain"]]["address"] == "100 Main St"
    assert float(by_id[records["plain"]]["lat"]) == pytest.approx(WEST[0])

    geo = json.loads(blobs["requests.geojson"])
    assert geo["type"] == "FeatureCollection"
    assert [f["properties"]["public_id"] for f in geo["features"]] == [r["public_id"] for r in rows]
    assert geo["features"][0]["geometry"]["coordinates"] == pytest.approx([WEST[1], WEST[0]])

    events = list(csv.DictReader(io.StringIO(blobs["events.csv"].decode())))
    assert "Crew booked for Monday" in {e["note"] for e in events}
    assert {e["public_id"] for e in events} == set(by_id)
    assert not any(e["kind"].startswith(("description_", "photo_")) for e in events)

    # Photos: the EXIF-free public copies of the photos the public sees, none other.
    photos = [n for n in names if n.startswith("photos/")]
    assert len(photos) == 2
    served = {
        hashlib.sha256((settings.media_dir / records["hidden_photo"]).read_bytes()).hexdigest()
    }
    for name in photos:
        assert hashlib.sha256(blobs[name]).hexdigest() not in served
        with Image.open(io.BytesIO(blobs[name])) as img:
            assert dict(img.getexif()) == {}
    assert any(n.startswith(f"photos/{records['plain']}/") for n in photos)

    # The manifest counts what the files hold, and names what was withheld.
    assert manifest["counts"] == {"requests": 3, "events": len(events), "photos": 2}
    assert f"{len(events)} public events" in res.stdout
    assert manifest["files"]["requests.csv"]["rows"] == len(rows)
    assert manifest["files"]["requests.geojson"]["features"] == len(geo["features"])
    assert manifest["files"]["events.csv"]["rows"] == len(events)
    assert manifest["files"]["photos/"]["files"] == len(photos)
    withheld = {w["what"]: w for w in manifest["withheld"]}
    assert withheld["requests in private categories"]["count"] == 1
    assert withheld["requests in private categories"]["categories"] == {"Abuse report": 1}
    assert withheld["requests held for review"]["count"] == 1
    assert withheld["descriptions hidden by staff"]["count"] == 1
    assert withheld["descriptions redacted by staff"]["count"] == 1
    assert withheld["photos hidden from the public"]["count"] == 1
    assert withheld["internal events"]["count"] >= 3  # the note, two moderations
    assert withheld["personal data in texts"]["count"] == 4
    assert "service_request.contact_email" in manifest["columns_never_exported"]
    assert manifest["period"]["since"] == records["since"]


def test_bad_arguments_stop_with_one_line_and_leave_nothing(cli, records, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    existing = folder / "old.zip"
    existing.write_bytes(b"keep me")
    base = ["records", "export", "--city", "testville"]
    cases = [
        (["--since", "2026-13-01", "--until", "2026-12-31"], "--since '2026-13-01' is not a date"),
        (["--since", "yesterday", "--until", "2026-12-31"], "write it as YYYY-MM-DD"),
        (["--since", "2026-02-01", "--until", "2026-01-01"], "is after --until 2026-01-01"),
        (["--since", "2026-01-01", "--until", "9999-12-31"], "out of range (years 1900 to 2999)"),
    ]
    dates = ["--since", records["since"], "--until", records["until"]]
    for args, message in cases:
        res = cli(*base, *args, "--out", str(folder / "a.zip"))
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1, res.stderr
        assert lines[0].startswith("civicpin: error: ") and message in lines[0], lines[0]
    for args, message in [
        (["--out", str(folder / "a.csv")], "must name a .zip file"),
        (["--out", str(folder / "missing" / "a.zip")], "does not exist"),
        (["--out", str(existing)], "exists already (add --force to replace it)"),
    ]:
        res = cli(*base, *dates, *args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode != 0 and len(lines) == 1, res.stderr
        assert message in lines[0], lines[0]
    res = cli("records", "export", "--city", "atlantis", *dates, "--out", str(folder / "a.zip"))
    assert res.returncode != 0 and "no city with slug 'atlantis'" in res.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["old.zip"]
    assert existing.read_bytes() == b"keep me"

    res = cli(*base, *dates, "--out", str(existing), "--force")
    assert res.returncode == 0, res.stderr
    assert zipfile.is_zipfile(existing)
    assert sorted(p.name for p in folder.iterdir()) == ["old.zip"]


def test_a_failure_while_writing_leaves_no_file(sessions, settings, records, tmp_path, monkeypatch):
    from records import public_export

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(public_export, "_write_events", broken)
    period = public_export.check_period(
        public_export.parse_day(records["since"], "since"),
        public_export.parse_day(records["until"], "until"),
    )
    with sessions() as s, pytest.raises(OSError):
        city = s.scalar(sa.select(Jurisdiction))
        public_export.export_public_records(s, city, period, tmp_path / "x.zip", settings.media_dir)
    assert list(tmp_path.glob("*.zip*")) == [] and list(tmp_path.glob(".x.zip*")) == []


def test_redact_finds_contacts_and_spares_coordinates_and_dates():
    text, n = redact(
        "Ring 07700 900123 or +44 20 7946 0958, mail a.b@c.org; seen 2026-01-05 at "
        "34.05123, -118.28456; Jo Bloggs says hi",
        ("Jo Bloggs", None, ""),
    )
    assert n == 4
    assert "07700" not in text and "7946" not in text and "a.b@c.org" not in text
    assert "Jo Bloggs" not in text
    assert "2026-01-05" in text and "34.05123, -118.28456" in text
