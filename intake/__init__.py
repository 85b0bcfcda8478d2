"""civicpin: intake."""
