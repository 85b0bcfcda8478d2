"""civicpin: webmap."""
