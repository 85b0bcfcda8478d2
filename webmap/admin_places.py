"""Administration: the city's places: address points, streets and asset layers.

The same import functions as ``civicpin addresses|streets|assets import``
(:mod:`places.importers`). An upload is kept on disk (never in memory) under the
uploads folder, so "check" (a dry run that shows the report and the file's columns)
and then "import" read the same file without a second upload. Each import or change
writes one admin audit event; a bad file or field re-renders the page with status 400
and the message beside the field, after a rollback.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.utils import secure_filename

from places import importers
from places import store as places_store
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction
from webmap.admin import (
    _audit,
    _city,
    _drop_upload,
    _page,
    _saved_upload,
    _sweep_uploads,
    _uploads_dir,
)
from webmap.app import db_session
from webmap.auth import current_user, roles_required
from webmap.staffkit import install_errors, install_headers

bp = Blueprint("admin_places", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)

KINDS = ("addresses", "streets", "assets")
# The map keys each form offers, in order (the CLI's --map keys).
MAP_FIELDS = {
    "addresses": ("number", "street", "address", "suffix", "unit", "zip", "id", "lat", "lon"),
    "streets": ("name", "from_left", "to_left", "from_right", "to_right", "zip_left",
                "zip_right", "id"),
}  # fmt: skip
ASSET_FIELDS = ("layer", "id_field", "label_field", "title", "lat_field", "lon_field")


def _save(upload) -> tuple[str, Path]:
    """Write an uploaded file to its own folder under the uploads folder: (token, path)."""
    filename = secure_filename(upload.filename or "") or "upload"
    if Path(filename).suffix.lower() not in importers.FORMATS:
        raise InvalidInput(
            f"{upload.filename}: not a supported format (use {importers.FORMAT_NAMES})",
            field="file",
        )
    root = _uploads_dir()
    root.mkdir(parents=True, exist_ok=True)
    _sweep_uploads(root)
    token = secrets.token_urlsafe(16)
    folder = root / token
    folder.mkdir(mode=0o700)
    path = folder / filename
    upload.save(path)
    return token, path


def _ctx(city: Jurisdiction) -> dict[str, Any]:
    session = db_session()
    layers = []
    for layer in places_store.asset_layers(session, city):
        layers.append(
            {
                "layer": layer,
                "count": places_store.asset_count(session, layer),
                "versions": places_store.datasets(session, city, "assets", layer),
            }
        )
    return {
        "addresses": places_store.datasets(session, city, "addresses"),
        "streets": places_store.datasets(session, city, "streets"),
        "layers": layers,
        "map_fields": MAP_FIELDS,
    }


@bp.get("/places")
@roles_required("admin")
def places():
    return _page("places.html", **_ctx(_city()))


def _run(kind: str, session, city: Jurisdiction, path: Path, source_name: str, dry: bool):
    form = request.form
    common = {
        "imported_by": current_user().email,
        "source_name": source_name,
        "file_layer": (form.get("layer_name") or "").strip() or None,
        "dry_run": dry,
        "skip_bad": bool(form.get("skip_bad")),
    }
    if kind == "assets":
        return importers.import_assets(
            session,
            city,
            path,
            layer=(form.get("layer") or "").strip(),
            id_field=(form.get("id_field") or "").strip(),
            label_field=(form.get("label_field") or "").strip() or None,
            title=(form.get("title") or "").strip() or None,
            lat_field=(form.get("lat_field") or "").strip() or None,
            lon_field=(form.get("lon_field") or "").strip() or None,
            **common,
        )
    mapping = {
        key: form.get(f"map_{key}", "").strip()
        for key in MAP_FIELDS[kind]
        if form.get(f"map_{key}", "").strip()
    }
    wanted = importers.import_addresses if kind == "addresses" else importers.import_streets
    return wanted(session, city, path, mapping, **common)


@bp.post("/places/<any(addresses, streets, assets):dataset_kind>")
@roles_required("admin")
def import_places(dataset_kind: str):
    """Upload a file, "check" it (a dry run: the report, the first bad rows and the
    file's columns) or "import" it as the next version of the city's set."""
    kind = dataset_kind
    city = _city()
    session = db_session()
    form = request.form
    dry = form.get("action") != "import"
    upload = request.files.get("file")
    token = (form.get("upload") or "").strip() or None
    path: Path | None = None
    columns: list[str] = []
    report = None
    try:
        if upload is not None and upload.filename:
            _drop_upload(token)
            token, path = _save(upload)
        elif token is not None:
            path = _saved_upload(token)
        else:
            raise InvalidInput(f"choose a file ({importers.FORMAT_NAMES})", field="file")
        source_name = path.name
        report = _run(kind, session, city, path, source_name, dry)
        columns = report.columns
    except InvalidInput as exc:
        session.rollback()
        if isinstance(exc, importers.BadRows):
            report = exc.report
        if path is not None and not columns:
            try:
                columns = importers.columns_of(
                    path, file_layer=(form.get("layer_name") or "").strip() or None
                )
            except InvalidInput:
                columns = []
        if path is not None and exc.field == "file" and report is None:
            _drop_upload(token)  # an unreadable file is not kept for a second try
            token = None
        if dry and isinstance(exc, importers.BadRows):
            # A check that finds bad rows did its job: show them, keep the file.
            return _page(
                "places.html",
                active=kind,
                form=form,
                report=report,
                upload=token,
                columns=columns,
                errors={"file": str(exc)},
                **_ctx(city),
            )
        return _page(
            "places.html",
            400,
            active=kind,
            form=form,
            report=report,
            upload=token,
            columns=columns,
            errors={exc.field or "form": str(exc)},
            **_ctx(city),
        )
    if dry:
        session.rollback()
        return _page(
            "places.html",
            active=kind,
            form=form,
            report=report,
            upload=token,
            columns=columns,
            **_ctx(city),
        )
    what: dict[str, Any] = {
        "file": report.source_name,
        "version": report.version,
        "rows": report.rows_written,
        "bad": report.rows_bad,
    }
    if report.layer:
        what["layer"] = report.layer
    _audit(f"{kind}.import", "place_dataset", None, **what)
    session.commit()
    _drop_upload(token)
    flash(" · ".join(line.strip() for line in report.lines()[:3]))
    return redirect(url_for("admin_places.places"))


def _layer(city: Jurisdiction):
    return places_store.asset_layer(db_session(), city, (request.form.get("layer") or "").strip())


@bp.post("/places/assets/title")
@roles_required("admin")
def layer_title():
    city = _city()
    session = db_session()
    try:
        layer = _layer(city)
        old = places_store.set_layer_title(session, layer, request.form.get("title", ""))
    except InvalidInput as exc:
        session.rollback()
        return _page(
            "places.html", 400, active="layer", form=request.form,
            errors={exc.field or "form": str(exc)}, **_ctx(city),
        )  # fmt: skip
    _audit("asset_layer.update", "asset_layer", layer.id, name=layer.name, title=[old, layer.title])
    session.commit()
    flash(f"Asset layer {layer.name}: title {layer.title}")
    return redirect(url_for("admin_places.places"))


@bp.post("/places/assets/remove")
@roles_required("admin")
def remove_layer():
    city = _city()
    session = db_session()
    try:
        layer = _layer(city)
        layer_id, name = layer.id, layer.name
        removed = places_store.remove_layer(session, layer)
    except InvalidInput as exc:
        session.rollback()
        return _page(
            "places.html", 400, active="layer", form=request.form,
            errors={exc.field or "form": str(exc)}, **_ctx(city),
        )  # fmt: skip
    _audit("asset_layer.remove", "asset_layer", layer_id, name=name, assets=removed)
    session.commit()
    flash(f"Asset layer {name} removed with its {removed:,} assets")
    return redirect(url_for("admin_places.places"))
