"""civicpin: routing."""
