"""``civicpin requests export (owned by the dispatch/routing work)``."""
