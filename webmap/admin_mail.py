"""Administration: the city's intake and dispatch mail addresses."""

from __future__ import annotations

from flask import Blueprint

from webmap.staffkit import install_errors, install_headers

bp = Blueprint("admin_mail", __name__, url_prefix="/admin")
install_headers(bp)
install_errors(bp)
