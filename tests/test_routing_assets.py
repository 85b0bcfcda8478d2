"""Rules on an asset's attributes: a light owned privately goes to another desk than the
city's, one by one and in bulk alike, and the rule editor, the city file and the
category's asset layer know it."""

from __future__ import annotations

import html as htmllib
import re

import pytest
import sqlalchemy as sa
import yaml

from routing import categories, city_file, rules, whatif
from routing.engine import reroute, route_request
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, RoutingRule, Service, ServiceRequest
from spatial.models_ops import AdminEvent
from spatial.models_places import Asset, AssetLayer
from tests.support.dispatch_city import WEST, csrf_from, login, make_dispatch_city, report

PRIVATE_RULE = {
    "name": "Private lights",
    "match": "service",
    "service_code": "pothole",
    "department": "parks",
    "asset_attribute": "Owner",
    "asset_value": "Private",
}


@pytest.fixture
def city(sessions):
    """testville with a street-light layer (three poles by the west pin) and a published
    rule sending privately owned lights to Parks ahead of the district rule."""
    with sessions.begin() as s:
        dc = make_dispatch_city(s)
        layer = AssetLayer(jurisdiction_id=dc.city_id, name="streetlights", title="Street light")
        s.add(layer)
        s.flush()
        lat, lon = WEST
        for ref, attrs in (
            ("791-2", {"Owner": "Private", "Type": "LED"}),
            ("791-3", {"Owner": "City"}),
            # Another spelling of the name and the value: still the private owner.
            ("791-4", {"owner": "  PRIVATE "}),
        ):
            s.add(
                Asset(
                    jurisdiction_id=dc.city_id,
                    layer_id=layer.id,
                    ref=ref,
                    label=f"Pole {ref}",
                    attributes=attrs,
                    location=f"SRID=4326;POINT({lon} {lat})",
                )
            )
        c = s.get(Jurisdiction, dc.city_id)
        draft = rules.create_draft(s, c)
        rules.add_rule(s, draft, rules.parse_rule(s, c, PRIVATE_RULE), position=1)
        rules.publish(s, c, draft.id)
        dc.layer_id = layer.id
        return dc


def _about(s, request: ServiceRequest, layer_id: int | None, ref: str | None) -> None:
    request.asset_layer_id, request.asset_ref = layer_id, ref
    s.flush()


def test_a_private_light_goes_to_the_private_desk_and_the_explanation_says_why(
    sessions, city, tmp_path
):
    with sessions.begin() as s:
        decisions = {}
        for ref in ("791-2", "791-3", "791-4", None):
            r = report(s, tmp_path)
            _about(s, r, city.layer_id if ref else None, ref)
            route_request(s, r)
            decisions[ref] = (r.department_id, r.routing_explanation)
    assert decisions["791-2"] == (
        city.parks_id,
        "Parks: any location; rule 1 'Private lights': asset Owner = Private",
    )
    assert decisions["791-4"][0] == city.parks_id
    # The city's own light, and a report without a light, go by the district rule.
    assert decisions["791-3"][0] == city.streets_id
    assert "rule 2 'Potholes by district'" in decisions["791-3"][1]
    assert "asset" not in decisions["791-3"][1]
    assert decisions[None][0] == city.streets_id


def test_bulk_reroute_decides_as_one_by_one(sessions, city, tmp_path):
    with sessions.begin() as s:
        ids = {}
        for ref in ("791-2", "791-3", "791-4", None):
            r = report(s, tmp_path)
            ids[ref] = r.id
        # Before the assets are known every report goes by district.
        assert {s.get(ServiceRequest, i).department_id for i in ids.values()} == {city.streets_id}
        for ref, i in ids.items():
            if ref:
                _about(s, s.get(ServiceRequest, i), city.layer_id, ref)
        result = reroute(s, s.get(Jurisdiction, city.city_id))
        assert result.moved == 2
        bulk = {
            ref: (
                s.get(ServiceRequest, i).department_id,
                s.get(ServiceRequest, i).routing_explanation,
            )
            for ref, i in ids.items()
        }
        for i in ids.values():
            r = s.get(ServiceRequest, i)
            r.routed_at = None  # routed afresh, one by one
            route_request(s, r)
        one = {
            ref: (
                s.get(ServiceRequest, i).department_id,
                s.get(ServiceRequest, i).routing_explanation,
            )
            for ref, i in ids.items()
        }
    assert bulk == one
    assert bulk["791-2"][0] == bulk["791-4"][0] == city.parks_id
    assert bulk["791-2"][1].endswith("'Private lights': asset Owner = Private")


def test_an_asset_rule_needs_both_attribute_and_value(sessions, city):
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        with pytest.raises(InvalidInput) as missing_value:
            rules.parse_rule(s, c, {**PRIVATE_RULE, "asset_value": " "})
        with pytest.raises(InvalidInput) as missing_attribute:
            rules.parse_rule(s, c, {**PRIVATE_RULE, "asset_attribute": ""})
        plain = rules.parse_rule(s, c, {**PRIVATE_RULE, "asset_attribute": "", "asset_value": ""})
    assert missing_value.value.field == "asset_value"
    assert missing_attribute.value.field == "asset_attribute"
    assert (plain.asset_attribute, plain.asset_value) == (None, None)


def test_city_file_round_trips_asset_rules_and_the_category_layer(sessions, city):
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        pothole = s.get(Service, city.pothole_id)
        categories.update_category(s, c, pothole, {"asset_layer": "streetlights"})
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        exported = city_file.export_city(s, c)
        text = city_file.dump(exported)
    doc = yaml.safe_load(text)
    rule = next(r for r in doc["rules"] if r["name"] == "Private lights")
    assert rule["asset"] == {"attribute": "Owner", "value": "Private"}
    assert "asset" not in next(r for r in doc["rules"] if r["name"] == "Potholes by district")
    pothole_doc = next(x for x in doc["categories"] if x["code"] == "pothole")
    assert pothole_doc["asset_layer"] == "streetlights"
    # The same file again changes nothing.
    with sessions.begin() as s:
        lines, _notes = city_file.apply_city(s, s.get(Jurisdiction, city.city_id), doc)
    assert lines == []
    # A changed value and no layer: one rule set, one category change.
    rule["asset"]["value"] = "State"
    del pothole_doc["asset_layer"]
    with sessions.begin() as s:
        lines, _notes = city_file.apply_city(s, s.get(Jurisdiction, city.city_id), doc)
    assert any(line.startswith("~ rules: version") for line in lines)
    assert any("category pothole" in line and "asset_layer" in line for line in lines)
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        assert s.get(Service, city.pothole_id).asset_layer_id is None
        published = rules.ordered_rules(s, rules.published(s, c))
        assert [(r.asset_attribute, r.asset_value) for r in published][0] == ("Owner", "State")


def test_city_file_refuses_an_unknown_asset_layer_and_half_a_condition(sessions, city):
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        doc = city_file.export_city(s, c)
    pothole_doc = next(x for x in doc["categories"] if x["code"] == "pothole")
    pothole_doc["asset_layer"] = "hydrants"
    with sessions.begin() as s:
        with pytest.raises(InvalidInput) as bad_layer:
            city_file.apply_city(s, s.get(Jurisdiction, city.city_id), doc)
    index = doc["categories"].index(pothole_doc)
    assert str(bad_layer.value).startswith(f"categories[{index}].asset_layer: ")
    assert "no asset layer 'hydrants'" in str(bad_layer.value)
    del pothole_doc["asset_layer"]
    doc["rules"][0]["asset"] = {"attribute": "Owner"}
    with sessions.begin() as s:
        with pytest.raises(InvalidInput) as half:
            city_file.apply_city(s, s.get(Jurisdiction, city.city_id), doc)
    assert str(half.value).startswith("rules[0].asset")
    with sessions.begin() as s:
        assert s.get(Service, city.pothole_id).asset_layer_id is None


def test_a_category_takes_only_its_own_citys_asset_layer(sessions, city):
    with sessions.begin() as s:
        other = Jurisdiction(
            slug="elsewhere", name="Elsewhere", timezone="UTC", public_id_prefix="EW"
        )
        s.add(other)
        s.flush()
        s.add(AssetLayer(jurisdiction_id=other.id, name="hydrants", title="Hydrant"))
        s.flush()
        c = s.get(Jurisdiction, city.city_id)
        pothole = s.get(Service, city.pothole_id)
        with pytest.raises(InvalidInput) as err:
            categories.update_category(s, c, pothole, {"asset_layer": "hydrants"})
        assert err.value.field == "asset_layer"
        categories.update_category(s, c, pothole, {"asset_layer": "streetlights"})
        assert s.get(Service, city.pothole_id).asset_layer_id == city.layer_id
        categories.update_category(s, c, pothole, {"asset_layer": ""})
        assert s.get(Service, city.pothole_id).asset_layer_id is None


# --------------------------------------------------------------------------- pages and CLI


def _error(html: str, field: str) -> str:
    match = re.search(rf'id="error-{re.escape(field)}" role="alert">([^<]*)<', html)
    assert match, f"no message beside {field}"
    return htmllib.unescape(match.group(1))


def test_the_rules_page_edits_an_asset_condition(client, sessions, city):
    login(client, "admin")
    with sessions.begin() as s:
        draft = rules.create_draft(s, s.get(Jurisdiction, city.city_id))
        draft_id = draft.id
    form = {
        "name": "State lights",
        "match": "any",
        "department": "parks",
        "asset_attribute": " Owner ",
        "asset_value": "State",
        "csrf_token": csrf_from(client, f"/admin/rules/{draft_id}"),
    }
    bad = client.post(f"/admin/rules/{draft_id}/rules", data={**form, "asset_value": ""})
    assert bad.status_code == 400
    assert "needs the value" in _error(bad.get_data(as_text=True), "asset_value")
    with sessions() as s:
        assert s.scalar(sa.select(sa.func.count()).where(RoutingRule.ruleset_id == draft_id)) == 2
    res = client.post(f"/admin/rules/{draft_id}/rules", data=form)
    assert res.status_code == 302
    page = client.get(f"/admin/rules/{draft_id}").get_data(as_text=True)
    assert "asset Owner = State" in page
    with sessions() as s:
        rule = s.scalar(sa.select(RoutingRule).where(RoutingRule.name == "State lights"))
        assert (rule.asset_attribute, rule.asset_value) == ("Owner", "State")


def test_the_category_page_ties_a_category_to_the_citys_asset_layer(client, sessions, city):
    login(client, "admin")
    path = f"/admin/categories/{city.pothole_id}"
    page = client.get(path).get_data(as_text=True)
    assert '<option value="streetlights"' in page and "Street light (streetlights)" in page
    token = csrf_from(client, path)
    base = {"csrf_token": token, "code": "pothole", "name": "Pothole"}
    bad = client.post(path, data={**base, "asset_layer": "hydrants"})
    assert bad.status_code == 400
    assert "no asset layer 'hydrants'" in _error(bad.get_data(as_text=True), "asset_layer")
    with sessions() as s:
        assert s.get(Service, city.pothole_id).asset_layer_id is None
    assert client.post(path, data={**base, "asset_layer": "streetlights"}).status_code == 302
    with sessions() as s:
        assert s.get(Service, city.pothole_id).asset_layer_id == city.layer_id
        event = s.scalars(sa.select(AdminEvent).where(AdminEvent.action == "category.edit")).one()
        assert event.what["asset_layer"] == [None, "streetlights"]
    page = client.get(path).get_data(as_text=True)
    assert '<option value="streetlights" selected' in page


def test_the_cli_sets_a_categorys_asset_layer(cli, sessions, city):
    res = cli("categories", "set", "--city", "testville", "pothole", "--asset-layer", "nope")
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == [
        "civicpin: error: no asset layer 'nope' in this city: import its assets first"
    ]
    res = cli(
        "categories", "set", "--city", "testville", "pothole", "--asset-layer", "streetlights"
    )
    assert res.returncode == 0, res.stderr
    assert "asset_layer None -> 'streetlights'" in res.stdout
    res = cli("categories", "set", "--city", "testville", "pothole", "--asset-layer", "")
    assert "asset_layer 'streetlights' -> None" in res.stdout


def test_what_if_counts_the_requests_an_asset_rule_would_move(sessions, city, tmp_path):
    with sessions.begin() as s:
        c = s.get(Jurisdiction, city.city_id)
        for ref in ("791-2", "791-3", None):
            r = report(s, tmp_path)
            _about(s, r, city.layer_id if ref else None, ref)
            route_request(s, r)
        draft = rules.create_draft(s, c)
        first = rules.ordered_rules(s, draft)[0]
        values = rules.parse_rule(s, c, {**PRIVATE_RULE, "asset_value": "City"})
        rules.update_rule(s, draft, first.id, values)
        draft_id = draft.id
    with sessions.begin() as s:
        result = whatif.what_if(s, s.get(Jurisdiction, city.city_id), 30, ruleset_id=draft_id)
    # 791-2 (private) goes back to the district's crew, 791-3 (the city's) to Parks.
    assert (result.changed, result.department) == (2, 2)
    with sessions() as s:
        assert {r.department_id for r in s.scalars(sa.select(ServiceRequest))} == {
            city.parks_id,
            city.streets_id,
        }


def test_a_new_report_about_a_private_light_is_routed_by_its_owner_at_once(
    sessions, city, tmp_path
):
    with sessions.begin() as s:
        s.get(Service, city.pothole_id).asset_layer_id = city.layer_id
    with sessions.begin() as s:
        private = report(s, tmp_path, asset_ref=" 791-2 ")
        public = report(s, tmp_path, asset_ref="791-3")
        seen = (
            (private.asset_ref, private.department_id, private.routing_explanation),
            (public.asset_ref, public.department_id),
        )
    assert seen[0] == (
        "791-2",
        city.parks_id,
        "Parks: any location; rule 1 'Private lights': asset Owner = Private",
    )
    assert seen[1] == ("791-3", city.streets_id)
