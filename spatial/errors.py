"""Errors a person can act on; every channel renders them in its own form."""


class CivicpinError(Exception):
    """Base of user-facing errors: the message is one line that says what is wrong."""


class NotFound(CivicpinError):
    """A named thing (city, layer, category, request) does not exist."""


class InvalidInput(CivicpinError):
    """Input from outside failed validation; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
