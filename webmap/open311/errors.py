"""Open311 errors: a list of ``{code, description}`` in the requested format.

HTTP statuses follow the spec: 404 for what does not exist, 403 for a missing or bad
``api_key``, 400 for anything else that cannot be done, including failures of our own
(the spec's "general service error"). Two more, chosen here:

- 405 for a method a resource does not have: the HTTP status clients and proxies expect,
  with an ``Allow`` header, and still an Open311 error body;
- a POST over a key's rate limit answers **403** with body code 429 and a ``Retry-After``
  header. The issue restricts statuses to 400/403/404, so 429 cannot be the HTTP status;
  the limit belongs to the API key (it is the key that may not post right now), which the
  spec reports with 403; and the spec lets the body's code differ from the HTTP status
  "so that more specific error codes can be used", so 429 in the body tells a client
  that reads it to back off rather than to replace its key.
"""

from __future__ import annotations

from flask import Response, request

from webmap.open311.render import render

RATE_LIMITED_CODE = 429


class Open311Error(Exception):
    """An error answer: HTTP ``status`` and one or more ``(code, description)`` pairs."""

    def __init__(
        self,
        status: int,
        description: str | list[tuple[int, str]],
        headers: dict[str, str] | None = None,
    ):
        self.status = status
        if isinstance(description, str):
            self.errors = [(status, description)]
        else:
            self.errors = list(description)
        self.headers = headers or {}
        super().__init__(self.errors[0][1])


def bad_request(description: str) -> Open311Error:
    return Open311Error(400, description)


def not_found(description: str) -> Open311Error:
    return Open311Error(404, description)


def requested_format() -> str:
    """``json`` when the URL asks for it (``....json``), otherwise XML, the spec's default."""
    fmt = (request.view_args or {}).get("fmt")
    if fmt in ("json", "xml"):
        return fmt
    return "json" if request.path.lower().endswith(".json") else "xml"


def error_response(err: Open311Error) -> Response:
    body = [{"code": code, "description": text} for code, text in err.errors]
    resp = render(requested_format(), "errors", body, status=err.status)
    for name, value in err.headers.items():
        resp.headers[name] = value
    return resp
