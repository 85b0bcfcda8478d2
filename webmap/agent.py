"""Agent console: call-takers enter requests for callers."""

from flask import Blueprint

bp = Blueprint("agent", __name__)
