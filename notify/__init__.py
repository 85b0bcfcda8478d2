"""civicpin: notify."""
