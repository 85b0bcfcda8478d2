"""Rendering Open311 answers as JSON or XML from the same plain Python values.

The values are dicts (element name -> value, in the order the spec lists them), lists,
strings, numbers and booleans. JSON is the plain mapping (the spec's "Spark convention");
XML wraps every list in its plural element and each item in the singular element named
in :data:`ITEM_NAMES`. ``None`` values are left out in both: an optional field without a
value is omitted, never sent empty or null.
"""

from __future__ import annotations

import json
import re
from typing import Any
from xml.etree import ElementTree as ET

from flask import Response

FORMATS = ("json", "xml")
CONTENT_TYPES = {
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>\n'

# List element -> item element, as in the spec's XML examples.
ITEM_NAMES = {
    "services": "service",
    "attributes": "attribute",
    "values": "value",
    "service_requests": "request",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
    "photos": "photo",
    "service_request_updates": "request_update",
}

# Characters XML 1.0 cannot carry at all (C0 controls except tab/LF/CR, lone surrogates,
# U+FFFE/U+FFFF). A description pasted from a PDF can hold them; dropping them keeps the
# document well-formed for strict parsers.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return _XML_INVALID.sub("", str(value))


def _append(parent: ET.Element, name: str, value: Any) -> None:
    if value is None:
        return
    el = ET.SubElement(parent, name)
    _fill(el, name, value)


def _fill(el: ET.Element, name: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _append(el, key, item)
    elif isinstance(value, list | tuple):
        item_name = ITEM_NAMES.get(name)
        if item_name is None:
            raise ValueError(f"no XML item element known for list {name!r}")
        for item in value:
            _append(el, item_name, item)
    else:
        el.text = xml_text(value)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value if v is not None]
    return value


def to_xml(root: str, value: Any) -> str:
    """The XML document for ``value`` under element ``root`` (declaration included)."""
    el = ET.Element(root)
    _fill(el, root, value)
    return XML_DECLARATION + ET.tostring(el, encoding="unicode")


def to_json(value: Any) -> str:
    return json.dumps(_drop_none(value), ensure_ascii=False, allow_nan=False)


def render(fmt: str, root: str, value: Any, status: int = 200) -> Response:
    """A response holding ``value`` in format ``fmt`` (``json`` or ``xml``)."""
    if fmt == "json":
        body = to_json(value)
    else:
        fmt = "xml"
        body = to_xml(root, value)
    return Response(body, status=status, content_type=CONTENT_TYPES[fmt])
