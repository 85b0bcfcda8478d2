"""Rule-set versions: drafts copied from the published set, edited, validated, published.

A city has at most one published :class:`~spatial.models.RuleSet`; edits happen only in
drafts (the published set is never changed in place, so a request's ``ruleset_version``
always names the rules it was routed with). Publishing a draft retires the previous
published set and drops the routing engine's rule cache.

Rule fields arrive as form strings and are validated by :func:`parse_rule` before any
write; each problem raises :class:`~spatial.errors.InvalidInput` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from routing import reroute_jobs
from routing.engine import forget_rules, published
from spatial.errors import InvalidInput, NotFound
from spatial.models import (
    PRIORITIES,
    Crew,
    Department,
    Jurisdiction,
    RoutingRule,
    RuleSet,
    Service,
    Zone,
    ZoneLayer,
    now_utc,
)

RULE_FIELDS = (
    "name",
    "service_id",
    "service_group",
    "layer_name",
    "zone_code",
    "department_id",
    "crew_id",
    "crew_from_zone",
    "priority",
    "sla_hours",
    "active",
    "asset_attribute",
    "asset_value",
)
MAX_SLA_HOURS = 24 * 365


@dataclass(frozen=True)
class RuleValues:
    """A validated rule, ready to store."""

    name: str
    service_id: int | None
    service_group: str | None
    layer_name: str | None
    zone_code: str | None
    department_id: int
    crew_id: int | None
    crew_from_zone: bool
    priority: str | None
    sla_hours: float | None
    active: bool = True
    asset_attribute: str | None = None
    asset_value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in RULE_FIELDS}


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value).strip()


def _truthy(value: Any) -> bool:
    return str(value or "").strip().lower() in {"1", "true", "on", "yes"}


def parse_rule(session: Session, city: Jurisdiction, data: dict[str, Any]) -> RuleValues:
    """Validate one rule's form fields against the city's catalogue.

    ``match`` is ``any``, ``service`` (with ``service_code``) or ``group`` (with
    ``service_group``); ``layer_name`` empty means anywhere, ``zone_code`` empty any zone
    of the layer; ``department`` is a department code; ``crew`` a crew code of that
    department, or ``crew_from_zone`` on; ``sla_hours`` empty or a number >= 0;
    ``asset_attribute`` and ``asset_value`` both empty, or both set (the rule then
    matches only a request about an asset whose attribute has that value).
    """
    name = _text(data, "name")
    if not name or len(name) > 200:
        raise InvalidInput("the rule needs a name of 1-200 characters", field="name")

    match = _text(data, "match") or "any"
    service_id: int | None = None
    group: str | None = None
    if match == "service":
        code = _text(data, "service_code")
        service_id = session.scalar(
            sa.select(Service.id).where(Service.jurisdiction_id == city.id, Service.code == code)
        )
        if service_id is None:
            raise InvalidInput(f"no category with code {code!r} in this city", field="service_code")
    elif match == "group":
        group = _text(data, "service_group")
        known = session.scalar(
            sa.select(sa.func.count()).where(
                Service.jurisdiction_id == city.id, Service.group == group
            )
        )
        if not group or not known:
            raise InvalidInput(f"no category group {group!r} in this city", field="service_group")
    elif match != "any":
        raise InvalidInput("match must be any, service or group", field="match")

    layer_name = _text(data, "layer_name") or None
    zone_code = _text(data, "zone_code") or None
    if layer_name is None and zone_code is not None:
        raise InvalidInput("a zone needs its layer", field="layer_name")
    if layer_name is not None:
        layer_id = session.scalar(
            sa.select(ZoneLayer.id).where(
                ZoneLayer.jurisdiction_id == city.id,
                ZoneLayer.name == layer_name,
                ZoneLayer.is_current,
            )
        )
        if layer_id is None:
            raise InvalidInput(f"no current zone layer {layer_name!r}", field="layer_name")
        if zone_code is not None and not session.scalar(
            sa.select(Zone.id).where(Zone.layer_id == layer_id, Zone.code == zone_code).limit(1)
        ):
            raise InvalidInput(
                f"layer {layer_name!r} has no zone with code {zone_code!r}", field="zone_code"
            )

    dept_code = _text(data, "department")
    department = session.scalar(
        sa.select(Department).where(
            Department.jurisdiction_id == city.id, Department.code == dept_code
        )
    )
    if department is None:
        raise InvalidInput(f"no department with code {dept_code!r}", field="department")

    crew_from_zone = _truthy(data.get("crew_from_zone"))
    crew_code = _text(data, "crew")
    crew_id: int | None = None
    if crew_code:
        crew_id = session.scalar(
            sa.select(Crew.id).where(Crew.department_id == department.id, Crew.code == crew_code)
        )
        if crew_id is None:
            raise InvalidInput(
                f"department {dept_code!r} has no crew with code {crew_code!r}", field="crew"
            )
    if crew_from_zone and layer_name is None:
        raise InvalidInput("'crew from zone' needs a layer", field="crew_from_zone")

    # Empty: the category's default priority.
    priority = _text(data, "priority") or None
    if priority is not None and priority not in PRIORITIES:
        raise InvalidInput(f"priority must be one of {', '.join(PRIORITIES)}", field="priority")

    sla_text = _text(data, "sla_hours")
    sla: float | None = None
    if sla_text:
        try:
            sla = float(sla_text)
        except ValueError:
            raise InvalidInput(
                f"SLA hours {sla_text!r} is not a number", field="sla_hours"
            ) from None
        if not (0 <= sla <= MAX_SLA_HOURS):
            raise InvalidInput(
                f"SLA hours must be between 0 and {MAX_SLA_HOURS}", field="sla_hours"
            )
    active = _truthy(data.get("active", "1"))
    asset_attribute, asset_value = parse_asset_condition(
        _text(data, "asset_attribute"), _text(data, "asset_value")
    )
    return RuleValues(
        name,
        service_id,
        group,
        layer_name,
        zone_code,
        department.id,
        crew_id,
        crew_from_zone,
        priority,
        sla,
        active,
        asset_attribute,
        asset_value,
    )


def parse_asset_condition(attribute: str, value: str) -> tuple[str | None, str | None]:
    """A rule's asset condition from two texts: both empty (none) or both set."""
    attribute, value = (attribute or "").strip(), (value or "").strip()
    if not attribute and not value:
        return None, None
    if not attribute:
        raise InvalidInput(
            "an asset value needs the attribute it is compared with", field="asset_attribute"
        )
    if not value:
        raise InvalidInput(
            f"asset attribute {attribute!r} needs the value to match", field="asset_value"
        )
    if len(attribute) > 100 or any(ord(c) < 32 for c in attribute):
        raise InvalidInput(
            "the asset attribute is a field name of 1-100 characters", field="asset_attribute"
        )
    if len(value) > 200 or any(ord(c) < 32 for c in value):
        raise InvalidInput("the asset value must be 1-200 characters", field="asset_value")
    return attribute, value


# --------------------------------------------------------------------------- versions


def rulesets(session: Session, city: Jurisdiction) -> list[RuleSet]:
    """All versions of the city's rule sets, newest first."""
    return list(
        session.scalars(
            sa.select(RuleSet)
            .where(RuleSet.jurisdiction_id == city.id)
            .order_by(RuleSet.version.desc())
        )
    )


def get_ruleset(session: Session, city: Jurisdiction, ruleset_id: int) -> RuleSet:
    rs = session.get(RuleSet, ruleset_id)
    if rs is None or rs.jurisdiction_id != city.id:
        raise NotFound(f"no rule set {ruleset_id} in this city")
    return rs


def get_draft(session: Session, city: Jurisdiction, ruleset_id: int) -> RuleSet:
    rs = get_ruleset(session, city, ruleset_id)
    if rs.status != "draft":
        raise InvalidInput(
            f"rule set version {rs.version} is {rs.status}: only drafts can be changed",
            field="ruleset",
        )
    return rs


def ordered_rules(session: Session, rs: RuleSet) -> list[RoutingRule]:
    return list(
        session.scalars(
            sa.select(RoutingRule)
            .where(RoutingRule.ruleset_id == rs.id)
            .order_by(RoutingRule.position, RoutingRule.id)
        )
    )


def create_draft(session: Session, city: Jurisdiction, note: str | None = None) -> RuleSet:
    """A new draft version holding a copy of the published rules (empty without one)."""
    note = (note or "").strip() or None
    # Serialises version numbers per city: two admins cannot both take version n+1.
    session.execute(sa.select(Jurisdiction.id).where(Jurisdiction.id == city.id).with_for_update())
    version = (
        session.scalar(
            sa.select(sa.func.max(RuleSet.version)).where(RuleSet.jurisdiction_id == city.id)
        )
        or 0
    ) + 1
    draft = RuleSet(jurisdiction_id=city.id, version=version, status="draft", note=note)
    session.add(draft)
    session.flush()
    source = published(session, city)
    if source is not None:
        for i, rule in enumerate(ordered_rules(session, source), start=1):
            session.add(
                RoutingRule(
                    ruleset_id=draft.id,
                    position=i,
                    **{f: getattr(rule, f) for f in RULE_FIELDS},
                )
            )
        session.flush()
    return draft


def _renumber(session: Session, rules: list[RoutingRule]) -> None:
    for i, rule in enumerate(rules, start=1):
        rule.position = i
    session.flush()


def add_rule(
    session: Session, draft: RuleSet, values: RuleValues, position: int | None = None
) -> RoutingRule:
    """Insert a rule into a draft at ``position`` (1-based; default: last)."""
    rules = ordered_rules(session, draft)
    rule = RoutingRule(ruleset_id=draft.id, position=0, **values.as_dict())
    session.add(rule)
    index = len(rules) if position is None else max(0, min(position - 1, len(rules)))
    rules.insert(index, rule)
    _renumber(session, rules)
    return rule


def _rule_of(session: Session, draft: RuleSet, rule_id: int) -> RoutingRule:
    rule = session.get(RoutingRule, rule_id)
    if rule is None or rule.ruleset_id != draft.id:
        raise NotFound(f"no rule {rule_id} in draft version {draft.version}")
    return rule


def rule_values(session: Session, draft: RuleSet, rule_id: int) -> dict[str, Any]:
    """A draft rule's fields, as :meth:`RuleValues.as_dict` gives them."""
    rule = _rule_of(session, draft, rule_id)
    return {f: getattr(rule, f) for f in RULE_FIELDS}


def update_rule(session: Session, draft: RuleSet, rule_id: int, values: RuleValues) -> RoutingRule:
    rule = _rule_of(session, draft, rule_id)
    for key, value in values.as_dict().items():
        setattr(rule, key, value)
    session.flush()
    return rule


def remove_rule(session: Session, draft: RuleSet, rule_id: int) -> None:
    rule = _rule_of(session, draft, rule_id)
    session.delete(rule)
    session.flush()
    _renumber(session, ordered_rules(session, draft))


def move_rule(session: Session, draft: RuleSet, rule_id: int, new_position: int) -> None:
    """Move a rule to ``new_position`` (1-based, clamped), shifting the others."""
    rule = _rule_of(session, draft, rule_id)
    rules = [r for r in ordered_rules(session, draft) if r.id != rule.id]
    rules.insert(max(0, min(new_position - 1, len(rules))), rule)
    _renumber(session, rules)


def publish(
    session: Session, city: Jurisdiction, ruleset_id: int, by: str | None = None
) -> RuleSet:
    """Publish a draft: the previously published set becomes retired.

    New and moved requests use the new set at once; the open ones are re-routed by the
    worker, through the job queued here in the same transaction (``by``: who published,
    named in the requests' "rerouted" events).
    """
    draft = get_draft(session, city, ruleset_id)
    if not ordered_rules(session, draft):
        raise InvalidInput("a rule set without rules would route nothing", field="ruleset")
    session.execute(
        sa.update(RuleSet)
        .where(RuleSet.jurisdiction_id == city.id, RuleSet.status == "published")
        .values(status="retired")
    )
    draft.status = "published"
    draft.published_at = now_utc()
    session.flush()
    forget_rules()
    reroute_jobs.enqueue(session, city, "rules", draft.id, by)
    return draft


def discard_draft(session: Session, city: Jurisdiction, ruleset_id: int) -> None:
    draft = get_draft(session, city, ruleset_id)
    session.delete(draft)
    session.flush()


# --------------------------------------------------------------------------- layer versions


def layer_versions(session: Session, city: Jurisdiction) -> list[ZoneLayer]:
    """Every version of every layer, by name then newest first."""
    return list(
        session.scalars(
            sa.select(ZoneLayer)
            .where(ZoneLayer.jurisdiction_id == city.id)
            .order_by(ZoneLayer.name, ZoneLayer.version.desc())
        )
    )


def hold_as_draft(session: Session, city: Jurisdiction, layer: ZoneLayer) -> None:
    """Take a just-imported layer version out of routing again: the newest other
    version becomes current (without one, the version stays current).

    Importing with ``draft=True`` (:func:`spatial.zones.import_layer`) keeps any new
    version, a first one too, out of routing from the start.
    """
    previous = session.scalar(
        sa.select(ZoneLayer)
        .where(
            ZoneLayer.jurisdiction_id == city.id,
            ZoneLayer.name == layer.name,
            ZoneLayer.id != layer.id,
        )
        .order_by(ZoneLayer.version.desc())
        .limit(1)
    )
    if previous is None:
        return
    layer.is_current = False
    previous.is_current = True
    session.flush()


def layer_made_current(
    session: Session, city: Jurisdiction, layer: ZoneLayer, by: str | None = None
) -> None:
    """After an import made ``layer`` current: the worker gives every request its zone
    in it and re-routes the open ones (a job queued in the same transaction)."""
    forget_rules()
    reroute_jobs.enqueue(session, city, "layer", layer.id, by)


def publish_layer(
    session: Session, city: Jurisdiction, layer_id: int, by: str | None = None
) -> ZoneLayer:
    """Make one version of a layer the current one; the worker then gives every request
    its zone in it and re-routes the open ones (see :mod:`routing.reroute_jobs`)."""
    layer = session.get(ZoneLayer, layer_id)
    if layer is None or layer.jurisdiction_id != city.id:
        raise NotFound(f"no layer version {layer_id} in this city")
    session.execute(
        sa.update(ZoneLayer)
        .where(ZoneLayer.jurisdiction_id == city.id, ZoneLayer.name == layer.name)
        .values(is_current=ZoneLayer.id == layer.id)
    )
    session.expire(layer)
    forget_rules()
    reroute_jobs.enqueue(session, city, "layer", layer.id, by)
    return layer
