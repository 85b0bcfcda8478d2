"""API keys: created and revoked with the real ``civicpin apikey`` CLI, stored hashed,
scoped to a city, and rate-limited per key."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from spatial.apikeys import TokenBuckets, create_key, hash_key, parse_rate_limit
from spatial.errors import InvalidInput
from spatial.models import ApiKey, ServiceRequest
from tests.support.city import make_small_city
from tests.support.open311 import open311_errors
from webmap.open311 import bp

V2 = "/open311/v2"


@pytest.fixture
def client(app, sessions):
    if "open311" not in app.blueprints:
        app.register_blueprint(bp)
    with sessions.begin() as s:
        make_small_city(s)
    return app.test_client()


def _post(client, key, fmt="json", **extra):
    data = {
        "api_key": key,
        "service_code": "pothole",
        "lat": "34.05",
        "long": "-118.28",
        "attribute[depth]": "4",
        **extra,
    }
    return client.post(f"{V2}/requests.{fmt}", data=data)


def test_create_use_revoke_with_the_cli(client, cli, sessions):
    res = cli("apikey", "create", "--city", "testville", "--name", "FixMyStreet")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    key = lines[-1]
    assert key.startswith("cp_") and len(key) >= 40 and " " not in key
    assert "FixMyStreet" in res.stdout and key[:12] in lines[0]

    with sessions() as s:
        row = s.scalar(sa.select(ApiKey))
        assert row.key_hash == hash_key(key) and key not in (row.key_hash, row.prefix)
        assert row.prefix == key[:12] and row.revoked_at is None and row.last_used_at is None

    resp = _post(client, key)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(sa.select(ApiKey.last_used_at)) is not None

    listed = cli("apikey", "list", "--city", "testville")
    assert listed.returncode == 0 and key[:12] in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout

    res = cli("apikey", "revoke", key[:10])
    assert res.returncode == 0, res.stderr
    assert "revoked" in res.stdout and "FixMyStreet" in res.stdout
    for fmt in ("json", "xml"):
        [(code, text)] = open311_errors(_post(client, key, fmt), fmt, 403)
        assert code == 403 and "revoked" in text

    again = cli("apikey", "revoke", key)
    assert again.returncode != 0 and "already revoked" in again.stderr
    assert again.stderr.startswith("civicpin: error: ") and len(again.stderr.splitlines()) == 1
    assert "REVOKED" in cli("apikey", "list").stdout
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 1


def test_cli_refuses_bad_input_and_writes_nothing(client, cli, sessions):
    for args, message in [
        (("create", "--city", "atlantis", "--name", "X"), "no city with slug 'atlantis'"),
        (("create", "--city", "testville", "--name", " "), "name must be one line"),
        (("revoke", "cp_nosuchkey"), "no API key starts with cp_nosuchkey"),
        (("revoke", "cp_"), "at least 8 characters"),
        (("revoke", "not a key!"), "is not an API key"),
    ]:
        res = cli("apikey", *args)
        assert res.returncode != 0, args
        assert res.stderr.startswith("civicpin: error: ") and message in res.stderr, res.stderr
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ApiKey)) == 0


def test_revoke_by_ambiguous_prefix_is_refused(sessions):
    with sessions.begin() as s:
        make_small_city(s)
        a, _ = create_key(s, "testville", "a")
        b, _ = create_key(s, "testville", "b")
        # force a shared prefix to show the guard (real prefixes share only "cp_")
        a.prefix, b.prefix = "cp_SAME00001", "cp_SAME00002"
    from spatial.apikeys import revoke_key

    with sessions.begin() as s, pytest.raises(InvalidInput, match="several API keys"):
        revoke_key(s, "cp_SAME000")
    with sessions.begin() as s:
        assert revoke_key(s, "cp_SAME00002").name == "b"


def test_rate_limit_per_key(app, client, sessions):
    app.config["OPEN311_RATE_LIMIT"] = "0.01/3"  # bursts of 3, then one per 100 s
    with sessions.begin() as s:
        _, first = create_key(s, "testville", "busy client")
        _, second = create_key(s, "testville", "quiet client")
    # invalid requests spend tokens too, so a flood of garbage is limited as well
    assert _post(client, first, service_code="").status_code == 400
    assert _post(client, first).status_code == 200
    assert _post(client, first).status_code == 200
    for fmt in ("json", "xml"):
        resp = _post(client, first, fmt)
        [(code, text)] = open311_errors(resp, fmt, 403)
        assert code == 429 and "rate limit" in text
        assert 1 <= int(resp.headers["Retry-After"]) <= 100
    # another key of the same city is not affected
    assert _post(client, second).status_code == 200
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ServiceRequest)) == 3


def test_token_bucket_refills_with_time():
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=2, clock=lambda: now[0])
    assert buckets.take(1) == 0 and buckets.take(1) == 0
    assert buckets.take(1) == pytest.approx(0.5)
    assert buckets.take(2) == 0  # per key
    now[0] = 0.5
    assert buckets.take(1) == 0
    assert buckets.take(1) > 0
    now[0] = 100.0
    assert buckets.take(1) == 0 and buckets.take(1) == 0 and buckets.take(1) > 0  # capped
    assert parse_rate_limit("10/60") == (10.0, 60)
    for bad in ("10", "0/5", "5/0", "x/y"):
        with pytest.raises(InvalidInput):
            parse_rate_limit(bad)
