"""``civicpin demo generate`` (owned by the generator work)."""
