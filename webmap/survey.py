"""Satisfaction survey behind the resolution e-mail's one-time link."""

from flask import Blueprint

bp = Blueprint("survey", __name__)
