"""The self-service FAQ, per category and topic."""

from flask import Blueprint

bp = Blueprint("faq", __name__)
