"""Assets on the web: the report map's nearby assets of a category's layer (public JSON),
and each asset's history page for staff.
"""

from __future__ import annotations

from flask import Blueprint

from webmap.staffkit import install_errors, install_headers

bp = Blueprint("assets", __name__)
install_headers(bp)
install_errors(bp)
