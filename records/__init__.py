"""Records: what the city keeps about residents, for how long, and what it publishes.

- :mod:`records.retention` - per-city retention periods, enforced daily;
- :mod:`records.erasure` - a data-subject request: one person's address out of every table;
- :mod:`records.moderation` - staff hide or redact what the public pages show;
- :mod:`records.public_export` - the public-records export.

Personal data lives in few columns (a request's contact fields and private answers, a
follower's address, inbound mail, photo originals); these modules work on exactly those,
and statistics never depend on them.
"""
