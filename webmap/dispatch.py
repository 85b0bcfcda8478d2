"""Active Dispatch: the dispatcher's live queue."""

from flask import Blueprint

bp = Blueprint("dispatch", __name__)
