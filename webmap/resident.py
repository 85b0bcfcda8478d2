"""Residents: report a problem, track it, follow one."""

from flask import Blueprint

bp = Blueprint("resident", __name__)
