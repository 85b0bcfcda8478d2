"""Fuzzing the Open311 API with schemathesis, from its own OpenAPI description, in process
(WSGI) against the real app and database: no 5xx, ever; every answer in the documented
status, content type and (for JSON) schema; every error an Open311 error list.

Bounded for CI: a fixed number of examples per operation and generation mode.
"""

from __future__ import annotations

import json
import time
from xml.etree import ElementTree as ET

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from spatial.apikeys import create_key
from tests.support.city import make_small_city
from webmap.open311 import bp

EXAMPLES = {schemathesis.GenerationMode.POSITIVE: 40, schemathesis.GenerationMode.NEGATIVE: 20}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _is_open311_error_list(resp) -> bool:
    body = resp.content
    content_type = {k.lower(): v for k, v in resp.headers.items()}["content-type"]
    if "application/json" in str(content_type):
        data = json.loads(body)
        return isinstance(data, list) and all(set(e) == {"code", "description"} for e in data)
    root = ET.fromstring(body)
    return root.tag == "errors" and all(e.tag == "error" for e in root)


def _fuzzer(op, strategy, examples: int, key: str, seen: dict[str, set[int]], valid: bool):
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        if op.method == "post" and isinstance(case.body, dict) and valid:
            case.body["api_key"] = key  # reach past the key check to the validation
        resp = case.call()
        case.validate_response(resp, checks=CHECKS)
        seen.setdefault(op.label, set()).add(resp.status_code)
        if resp.status_code >= 400:
            assert _is_open311_error_list(resp), resp.content[:300]

    return run


@pytest.fixture
def hypothesis_home(tmp_path):
    """Keep Hypothesis's cache files out of the work tree."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


def test_fuzzing_finds_no_server_error(app, sessions, hypothesis_home):
    if "open311" not in app.blueprints:
        app.register_blueprint(bp)
    app.config["OPEN311_RATE_LIMIT"] = "1000/100000"
    with sessions.begin() as s:
        make_small_city(s)
        _, key = create_key(s, "testville", "fuzzer")

    schema = schemathesis.openapi.from_wsgi("/open311/v2/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == {
        "GET /discovery.{fmt}",
        "GET /services.{fmt}",
        "GET /services/{service_code}.{fmt}",
        "GET /requests.{fmt}",
        "POST /requests.{fmt}",
        "GET /requests/{service_request_id}.{fmt}",
        "GET /tokens/{token}.{fmt}",
        "GET /servicerequestupdates.{fmt}",
    }
    seen: dict[str, set[int]] = {}
    started = time.monotonic()
    for op in operations:
        from_examples = op.get_strategies_from_examples()
        if from_examples:  # the description's own examples first: they must work
            _fuzzer(op, st.one_of(from_examples), 5, key, seen, valid=True)()
        for mode, examples in EXAMPLES.items():
            strategy = op.as_strategy(generation_mode=mode)
            _fuzzer(op, strategy, examples, key, seen, valid=mode == "positive")()
    elapsed = time.monotonic() - started
    # the fuzzer got past validation: successful answers, and POSTs (at least the
    # description's example body) that created requests
    assert 200 in seen["GET /requests.{fmt}"] and 200 in seen["POST /requests.{fmt}"], seen
    assert all(code < 500 for codes in seen.values() for code in codes), seen
    assert elapsed < 120, f"fuzzing took {elapsed:.0f} s"
