"""``civicpin city ...`` (owned by the zones/cities work)."""
