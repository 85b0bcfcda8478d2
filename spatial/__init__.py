"""civicpin: spatial."""
