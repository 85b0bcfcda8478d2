"""Placeholder: filled in by the service-loop work."""

from __future__ import annotations
