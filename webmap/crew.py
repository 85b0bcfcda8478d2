"""Crews: the map layer of their assigned work."""

from flask import Blueprint

bp = Blueprint("crew", __name__)
