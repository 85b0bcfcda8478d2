"""Planner analytics: heatmaps, hotspots, gaps, scorecards."""

from flask import Blueprint

bp = Blueprint("planner", __name__)
