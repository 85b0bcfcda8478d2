"""The 10,000 real LA records imported as history into a second city that has the demo's
council polygons: every row lands in the council geopandas puts it in."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from intake.history_import import ImportOptions, import_history, parse_column_map
from spatial.db import make_sessionmaker
from tests.support import analytics_truth as truth

LA_MAP = (
    "id=request_id,lat=latitude,lon=longitude,category=category,created=created_at,"
    "closed=closed_at,status=status,address=address,channel=source,updated=updated_at"
)


def _copy_city(sessions) -> None:
    """City ``la-history``: the demo's boundary and council layer, no categories."""
    with sessions.begin() as s:
        s.execute(
            sa.text(
                "INSERT INTO jurisdiction (slug, name, timezone, metric_srid, public_id_prefix, "
                "boundary, created_at) SELECT 'la-history', 'LA history', timezone, metric_srid, "
                "'LH', boundary, now() FROM jurisdiction WHERE slug = 'los-angeles'"
            )
        )
        s.execute(
            sa.text(
                "INSERT INTO zone_layer (jurisdiction_id, name, version, is_current, imported_at) "
                "SELECT j.id, 'councils', 1, true, now() FROM jurisdiction j "
                "WHERE j.slug = 'la-history'"
            )
        )
        s.execute(
            sa.text(
                "INSERT INTO zone (layer_id, code, name, geom) "
                "SELECT nl.id, z.code, z.name, z.geom FROM zone z "
                "JOIN zone_layer l ON l.id = z.layer_id AND l.is_current "
                "JOIN jurisdiction j ON j.id = l.jurisdiction_id AND j.slug = 'los-angeles' "
                "JOIN zone_layer nl ON nl.name = 'councils' "
                "WHERE l.name = 'neighborhood-councils'"
            )
        )


def test_la_history_lands_in_the_same_councils_as_geopandas(demo_engine):
    sessions = make_sessionmaker(demo_engine)
    _copy_city(sessions)
    opts = ImportOptions(Path(truth.CSV), parse_column_map(LA_MAP), create_categories=True)
    seen: list[tuple[str, int, int]] = []
    result = import_history(
        sessions, "la-history", opts, progress=lambda p, d, t: seen.append((p, d, t))
    )
    assert result.imported == 10_000 and result.routed == 10_000
    assert len(result.created_categories) == 11
    assert result.report.no_coordinates == 11 and result.report.outside_city == 139
    assert {p for p, _, _ in seen} == {"checking", "importing", "routing"}
    assert seen[-1] == ("routing", 10_000, 10_000)

    with sessions() as s:
        stored = pd.DataFrame(
            s.execute(
                sa.text(
                    "SELECT r.external_id, r.requested_at, r.closed_at, r.status, z.code AS nc "
                    "FROM service_request r JOIN jurisdiction j ON j.id = r.jurisdiction_id "
                    "LEFT JOIN request_zone rz ON rz.request_id = r.id "
                    "LEFT JOIN zone z ON z.id = rz.zone_id WHERE j.slug = 'la-history'"
                )
            ).all()
        )
    assert len(stored) == 10_000
    expected = truth.requests().set_index("external_id")
    stored = stored.set_index("external_id")
    assert set(stored.index) == set(expected.index)  # every external id kept
    zone = truth.council_of_request()
    assert stored["nc"].dropna().to_dict() == zone.to_dict()
    assert (stored["requested_at"] == expected.loc[stored.index, "requested"]).all()
    same_close = (stored["closed_at"] == expected.loc[stored.index, "closed"]) | (
        stored["closed_at"].isna() & expected.loc[stored.index, "closed"].isna()
    )
    assert same_close.all()
    assert (stored["status"] == expected.loc[stored.index, "status"]).all()
    per_council = stored["nc"].value_counts().to_dict()
    assert per_council == {k: v["requests"] for k, v in truth.by_council().items() if v["requests"]}
