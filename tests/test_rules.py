"""Rule-set versions: drafts copy the published rules, edits stay in the draft, each field
is validated, and publishing retires the old set so requests re-route with the new one."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from routing import rules
from routing.engine import route_request
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, RoutingRule, RuleSet, ServiceRequest
from tests.support.dispatch_city import EAST, WEST, csrf_from, login, make_dispatch_city, report

GOOD = {
    "name": "East potholes to parks",
    "match": "service",
    "service_code": "pothole",
    "layer_name": "districts",
    "zone_code": "E",
    "department": "parks",
    "crew": "parks-1",
    "priority": "high",
    "sla_hours": "12",
}


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


def _city(s) -> Jurisdiction:
    return s.scalar(sa.select(Jurisdiction).where(Jurisdiction.slug == "testville"))


def test_draft_copies_published_rules_and_edits_stay_in_draft(sessions, city):
    with sessions.begin() as s:
        c = _city(s)
        draft = rules.create_draft(s, c, "try parks")
        assert (draft.version, draft.status) == (2, "draft")
        copied = rules.ordered_rules(s, draft)
        assert [r.name for r in copied] == ["Potholes by district"]
        assert copied[0].crew_from_zone is True
        rules.add_rule(s, draft, rules.parse_rule(s, c, GOOD), position=1)
        rules.add_rule(
            s,
            draft,
            rules.parse_rule(s, c, {**GOOD, "name": "last", "match": "any", "zone_code": ""}),
        )
        names = [r.name for r in rules.ordered_rules(s, draft)]
        assert names == ["East potholes to parks", "Potholes by district", "last"]
        last = rules.ordered_rules(s, draft)[2]
        rules.move_rule(s, draft, last.id, 1)
        assert [r.name for r in rules.ordered_rules(s, draft)][0] == "last"
        rules.remove_rule(s, draft, last.id)
        assert [r.position for r in rules.ordered_rules(s, draft)] == [1, 2]
        published = rules.published(s, c)
        assert [r.name for r in rules.ordered_rules(s, published)] == ["Potholes by district"]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"name": ""}, "name"),
        ({"service_code": "nope"}, "service_code"),
        ({"match": "group", "service_group": "Nope"}, "service_group"),
        ({"match": "weird"}, "match"),
        ({"layer_name": "nolayer"}, "layer_name"),
        ({"zone_code": "ZZ"}, "zone_code"),
        ({"layer_name": "", "zone_code": "E"}, "layer_name"),
        ({"department": "nope"}, "department"),
        ({"crew": "streets-W"}, "crew"),  # a crew of another department
        ({"layer_name": "", "zone_code": "", "crew_from_zone": "1"}, "crew_from_zone"),
        ({"priority": "asap"}, "priority"),
        ({"sla_hours": "-1"}, "sla_hours"),
        ({"sla_hours": "soon"}, "sla_hours"),
    ],
)
def test_each_field_is_validated(sessions, city, change, field):
    with sessions() as s:
        with pytest.raises(InvalidInput) as err:
            rules.parse_rule(s, _city(s), {**GOOD, **change})
        assert err.value.field == field


def test_parse_accepts_group_any_zone_and_crew_from_zone(sessions, city):
    with sessions() as s:
        v = rules.parse_rule(
            s,
            _city(s),
            {
                **GOOD,
                "match": "group",
                "service_group": "Streets",
                "zone_code": "",
                "crew": "",
                "crew_from_zone": "on",
                "department": "streets",
                "sla_hours": "0",
            },
        )
        assert (v.service_id, v.service_group, v.zone_code, v.crew_from_zone, v.sla_hours) == (
            None,
            "Streets",
            None,
            True,
            0.0,
        )


def test_published_and_retired_sets_cannot_be_edited(sessions, city):
    with sessions.begin() as s:
        c = _city(s)
        pub = rules.published(s, c)
        with pytest.raises(InvalidInput, match="only drafts"):
            rules.get_draft(s, c, pub.id)


def test_publish_via_admin_page_reroutes_with_route_request(client, sessions, city, settings):
    with sessions.begin() as s:
        east = report(s, settings.media_dir, where=EAST)
        west = report(s, settings.media_dir, where=WEST)
        east_id, west_id = east.id, west.id
        assert east.department_id == city.streets_id and east.crew_id == city.crew_e_id
    login(client, "admin")
    token = csrf_from(client, "/admin/rules")
    res = client.post("/admin/rules", data={"csrf_token": token, "note": "parks east"})
    assert res.status_code == 302
    draft_url = res.headers["Location"]
    draft_id = int(draft_url.rstrip("/").rsplit("/", 1)[1])
    res = client.post(
        f"/admin/rules/{draft_id}/rules", data={"csrf_token": token, **GOOD, "position": "1"}
    )
    assert res.status_code == 302, res.get_data(as_text=True)[-2000:]
    # A bad rule: message next to the field, nothing added.
    res = client.post(
        f"/admin/rules/{draft_id}/rules", data={"csrf_token": token, **GOOD, "sla_hours": "-5"}
    )
    assert res.status_code == 400
    assert 'id="error-sla_hours"' in res.get_data(as_text=True)
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).where(RoutingRule.ruleset_id == draft_id)) == 2
        # Not published yet: routing still uses version 1.
        req = s.get(ServiceRequest, east_id)
        route_request(s, req)
        assert req.department_id == city.streets_id
        s.rollback()
    res = client.post(f"/admin/rules/{draft_id}/publish", data={"csrf_token": token})
    assert res.status_code == 302
    with sessions.begin() as s:
        statuses = dict(s.execute(sa.select(RuleSet.version, RuleSet.status)).all())
        assert statuses == {1: "retired", 2: "published"}
        east, west = s.get(ServiceRequest, east_id), s.get(ServiceRequest, west_id)
        decision = route_request(s, east)
        assert (east.department_id, east.crew_id, east.priority) == (
            city.parks_id,
            city.parks_crew_id,
            "high",
        )
        assert east.ruleset_version == 2 and decision.changed
        assert "East potholes to parks" in east.routing_explanation
        route_request(s, west)
        assert (west.department_id, west.crew_id) == (city.streets_id, city.crew_w_id)
    # Published sets are read-only in the editor.
    res = client.post(f"/admin/rules/{draft_id}/rules", data={"csrf_token": token, **GOOD})
    assert res.status_code == 400 and "only drafts" in res.get_data(as_text=True)


def test_admin_reorders_and_removes_rules(client, sessions, city):
    login(client, "admin")
    token = csrf_from(client, "/admin/rules")
    draft_id = int(
        client.post("/admin/rules", data={"csrf_token": token})
        .headers["Location"]
        .rsplit("/", 1)[1]
    )
    client.post(f"/admin/rules/{draft_id}/rules", data={"csrf_token": token, **GOOD})
    with sessions() as s:
        ids = [
            r.id
            for r in s.scalars(
                sa.select(RoutingRule)
                .where(RoutingRule.ruleset_id == draft_id)
                .order_by(RoutingRule.position)
            )
        ]
    assert (
        client.post(
            f"/admin/rules/{draft_id}/rules/{ids[1]}/move",
            data={"csrf_token": token, "position": "1"},
        ).status_code
        == 302
    )
    html = client.get(f"/admin/rules/{draft_id}").get_data(as_text=True)
    assert html.index("East potholes to parks") < html.index("Potholes by district")
    assert (
        client.post(
            f"/admin/rules/{draft_id}/rules/{ids[0]}/delete", data={"csrf_token": token}
        ).status_code
        == 302
    )
    with sessions() as s:
        left = s.scalars(sa.select(RoutingRule.name).where(RoutingRule.ruleset_id == draft_id))
        assert list(left) == ["East potholes to parks"]
