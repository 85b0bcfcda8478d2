"""Placeholder: filled in by the service-loop work."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin_escalation", __name__)
