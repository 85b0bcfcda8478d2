"""Public pages (placeholder until the map page lands)."""

from flask import Blueprint

bp = Blueprint("public", __name__)


@bp.get("/")
def index():
    return "civicpin"
