"""Administration: the catalogue: categories, their questions, and the city's business calendar."""

from __future__ import annotations

from flask import Blueprint

from webmap.staffkit import install_errors, install_headers

bp = Blueprint("admin_catalog", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)
