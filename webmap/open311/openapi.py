"""The OpenAPI 3 description of the Open311 endpoints (served at /open311/v2/openapi.json).

It is built per installation: the jurisdiction slugs, public service codes and their
attribute parameters are listed as the values a client may send, so both the docs page
and a fuzzer see what this server actually serves. Private categories are never listed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from spatial.models import Jurisdiction, Service, ServiceAttribute
from webmap.open311.resources import ASSET_ATTRIBUTE

STR = {"type": "string"}
DATE_TIME = {"type": "string", "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": schema},
            "text/xml": {"schema": STR},
        },
    }


def _errors(description: str) -> dict[str, Any]:
    return _answer(description, _ref("Errors"))


FMT = {
    "name": "fmt",
    "in": "path",
    "required": True,
    "description": "Response format: xml (the spec's default) or json.",
    "schema": {"type": "string", "enum": ["json", "xml"]},
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or STR,
    }


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or STR,
    }


def _schemas() -> dict[str, Any]:
    nullable_free = {"additionalProperties": False, "type": "object"}
    return {
        "Error": {
            **nullable_free,
            "required": ["code", "description"],
            "properties": {"code": {"type": "integer"}, "description": STR},
        },
        "Errors": {"type": "array", "minItems": 1, "items": _ref("Error")},
        "Discovery": {
            **nullable_free,
            "required": ["changeset", "contact", "key_service", "endpoints"],
            "properties": {
                "changeset": STR,
                "contact": STR,
                "key_service": STR,
                "endpoints": {
                    "type": "array",
                    "items": {
                        **nullable_free,
                        "required": ["specification", "url", "changeset", "type", "formats"],
                        "properties": {
                            "specification": STR,
                            "url": STR,
                            "changeset": STR,
                            "type": {"type": "string", "enum": ["production", "test"]},
                            "formats": {"type": "array", "items": STR},
                        },
                    },
                },
            },
        },
        "Service": {
            **nullable_free,
            "required": ["service_code", "service_name", "metadata", "type"],
            "properties": {
                "service_code": STR,
                "service_name": STR,
                "description": STR,
                "metadata": {"type": "boolean"},
                "type": {"type": "string", "enum": ["realtime", "batch", "blackbox"]},
                "keywords": STR,
                "group": STR,
            },
        },
        "ServiceDefinition": {
            **nullable_free,
            "required": ["service_code", "attributes"],
            "properties": {
                "service_code": STR,
                "attributes": {"type": "array", "items": _ref("Attribute")},
            },
        },
        "Attribute": {
            **nullable_free,
            "required": ["variable", "code", "datatype", "required", "order", "description"],
            "properties": {
                "variable": {"type": "boolean"},
                "code": STR,
                "datatype": {
                    "type": "string",
                    "enum": [
                        "string",
                        "number",
                        "datetime",
                        "text",
                        "singlevaluelist",
                        "multivaluelist",
                    ],
                },
                "required": {"type": "boolean"},
                "datatype_description": STR,
                "order": {"type": "integer", "minimum": 1},
                "description": STR,
                "values": {
                    "type": "array",
                    "items": {
                        **nullable_free,
                        "required": ["key", "name"],
                        "properties": {"key": STR, "name": STR},
                    },
                },
            },
        },
        "Request": {
            **nullable_free,
            "required": [
                "service_request_id",
                "status",
                "service_name",
                "service_code",
                "requested_datetime",
                "updated_datetime",
            ],
            "properties": {
                "service_request_id": STR,
                "status": {"type": "string", "enum": ["open", "closed"]},
                "status_notes": STR,
                "service_name": STR,
                "service_code": STR,
                "description": {"type": "string", "maxLength": 4000},
                "agency_responsible": STR,
                "service_notice": STR,
                "requested_datetime": DATE_TIME,
                "updated_datetime": DATE_TIME,
                "expected_datetime": DATE_TIME,
                "address": STR,
                "address_id": {
                    **STR,
                    "description": "The city's own id of the address point the request is at.",
                },
                "lat": {"type": "number"},
                "long": {"type": "number"},
                "media_url": {"type": "string", "format": "uri"},
                "extended_attributes": _ref("ExtendedAttributes"),
            },
        },
        "ExtendedAttributes": {
            **nullable_free,
            "description": "Only with extensions=true.",
            "properties": {
                "external_id": {
                    **STR,
                    "description": "The city's own id of an imported record.",
                },
                "address": STR,
                "service_name": STR,
                "channel": STR,
                "zone": STR,
                "zone_code": STR,
                "crew": STR,
                "routing_explanation": STR,
                "photos": {"type": "array", "items": _ref("Photo")},
            },
        },
        "Photo": {
            **nullable_free,
            "required": [
                "media_url",
                "thumbnail_url",
                "stage",
                "width",
                "height",
                "created_datetime",
            ],
            "properties": {
                "media_url": STR,
                "thumbnail_url": STR,
                "stage": {"type": "string", "enum": ["report", "completion"]},
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "created_datetime": DATE_TIME,
            },
        },
        "PostAnswer": {
            **nullable_free,
            "required": ["service_request_id", "token"],
            "properties": {"service_request_id": STR, "token": STR, "service_notice": STR},
        },
        "TokenAnswer": {
            **nullable_free,
            "required": ["service_request_id", "token"],
            "properties": {"service_request_id": STR, "token": STR},
        },
        "RequestUpdate": {
            **nullable_free,
            "required": ["update_id", "service_request_id", "status", "updated_datetime"],
            "properties": {
                "update_id": STR,
                "service_request_id": STR,
                "status": STR,
                "updated_datetime": DATE_TIME,
                "description": STR,
                "media_url": STR,
            },
        },
    }


def _post_form(
    attribute_params: dict[str, Any],
    extent: tuple,
    slugs: list[str],
    codes: list[str],
    multipart: bool,
) -> dict[str, Any]:
    west, south, east, north = (
        extent if all(v is not None for v in extent) else (-180, -90, 180, 90)
    )
    props: dict[str, Any] = {
        "api_key": {**STR, "description": "Your API key (also accepted in the query)."},
        "jurisdiction_id": {"type": "string", "enum": slugs} if slugs else STR,
        "service_code": {"type": "string", "enum": codes} if codes else STR,
        "lat": {
            "type": "number",
            "minimum": south,
            "maximum": north,
            "description": "WGS84; within the served cities' extent.",
        },
        "long": {"type": "number", "minimum": west, "maximum": east},
        "address_string": {**STR, "maxLength": 500},
        "address_id": STR,
        "email": {"type": "string", "format": "email", "maxLength": 254},
        "device_id": {**STR, "maxLength": 200},
        "account_id": {**STR, "maxLength": 200},
        "first_name": {**STR, "maxLength": 100},
        "last_name": {**STR, "maxLength": 100},
        "phone": {"type": "string", "pattern": r"^\+?[0-9 ()./-]{5,30}$"},
        "description": {
            "type": "string",
            "maxLength": 4000,
            "pattern": "^[^<>]*$",
            "description": "Plain text (no HTML); line breaks allowed.",
        },
        "media_url": {
            "type": "string",
            "format": "uri",
            "maxLength": 2000,
            "pattern": r"^https?://[^\s<>\"]+$",
            "description": "An http(s) link, stored and never fetched.",
        },
        **attribute_params,
    }
    if multipart:
        props["media"] = {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "Extension: photos (JPEG, PNG, WebP, GIF; at most 5).",
        }
    return {"type": "object", "required": ["api_key", "service_code"], "properties": props}


_EXAMPLE_ANSWER: dict[str, Any] = {
    "number": 1,
    "string": "example",
    "text": "example",
    "datetime": "2024-01-01T12:00:00Z",
}


def _post_example(session: Session, public: tuple) -> dict[str, Any] | None:
    """A complete, valid POST body for the first public service (api_key left to fill)."""
    service = session.scalar(
        sa.select(Service).where(*public).order_by(Service.jurisdiction_id, Service.name).limit(1)
    )
    if service is None:
        return None
    slug, lat, lon = session.execute(
        sa.select(
            Jurisdiction.slug,
            sa.func.ST_Y(sa.func.ST_PointOnSurface(Jurisdiction.boundary)),
            sa.func.ST_X(sa.func.ST_PointOnSurface(Jurisdiction.boundary)),
        ).where(Jurisdiction.id == service.jurisdiction_id)
    ).one()
    example: dict[str, Any] = {
        "api_key": "YOUR_API_KEY",
        "jurisdiction_id": slug,
        "service_code": service.code,
        "description": "What is wrong, and where exactly.",
    }
    if lat is not None:
        example.update(lat=round(lat, 6), long=round(lon, 6))
    for attr in service.attributes:
        if not (attr.variable and attr.required):
            continue
        keys = [str(v["key"]) for v in attr.values or [] if "key" in v]
        if attr.datatype == "multivaluelist":
            example[f"attribute[{attr.code}][]"] = keys[:1]
        elif attr.datatype == "singlevaluelist":
            example[f"attribute[{attr.code}]"] = keys[0] if keys else ""
        else:
            example[f"attribute[{attr.code}]"] = _EXAMPLE_ANSWER[attr.datatype]
    return example


def openapi_document(session: Session) -> dict[str, Any]:
    """The OpenAPI 3.0 document for this installation's Open311 endpoint."""
    slugs = [
        name
        for slug, aliases in session.execute(
            sa.select(Jurisdiction.slug, Jurisdiction.open311_ids).order_by(Jurisdiction.slug)
        )
        for name in (slug, *(aliases or ()))
    ]
    public = (Service.private.is_(False), Service.active.is_(True))
    codes = sorted(set(session.scalars(sa.select(Service.code).where(*public))))
    attr_rows = session.scalars(
        sa.select(ServiceAttribute)
        .join(Service, Service.id == ServiceAttribute.service_id)
        .where(*public, ServiceAttribute.variable.is_(True))
        .order_by(ServiceAttribute.code, ServiceAttribute.id)
    ).all()
    attribute_params: dict[str, Any] = {}
    for attr in attr_rows:
        keys = sorted({str(v["key"]) for v in attr.values or [] if "key" in v})
        if attr.datatype == "multivaluelist":
            name = f"attribute[{attr.code}][]"
            schema: dict[str, Any] = {
                "type": "array",
                "items": {"type": "string", "enum": keys} if keys else STR,
            }
        else:
            name = f"attribute[{attr.code}]"
            schema = {
                "number": {"type": "number"},
                "datetime": DATE_TIME,
                "singlevaluelist": {"type": "string", "enum": keys} if keys else STR,
                "string": {"type": "string", "maxLength": 500, "pattern": "^[^\\r\\n]*$"},
                "text": {"type": "string", "maxLength": 4000},
            }[attr.datatype]
        if name in attribute_params and attribute_params[name] != schema:
            schema = STR  # the same code means different things in different services
        attribute_params[name] = {**schema, "description": attr.description}
    # A category tied to an asset layer takes the asset's number (resources.asset_attribute).
    asset_param = f"attribute[{ASSET_ATTRIBUTE}]"
    if session.scalar(sa.select(Service.id).where(*public, Service.asset_layer_id.is_not(None))):
        schema = {"type": "string", "maxLength": 100}
        if (
            asset_param in attribute_params
            and {k: v for k, v in attribute_params[asset_param].items() if k != "description"}
            != schema
        ):
            attribute_params[asset_param] = {
                **STR,
                "description": "An answer, or an asset's number",
            }
        elif asset_param not in attribute_params:
            attribute_params[asset_param] = {
                **schema,
                "description": (
                    "For a category about numbered assets (street lights, trees...): the "
                    "asset's number; the request is placed at it. An unknown number is 400."
                ),
            }
    extent = session.execute(
        sa.select(
            sa.func.min(sa.func.ST_XMin(Jurisdiction.boundary)),
            sa.func.min(sa.func.ST_YMin(Jurisdiction.boundary)),
            sa.func.max(sa.func.ST_XMax(Jurisdiction.boundary)),
            sa.func.max(sa.func.ST_YMax(Jurisdiction.boundary)),
        )
    ).one()
    juris = _query(
        "jurisdiction_id",
        "The city's slug or one of its alias ids; left out, the city of the address "
        "(/c/<slug>/open311/v2), the API key's city, or the server's default city.",
        {"type": "string", "enum": slugs} if slugs else STR,
    )
    code_schema = {"type": "string", "enum": codes} if codes else STR
    page = [
        _query("page", "Extension: page number, from 1.", {"type": "integer", "minimum": 1}),
        _query(
            "page_size",
            "Extension: rows per page (at most 1000).",
            {"type": "integer", "minimum": 1, "maximum": 1000},
        ),
    ]
    dates = [
        _query(
            "start_date",
            "Earliest requested_datetime (W3C). Range at most 90 days; default: the last 90 days.",
            DATE_TIME,
        ),
        _query("end_date", "Latest requested_datetime (W3C).", DATE_TIME),
    ]
    extensions = _query(
        "extensions",
        "Extension: true adds extended_attributes (the imported record's own id "
        "external_id, address, category name, zone, crew, routing explanation, channel, "
        "photos).",
        {"type": "boolean"},
    )
    common_errors = {
        "400": _errors("Bad parameter."),
        "404": _errors("Unknown jurisdiction_id or resource."),
    }
    example = _post_example(session, public)
    form_content = {
        "application/x-www-form-urlencoded": {
            "schema": _post_form(attribute_params, tuple(extent), slugs, codes, False),
            **({"example": example} if example else {}),
        },
        "multipart/form-data": {
            "schema": _post_form(attribute_params, tuple(extent), slugs, codes, True)
        },
    }
    paths = {
        "/discovery.{fmt}": {
            "get": {
                "summary": "Service discovery",
                "operationId": "discovery",
                "parameters": [FMT, juris],
                "responses": {
                    "200": _answer("The discovery document.", _ref("Discovery")),
                    **common_errors,
                },
            }
        },
        "/services.{fmt}": {
            "get": {
                "summary": "GET Service List",
                "description": "The categories a request can be filed under.",
                "operationId": "services",
                "parameters": [FMT, juris],
                "responses": {
                    "200": _answer("The services.", {"type": "array", "items": _ref("Service")}),
                    **common_errors,
                },
            }
        },
        "/services/{service_code}.{fmt}": {
            "get": {
                "summary": "GET Service Definition",
                "description": "The questions (attributes) of one service.",
                "operationId": "serviceDefinition",
                "parameters": [_path("service_code", "A service_code.", code_schema), FMT, juris],
                "responses": {
                    "200": _answer("The definition.", _ref("ServiceDefinition")),
                    **common_errors,
                },
            }
        },
        "/requests.{fmt}": {
            "get": {
                "summary": "GET Service Requests",
                "description": "Public requests, newest first: by default those of the last "
                "90 days, at most 1000.",
                "operationId": "requests",
                "parameters": [
                    FMT,
                    juris,
                    _query(
                        "service_request_id", "Comma-separated ids; overrides the other filters."
                    ),
                    _query("service_code", "Comma-separated service codes."),
                    *dates,
                    _query(
                        "status",
                        "open, closed, or open,closed.",
                        {"type": "string", "enum": ["open", "closed", "open,closed"]},
                    ),
                    extensions,
                    *page,
                    _query("bbox", "Extension: min_long,min_lat,max_long,max_lat."),
                    _query(
                        "updated_after",
                        "Extension: only requests changed after this "
                        "time; without start_date/end_date, whatever their date.",
                        DATE_TIME,
                    ),
                ],
                "responses": {
                    "200": _answer("The requests.", {"type": "array", "items": _ref("Request")}),
                    **common_errors,
                },
            },
            "post": {
                "summary": "POST Service Request",
                "description": "Create a request. Needs api_key. Location by lat/long, "
                "address_id (the city's own id of an address point) or address_string "
                "(placed only when the city's geocoder is certain; otherwise 400 naming "
                "the best candidates); answers attribute[CODE]=value and "
                "attribute[CODE][]=value. A category about numbered assets takes the "
                f"asset's number in attribute[{ASSET_ATTRIBUTE}] and is placed at it. Over "
                "the key's rate limit: 403 with error code 429 and Retry-After.",
                "operationId": "createRequest",
                "parameters": [FMT, juris],
                "requestBody": {"required": True, "content": form_content},
                "responses": {
                    "200": _answer(
                        "The new request's id and token.",
                        {"type": "array", "items": _ref("PostAnswer")},
                    ),
                    "400": _errors("Invalid or missing parameters (one error per problem)."),
                    "403": _errors("Missing, invalid or revoked api_key, or rate limit hit."),
                    "404": _errors("Unknown jurisdiction_id or service_code."),
                },
            },
        },
        "/requests/{service_request_id}.{fmt}": {
            "get": {
                "summary": "GET Service Request",
                "description": "One request, as a one-element list.",
                "operationId": "request",
                "parameters": [
                    _path("service_request_id", "A service_request_id."),
                    FMT,
                    juris,
                    extensions,
                ],
                "responses": {
                    "200": _answer(
                        "The request.",
                        {"type": "array", "minItems": 1, "maxItems": 1, "items": _ref("Request")},
                    ),
                    **common_errors,
                },
            }
        },
        "/tokens/{token}.{fmt}": {
            "get": {
                "summary": "GET service_request_id from a token",
                "operationId": "token",
                "parameters": [_path("token", "The token a POST answered."), FMT, juris],
                "responses": {
                    "200": _answer("The id.", {"type": "array", "items": _ref("TokenAnswer")}),
                    **common_errors,
                },
            }
        },
        "/servicerequestupdates.{fmt}": {
            "get": {
                "summary": "GET Service Request Updates (extension, FixMyStreet's shape)",
                "description": "Public updates of public requests, oldest first; statuses "
                "open, investigating, in_progress, internal_referral, fixed, "
                "no_further_action, duplicate, closed.",
                "operationId": "requestUpdates",
                "parameters": [FMT, juris, *dates, *page],
                "responses": {
                    "200": _answer(
                        "The updates.", {"type": "array", "items": _ref("RequestUpdate")}
                    ),
                    **common_errors,
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "civicpin Open311 GeoReport v2",
            "version": "2",
            "description": "Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2) in XML "
            "and JSON, with extensions (page/page_size, bbox, updated_after, "
            "extended_attributes, media upload, servicerequestupdates). Errors are lists "
            "of {code, description} in the requested format. Dates are W3C with offset, in "
            "the jurisdiction's time zone.",
        },
        "servers": [{"url": "/open311/v2"}],
        "paths": paths,
        "components": {"schemas": _schemas()},
    }
