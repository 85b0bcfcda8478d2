"""The mail test city (``tests.support.mail``) where a pin decides crew and zone: crews
per district and a rule that routes general enquiries (the intake address's category)
by district. Used by the tests of dropping the missing pin."""

from __future__ import annotations

import sqlalchemy as sa

from spatial.models import Crew, RoutingRule, RuleSet
from tests.support.mail import make_mail_city


def make_locate_city(session) -> dict:
    made = make_mail_city(session)
    streets, general = made["department"], made["general"]
    west = Crew(department_id=streets.id, code="streets-W", name="West crew")
    east = Crew(department_id=streets.id, code="streets-E", name="East crew")
    session.add_all([west, east])
    rules = session.scalar(sa.select(RuleSet).where(RuleSet.jurisdiction_id == made["city"].id))
    rules.rules.append(
        RoutingRule(
            position=2,
            name="General enquiries by district",
            service_id=general.id,
            layer_name="districts",
            department_id=streets.id,
            crew_from_zone=True,
        )
    )
    session.flush()
    return {**made, "west": west, "east": east}
