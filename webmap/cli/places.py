"""``civicpin addresses|streets|assets ...``: the city's reference places from files."""

from __future__ import annotations
