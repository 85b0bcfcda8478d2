"""Models of the mail work (tables added after the first schema); imported by spatial.models."""
