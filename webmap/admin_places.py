"""Administration: the city's places: address points, streets and asset layers.

The same import functions as ``civicpin addresses|streets|assets import``
(:mod:`places.importers`).
"""

from __future__ import annotations

from flask import Blueprint

from webmap.staffkit import install_errors, install_headers

bp = Blueprint("admin_places", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)
