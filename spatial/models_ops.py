"""Models of the ops work (tables added after the first schema); imported by spatial.models."""
