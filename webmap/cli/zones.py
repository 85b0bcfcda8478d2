"""``civicpin zones ...`` (owned by the zones/cities work)."""
