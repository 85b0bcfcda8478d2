"""``civicpin mail-intake, mail-poll and worker (owned by the mail work)``."""
