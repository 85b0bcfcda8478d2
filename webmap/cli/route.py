"""``civicpin route`` (owned by the routing work)."""
