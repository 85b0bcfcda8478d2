"""Checks shared by the Open311 tests: JSON Schema conformance (the public GeoReport v2
schemas in tests/open311_schemas) and element-by-element XML checks against the spec."""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "open311_schemas"
W3C = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})$")
URL = re.compile(r"^https?://[^\s]+$")

# The spec's elements, in the spec's order.
SERVICE = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
ATTRIBUTE = [
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
    "values",
]
REQUEST = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]
POST_ANSWER = ["service_request_id", "token", "service_notice", "account_id"]
TOKEN_ANSWER = ["service_request_id", "token"]
ERROR = ["code", "description"]
DISCOVERY = ["changeset", "contact", "key_service", "endpoints"]
ENDPOINT = ["specification", "url", "changeset", "type", "formats"]
UPDATE = [
    "update_id",
    "service_request_id",
    "status",
    "updated_datetime",
    "description",
    "media_url",
]
BOOLEANS = {"metadata", "variable", "required"}
DATES = {"requested_datetime", "updated_datetime", "expected_datetime"}


def _load(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text())


def _registry() -> Registry:
    resources = [
        (name, Resource.from_contents(_load(name), default_specification=DRAFT4))
        for name in (
            "request.json",
            "requests.json",
            "service.json",
            "services.json",
            "service-definition.json",
        )
    ]
    return Registry().with_resources(resources)


_REGISTRY = _registry()
_SWAGGER = _load("swagger.json")["definitions"]
SCHEMAS = {
    "services": _load("services.json"),
    "service-definition": _load("service-definition.json"),
    "requests": _load("requests.json"),
    "post": {"type": "array", "minItems": 1, "items": _SWAGGER["RequestResponse"]},
    "token": {"type": "array", "minItems": 1, "items": _SWAGGER["TokenResponse"]},
}


def conforms(kind: str, data) -> None:
    """Validate ``data`` against the public schema of ``kind``; also check that every date
    is W3C with ``T`` and an offset, that ids are strings and that no field is null."""
    validator = jsonschema.Draft4Validator(
        SCHEMAS[kind], registry=_REGISTRY, format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    for item in data if isinstance(data, list) else [data]:
        for key, value in item.items():
            assert value is not None, f"{key} is null; optional fields must be left out"
            if key in DATES:
                assert W3C.match(value), f"{key}={value!r} is not W3C with T and offset"
            if key in ("service_request_id", "service_code", "token"):
                assert isinstance(value, str)
            if key == "media_url":
                assert URL.match(value), value


def xml_doc(resp, root: str) -> ET.Element:
    """Parse an XML answer, checking its content type, declaration and root element."""
    assert resp.headers["Content-Type"] == "text/xml; charset=utf-8"
    text = resp.get_data(as_text=True)
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    el = ET.fromstring(resp.get_data())
    assert el.tag == root, f"root is <{el.tag}>, expected <{root}>"
    return el


def elements(el: ET.Element, allowed: list[str], required: list[str]) -> dict[str, ET.Element]:
    """The children of ``el``: only spec elements, in spec order, each once, required ones
    present. Returns them by name."""
    tags = [child.tag for child in el]
    assert len(tags) == len(set(tags)), f"repeated elements in <{el.tag}>: {tags}"
    unknown = [t for t in tags if t not in allowed]
    assert not unknown, f"<{el.tag}> holds elements the spec does not define: {unknown}"
    assert tags == sorted(tags, key=allowed.index), f"<{el.tag}> children out of spec order"
    missing = [t for t in required if t not in tags]
    assert not missing, f"<{el.tag}> lacks {missing}"
    for child in el:
        if child.tag in BOOLEANS:
            assert child.text in ("true", "false"), f"<{child.tag}>{child.text}"
        if child.tag in DATES:
            assert W3C.match(child.text or ""), f"<{child.tag}>{child.text}"
        if child.tag in ("lat", "long"):
            float(child.text)
        if child.tag == "status" and el.tag == "request":
            assert child.text in ("open", "closed")
        if len(child) == 0 and child.tag not in ("attributes", "values", "formats"):
            assert child.text, f"<{child.tag}/> is empty; optional fields must be left out"
    return {child.tag: child for child in el}


def xml_equals_json(el: ET.Element, value) -> None:
    """The XML tree carries exactly the JSON answer's values (lists as plural/singular)."""
    if isinstance(value, dict):
        children = {child.tag: child for child in el}
        assert set(children) == set(value), (el.tag, set(children) ^ set(value))
        for key, item in value.items():
            xml_equals_json(children[key], item)
    elif isinstance(value, list):
        assert len(el) == len(value), (el.tag, len(el), len(value))
        for child, item in zip(el, value, strict=True):
            xml_equals_json(child, item)
    elif isinstance(value, bool):
        assert el.text == ("true" if value else "false")
    elif isinstance(value, int | float):
        assert float(el.text) == value
    else:
        assert el.text == value, (el.tag, el.text, value)


def open311_errors(resp, fmt: str, status: int) -> list[tuple[int, str]]:
    """The (code, description) pairs of an Open311 error answer, checked for shape."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    body = resp.get_data(as_text=True)
    assert "<html" not in body.lower()
    if fmt == "json":
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        data = json.loads(body)
        assert isinstance(data, list) and data
        for item in data:
            assert set(item) == {"code", "description"}
            assert isinstance(item["code"], int) and isinstance(item["description"], str)
            assert item["description"]
        return [(item["code"], item["description"]) for item in data]
    root = xml_doc(resp, "errors")
    out = []
    assert len(root) >= 1
    for err in root:
        assert err.tag == "error"
        parts = elements(err, ERROR, ERROR)
        out.append((int(parts["code"].text), parts["description"].text))
    return out
