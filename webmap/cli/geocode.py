"""``civicpin geocode --city SLUG "TEXT"``: the geocoder's candidates, best first."""

from __future__ import annotations
