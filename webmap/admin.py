"""Administration: zones, rules, users, API keys, templates."""

from flask import Blueprint

bp = Blueprint("admin", __name__)
