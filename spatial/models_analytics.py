"""Models of the analytics work (tables added after the first schema); imported by spatial.models."""
