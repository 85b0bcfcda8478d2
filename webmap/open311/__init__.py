"""Open311 GeoReport v2 server: register ``webmap.open311.bp`` on the app."""

from webmap.open311.views import bp

__all__ = ["bp"]
