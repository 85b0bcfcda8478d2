"""What-if: how a draft rule set or a draft layer version would re-route recent requests.

How it is computed: inside a SAVEPOINT that is always rolled back, the draft is made
live exactly as publishing would (the draft rule set becomes ``published``, or the draft
layer version becomes current), :func:`routing.engine.route_bulk` re-routes the requests
of the last N days with the real engine, and the decisions are compared with a snapshot
taken before. Like ``civicpin route``, it looks at open requests (and closed ones never
routed): closed requests keep the decision they were closed with. Nothing is written: the savepoint rollback undoes the routing, its events
and the status swap. Because it *is* the engine, the numbers equal what publishing and
then ``civicpin route --since`` would change.

A zone counts as changed when its layer name or zone code changes, not its row id: a
new layer version has new zone rows, and "the same code in the new version" is the same
place for a person reading the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from routing.engine import OPEN_OR_UNROUTED, forget_rules, route_bulk
from spatial.errors import InvalidInput
from spatial.models import Jurisdiction, RuleSet, ZoneLayer, now_utc

MAX_DAYS = 3650
MAP_LIMIT = 5000  # features on the map; the counts always cover every request

SNAPSHOT_SQL = f"""
CREATE TEMP TABLE _whatif_before ON COMMIT DROP AS
SELECT r.id, r.department_id, r.crew_id, l.name AS layer_name, z.code AS zone_code
FROM service_request r
LEFT JOIN zone z ON z.id = r.zone_id
LEFT JOIN zone_layer l ON l.id = z.layer_id
WHERE r.jurisdiction_id = :jid AND r.requested_at >= :since AND {OPEN_OR_UNROUTED}
"""  # noqa: S608 (a constant of the engine, no input)

DIFF_SQL = """
CREATE TEMP TABLE _whatif_diff ON COMMIT DROP AS
SELECT r.id, r.public_id, ST_X(r.location) AS lon, ST_Y(r.location) AS lat,
       b.department_id AS old_dept, r.department_id AS new_dept,
       b.crew_id AS old_crew, r.crew_id AS new_crew,
       b.layer_name || ':' || b.zone_code AS old_zone,
       l.name || ':' || z.code AS new_zone
FROM _whatif_before b
JOIN service_request r ON r.id = b.id
LEFT JOIN zone z ON z.id = r.zone_id
LEFT JOIN zone_layer l ON l.id = z.layer_id
WHERE (b.department_id, b.crew_id, b.layer_name, b.zone_code)
      IS DISTINCT FROM (r.department_id, r.crew_id, l.name, z.code)
"""

COUNT_SQL = """
SELECT count(*) AS changed,
       count(*) FILTER (WHERE old_dept IS DISTINCT FROM new_dept) AS department,
       count(*) FILTER (WHERE old_crew IS DISTINCT FROM new_crew) AS crew,
       count(*) FILTER (WHERE old_zone IS DISTINCT FROM new_zone) AS zone
FROM _whatif_diff
"""

FEATURES_SQL = """
SELECT d.public_id, d.lon, d.lat,
       od.name AS old_department, nd.name AS new_department,
       oc.name AS old_crew, nc.name AS new_crew, d.old_zone, d.new_zone
FROM _whatif_diff d
LEFT JOIN department od ON od.id = d.old_dept
LEFT JOIN department nd ON nd.id = d.new_dept
LEFT JOIN crew oc ON oc.id = d.old_crew
LEFT JOIN crew nc ON nc.id = d.new_crew
WHERE d.lon IS NOT NULL
ORDER BY d.id
LIMIT :limit
"""


@dataclass
class WhatIf:
    """How many of ``examined`` requests would change, and where."""

    days: int
    examined: int
    changed: int
    department: int
    crew: int
    zone: int
    geojson: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "examined": self.examined,
            "changed": self.changed,
            "department": self.department,
            "crew": self.crew,
            "zone": self.zone,
            "geojson": self.geojson,
        }


def _apply_ruleset(session: Session, city: Jurisdiction, ruleset_id: int) -> None:
    rs = session.get(RuleSet, ruleset_id)
    if rs is None or rs.jurisdiction_id != city.id or rs.status != "draft":
        raise InvalidInput(f"rule set {ruleset_id} is not a draft of this city", field="ruleset")
    session.execute(
        sa.update(RuleSet)
        .where(RuleSet.jurisdiction_id == city.id, RuleSet.status == "published")
        .values(status="retired")
    )
    session.execute(
        sa.update(RuleSet)
        .where(RuleSet.id == ruleset_id)
        .values(status="published", published_at=now_utc())
    )


def _apply_layer(session: Session, city: Jurisdiction, layer_id: int) -> None:
    layer = session.get(ZoneLayer, layer_id)
    if layer is None or layer.jurisdiction_id != city.id:
        raise InvalidInput(f"layer version {layer_id} is not one of this city's", field="layer")
    session.execute(
        sa.update(ZoneLayer)
        .where(ZoneLayer.jurisdiction_id == city.id, ZoneLayer.name == layer.name)
        .values(is_current=ZoneLayer.id == layer_id)
    )


def what_if(
    session: Session,
    city: Jurisdiction,
    days: int,
    ruleset_id: int | None = None,
    layer_id: int | None = None,
) -> WhatIf:
    """Re-route the last ``days`` days as if the draft(s) were published; write nothing."""
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be a whole number from 1 to {MAX_DAYS}", field="days")
    if ruleset_id is None and layer_id is None:
        raise InvalidInput("choose a draft rule set or a draft layer version", field="ruleset")
    since = now_utc() - timedelta(days=days)
    session.flush()
    savepoint = session.begin_nested()
    try:
        session.execute(sa.text(SNAPSHOT_SQL), {"jid": city.id, "since": since})
        if ruleset_id is not None:
            _apply_ruleset(session, city, ruleset_id)
        if layer_id is not None:
            _apply_layer(session, city, layer_id)
        route_bulk(session, city, since=since)
        session.execute(sa.text(DIFF_SQL))
        examined = session.scalar(sa.text("SELECT count(*) FROM _whatif_before")) or 0
        counts = session.execute(sa.text(COUNT_SQL)).one()
        features = [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [row.lon, row.lat]},
                "properties": {
                    "public_id": row.public_id,
                    "department": [row.old_department, row.new_department],
                    "crew": [row.old_crew, row.new_crew],
                    "zone": [row.old_zone, row.new_zone],
                },
            }
            for row in session.execute(sa.text(FEATURES_SQL), {"limit": MAP_LIMIT})
        ]
    finally:
        savepoint.rollback()
        session.execute(sa.text("DROP TABLE IF EXISTS _whatif_before, _whatif_diff"))
        session.expire_all()
        # The engine may have cached the draft under the published key; it is not.
        forget_rules()
    return WhatIf(
        days=days,
        examined=int(examined),
        changed=int(counts.changed),
        department=int(counts.department),
        crew=int(counts.crew),
        zone=int(counts.zone),
        geojson={"type": "FeatureCollection", "features": features},
    )
