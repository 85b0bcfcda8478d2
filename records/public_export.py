"""The public-records export: one city's requests of a period, as the public may see them.

:func:`export_public_records` writes one zip file:

    requests.csv        one row per request (the fields the public pages show)
    requests.geojson    the same requests as points (no geometry for one without a pin)
    events.csv          their public events (the history on the status page)
    photos/<id>/...     their public photos: the EXIF-free copies the public pages serve
    manifest.json       what is in the file, the counts, and what was withheld and why

The public pages' rules decide what goes out: no request of a private category, none held
for review, the description as moderated, no photo staff hid or that was never public, no
internal event (records.moderation). Personal data never goes out: no contact column, no
answers to the category's questions (they may be private), no names of who acted; e-mail
addresses, phone numbers and the reporter's own name, e-mail and phone are replaced in
every free text (descriptions, addresses, notes) by :data:`REMOVED`.

The rows are read in one repeatable-read transaction, so the counts in the manifest are
those of the rows written. The zip is written next to its destination under a temporary
name and renamed into place when complete: a failure leaves nothing behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from records.moderation import PHOTO_SHOWN, PUBLISHED, TEXT_REMOVED, shown_description_sql
from spatial.errors import InvalidInput
from spatial.models import (
    Department,
    Jurisdiction,
    Photo,
    RequestEvent,
    Service,
    ServiceRequest,
    now_utc,
)
from spatial.models_places import Asset, AssetLayer

REMOVED = "[personal data removed]"
# Dates outside these years are typing mistakes (and the last day of year 9999 has no
# next day to end the period).
FIRST_YEAR, LAST_YEAR = 1900, 2999
REQUEST_COLUMNS = [
    "public_id",
    "service_code",
    "service_name",
    "service_group",
    "status",
    "requested_at",
    "updated_at",
    "expected_at",
    "closed_at",
    "close_reason",
    "department",
    "address",
    "lat",
    "lon",
    # The city's asset the request is about (a street light's pole number): city data,
    # not personal data.
    "asset_layer",
    "asset_ref",
    "asset_label",
    "description",
    "description_moderated",
    "channel",
    "duplicate_of",
    "media_url",
    "photos",
]
EVENT_COLUMNS = ["public_id", "at", "kind", "from_value", "to_value", "note"]

# Columns that hold personal data or staff's internal work: never exported, and why.
NEVER_EXPORTED = {
    "service_request.contact_name": "the reporter's name",
    "service_request.contact_email": "the reporter's e-mail address",
    "service_request.contact_phone": "the reporter's phone number",
    "service_request.device_id": "identifies the reporter's device",
    "service_request.account_id": "identifies the reporter's account",
    "service_request.token": "the reporter's private link",
    "service_request.attributes": "answers to the category's questions, which may be private",
    "service_request.routing_explanation": "staff's account of the routing",
    "service_request.priority": "internal triage",
    "request_event.actor_label": "names of staff and residents who acted",
    "photo.original_key": "the original photos, with their EXIF data (camera, GPS)",
    "follower.email": "followers' e-mail addresses",
    "inbound_email": "received mail",
}

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Runs of digits with the separators phone numbers are written with; only runs of at
# least 7 digits that are not a decimal number (coordinates) or a date count.
_PHONE = re.compile(r"\+?\(?\d[\d\s().-]{5,}\d")
_DECIMAL = re.compile(r"-?\d+\.\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class ExportPeriod:
    """Requests made from ``since`` to ``until`` (local days, both included)."""

    since: date
    until: date


def parse_day(text: str | None, name: str) -> date:
    """A ``YYYY-MM-DD`` date, or :class:`InvalidInput` naming the option."""
    value = (text or "").strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        day = date.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"--{name} {value!r} is not a date: write it as YYYY-MM-DD", field=name
        ) from None
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidInput(
            f"--{name} {value} is out of range (years {FIRST_YEAR} to {LAST_YEAR})", field=name
        )
    return day


def check_period(since: date, until: date) -> ExportPeriod:
    if since > until:
        raise InvalidInput(f"--since {since} is after --until {until}", field="since")
    return ExportPeriod(since, until)


def check_destination(out: Path, *, force: bool = False) -> Path:
    """The zip file to write, checked before anything is read or written."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise InvalidInput(f"--out {str(out)!r} must name a .zip file", field="out")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidInput(f"--out: the folder {str(parent)!r} does not exist", field="out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"--out: cannot write in the folder {str(parent)!r}", field="out")
    if out.is_dir():
        raise InvalidInput(f"--out {str(out)!r} is a folder", field="out")
    if out.exists() and not force:
        raise InvalidInput(
            f"--out {str(out)!r} exists already (add --force to replace it)", field="out"
        )
    return out


def redact(text: str | None, known: tuple[str | None, ...] = ()) -> tuple[str | None, int]:
    """``text`` with personal data replaced by :data:`REMOVED`, and how many replacements.

    ``known``: the reporter's own name, e-mail and phone, replaced wherever they appear.
    """
    if not text:
        return text, 0
    count = 0
    for value in known:
        value = (value or "").strip()
        if len(value) >= 3:
            text, n = re.subn(re.escape(value), REMOVED, text, flags=re.IGNORECASE)
            count += n
    text, n = _EMAIL.subn(REMOVED, text)
    count += n

    def phone(match: re.Match) -> str:
        nonlocal count
        found = match.group().strip()
        digits = sum(c.isdigit() for c in found)
        if digits < 7 or _DECIMAL.fullmatch(found) or _DATE.match(found):
            return match.group()
        count += 1
        return REMOVED

    text = _PHONE.sub(phone, text)
    return text, count


def _local(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).isoformat(timespec="seconds") if value is not None else ""


def _period_bounds(city: Jurisdiction, period: ExportPeriod) -> tuple[datetime, datetime]:
    tz = ZoneInfo(city.timezone)
    start = datetime.combine(period.since, time.min, tzinfo=tz)
    end = datetime.combine(period.until + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def export_public_records(
    session: Session,
    city: Jurisdiction,
    period: ExportPeriod,
    out: Path,
    media_dir: Path,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Write the public-records zip of ``city``'s requests made in ``period`` to ``out``;
    returns the manifest (also in the zip as ``manifest.json``).

    Read the rows in a repeatable-read transaction (the CLI does) for a manifest that
    matches them even while requests keep arriving.
    """
    out = check_destination(out, force=force)
    start, end = _period_bounds(city, period)
    tz = ZoneInfo(city.timezone)
    in_period = sa.and_(
        ServiceRequest.jurisdiction_id == city.id,
        ServiceRequest.requested_at >= start,
        ServiceRequest.requested_at < end,
    )
    exported = sa.and_(
        in_period, Service.private.is_(False), Service.internal.is_(False), PUBLISHED
    )

    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            stats = _write_requests(session, zf, exported, tz)
            stats["events"] = _write_events(session, zf, exported, tz, stats)
            photos, missing = _write_photos(session, zf, exported, Path(media_dir))
            manifest = _manifest(
                session, city, period, start, end, in_period, exported, stats, photos, missing, now
            )
            zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return manifest


def _csv_entry(zf: zipfile.ZipFile, name: str):
    return io.TextIOWrapper(zf.open(name, "w"), encoding="utf-8", newline="")


def _write_requests(session: Session, zf: zipfile.ZipFile, exported, tz: ZoneInfo) -> dict:
    parent = aliased(ServiceRequest)
    photo_count = (
        sa.select(sa.func.count())
        .where(Photo.request_id == ServiceRequest.id, PHOTO_SHOWN)
        .correlate(ServiceRequest)
        .scalar_subquery()
    )
    query = (
        sa.select(
            ServiceRequest.public_id,
            Service.code,
            Service.name,
            Service.group,
            ServiceRequest.status,
            ServiceRequest.requested_at,
            ServiceRequest.updated_at,
            ServiceRequest.due_at,
            ServiceRequest.closed_at,
            ServiceRequest.close_reason,
            Department.name.label("department"),
            ServiceRequest.address,
            sa.func.ST_Y(ServiceRequest.location).label("lat"),
            sa.func.ST_X(ServiceRequest.location).label("lon"),
            AssetLayer.name.label("asset_layer"),
            ServiceRequest.asset_ref,
            Asset.label.label("asset_label"),
            shown_description_sql().label("description"),
            ServiceRequest.description_moderation,
            ServiceRequest.channel,
            parent.public_id.label("duplicate_of"),
            ServiceRequest.media_url,
            photo_count.label("photos"),
            # Read only to find them in the free texts; never written.
            ServiceRequest.contact_name,
            ServiceRequest.contact_email,
            ServiceRequest.contact_phone,
        )
        .join(Service, Service.id == ServiceRequest.service_id)
        .outerjoin(Department, Department.id == ServiceRequest.department_id)
        .outerjoin(parent, parent.id == ServiceRequest.duplicate_of_id)
        .outerjoin(AssetLayer, AssetLayer.id == ServiceRequest.asset_layer_id)
        .outerjoin(
            Asset,
            sa.and_(
                Asset.layer_id == ServiceRequest.asset_layer_id,
                Asset.ref == ServiceRequest.asset_ref,
            ),
        )
        .where(exported)
        .order_by(ServiceRequest.requested_at, ServiceRequest.id)
        .execution_options(yield_per=2000)
    )
    stats = {"requests": 0, "redactions": 0, "hidden": 0, "redacted": 0}
    # The GeoJSON is built beside the CSV in a temporary file: a zip takes one entry at a
    # time, and a city's year of requests need not fit in memory.
    with tempfile.TemporaryFile("w+", encoding="utf-8") as geo:
        geo.write('{"type": "FeatureCollection", "features": [\n')
        with _csv_entry(zf, "requests.csv") as fh:
            writer = csv.writer(fh)
            writer.writerow(REQUEST_COLUMNS)
            for r in session.execute(query):
                row = _request_row(r, tz, stats)
                writer.writerow([row[c] for c in REQUEST_COLUMNS])
                geometry = (
                    None
                    if r.lat is None
                    else {"type": "Point", "coordinates": [row["lon"], row["lat"]]}
                )
                properties = {k: (None if v == "" else v) for k, v in row.items()}
                feature = {"type": "Feature", "geometry": geometry, "properties": properties}
                geo.write(("," if stats["requests"] else "") + json.dumps(feature) + "\n")
                stats["requests"] += 1
        geo.write("]}\n")
        geo.seek(0)
        with zf.open("requests.geojson", "w") as entry:
            while chunk := geo.read(1 << 20):
                entry.write(chunk.encode("utf-8"))
    return stats


def _request_row(r, tz: ZoneInfo, stats: dict) -> dict[str, Any]:
    known = (r.contact_name, r.contact_email, r.contact_phone)
    texts = {}
    for name in ("description", "address", "close_reason"):
        texts[name], n = redact(getattr(r, name), known)
        stats["redactions"] += n
    if r.description_moderation == "hidden":
        stats["hidden"] += 1
    elif r.description_moderation == "redacted":
        stats["redacted"] += 1
    return {
        "public_id": r.public_id,
        "service_code": r.code,
        "service_name": r.name,
        "service_group": r.group or "",
        "status": r.status,
        "requested_at": _local(r.requested_at, tz),
        "updated_at": _local(r.updated_at, tz),
        "expected_at": _local(r.due_at, tz),
        "closed_at": _local(r.closed_at, tz),
        "close_reason": texts["close_reason"] or "",
        "department": r.department or "",
        "address": texts["address"] or "",
        "lat": "" if r.lat is None else round(r.lat, 7),
        "lon": "" if r.lon is None else round(r.lon, 7),
        "asset_layer": (r.asset_layer or "") if r.asset_ref else "",
        "asset_ref": r.asset_ref or "",
        "asset_label": r.asset_label or "",
        "description": texts["description"] or "",
        "description_moderated": r.description_moderation or "",
        "channel": r.channel,
        "duplicate_of": r.duplicate_of or "",
        "media_url": r.media_url or "",
        "photos": int(r.photos),
    }


def _write_events(
    session: Session, zf: zipfile.ZipFile, exported, tz: ZoneInfo, stats: dict
) -> int:
    query = (
        sa.select(
            ServiceRequest.public_id,
            RequestEvent.at,
            RequestEvent.kind,
            RequestEvent.from_value,
            RequestEvent.to_value,
            RequestEvent.note,
            ServiceRequest.contact_name,
            ServiceRequest.contact_email,
            ServiceRequest.contact_phone,
        )
        .join(ServiceRequest, ServiceRequest.id == RequestEvent.request_id)
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(exported, RequestEvent.public.is_(True))
        .order_by(ServiceRequest.requested_at, ServiceRequest.id, RequestEvent.at, RequestEvent.id)
        .execution_options(yield_per=5000)
    )
    count = 0
    with _csv_entry(zf, "events.csv") as fh:
        writer = csv.writer(fh)
        writer.writerow(EVENT_COLUMNS)
        for e in session.execute(query):
            known = (e.contact_name, e.contact_email, e.contact_phone)
            values = []
            for value in (e.from_value, e.to_value, e.note):
                text, n = redact(value, known)
                stats["redactions"] += n
                values.append(text or "")
            writer.writerow([e.public_id, _local(e.at, tz), e.kind, *values])
            count += 1
    return count


def _write_photos(
    session: Session, zf: zipfile.ZipFile, exported, media_dir: Path
) -> tuple[int, int]:
    """The served copies of the public photos; returns (written, missing from storage)."""
    rows = session.execute(
        sa.select(ServiceRequest.public_id, Photo.id, Photo.stage, Photo.public_key)
        .join(ServiceRequest, ServiceRequest.id == Photo.request_id)
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(exported, PHOTO_SHOWN)
        .order_by(ServiceRequest.requested_at, ServiceRequest.id, Photo.id)
        .execution_options(yield_per=2000)
    )
    written = missing = 0
    for public_id, photo_id, stage, key in rows:
        path = media_dir / key
        if not path.is_file():
            missing += 1
            continue
        zf.write(path, f"photos/{public_id}/{photo_id}-{stage}.jpg", zipfile.ZIP_STORED)
        written += 1
    return written, missing


def _manifest(
    session: Session,
    city: Jurisdiction,
    period: ExportPeriod,
    start: datetime,
    end: datetime,
    in_period,
    exported,
    stats: dict,
    photos: int,
    missing: int,
    now: datetime | None,
) -> dict[str, Any]:
    """What the zip holds and what it leaves out, with counts a reader can check."""
    private = session.execute(
        sa.select(Service.name, sa.func.count())
        .join(ServiceRequest, ServiceRequest.service_id == Service.id)
        .where(in_period, Service.private.is_(True))
        .group_by(Service.name)
        .order_by(Service.name)
    ).all()
    held = session.scalar(
        sa.select(sa.func.count())
        .select_from(ServiceRequest)
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(in_period, Service.private.is_(False), ServiceRequest.held_at.is_not(None))
    )
    photo_rows = (
        sa.select(sa.func.count())
        .select_from(Photo)
        .join(ServiceRequest, ServiceRequest.id == Photo.request_id)
        .join(Service, Service.id == ServiceRequest.service_id)
    )
    hidden_photos = session.scalar(photo_rows.where(exported, sa.not_(PHOTO_SHOWN)))
    internal = session.scalar(
        sa.select(sa.func.count())
        .select_from(RequestEvent)
        .join(ServiceRequest, ServiceRequest.id == RequestEvent.request_id)
        .join(Service, Service.id == ServiceRequest.service_id)
        .where(exported, RequestEvent.public.is_(False))
    )
    tz = ZoneInfo(city.timezone)
    withheld = [
        {
            "what": "requests in private categories",
            "count": sum(n for _, n in private),
            "categories": {name: n for name, n in private},
            "why": "private categories are never public (the public pages do not show them)",
        },
        {
            "what": "requests held for review",
            "count": int(held or 0),
            "why": "the city holds these reports until a dispatcher confirms them",
        },
        {
            "what": "descriptions hidden by staff",
            "count": stats["hidden"],
            "why": f"exported as {TEXT_REMOVED!r}, as the public sees them",
        },
        {
            "what": "descriptions redacted by staff",
            "count": stats["redacted"],
            "why": "exported as the text staff wrote for the public, not the reporter's",
        },
        {
            "what": "photos hidden from the public",
            "count": int(hidden_photos or 0),
            "why": "hidden by staff, or mailed by a sender the city could not verify",
        },
        {
            "what": "photo files missing from storage",
            "count": missing,
            "why": "listed in the database, but the public copy was not found",
        },
        {
            "what": "internal events",
            "count": int(internal or 0),
            "why": "staff's notes and routing work; only the public history is exported",
        },
        {
            "what": "personal data in texts",
            "count": stats["redactions"],
            "why": (
                "e-mail addresses, phone numbers and the reporter's own name, e-mail and "
                f"phone in descriptions, addresses and notes are replaced by {REMOVED!r}"
            ),
        },
    ]
    return {
        "city": {"slug": city.slug, "name": city.name, "time_zone": city.timezone},
        "period": {
            "since": period.since.isoformat(),
            "until": period.until.isoformat(),
            "requested_from": _local(start, tz),
            "requested_before": _local(end, tz),
        },
        "generated_at": _local(now or now_utc(), tz),
        "files": {
            "requests.csv": {"rows": stats["requests"], "columns": REQUEST_COLUMNS},
            "requests.geojson": {"features": stats["requests"]},
            "events.csv": {"rows": stats["events"], "columns": EVENT_COLUMNS},
            "photos/": {"files": photos},
        },
        "counts": {"requests": stats["requests"], "events": stats["events"], "photos": photos},
        "withheld": withheld,
        "columns_never_exported": NEVER_EXPORTED,
    }
