"""Staff actions on requests, against real PostGIS: each changes what it says, writes its
audit event, queues its e-mails, and a refused or invalid action writes nothing."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from PIL import Image

from routing import actions
from routing.actions import Forbidden
from spatial.errors import InvalidInput
from spatial.models import (
    Follower,
    OutboxMessage,
    Photo,
    RequestEvent,
    ServiceRequest,
    now_utc,
)
from tests.support.dispatch_city import EAST, WEST, make_dispatch_city, report, user
from tests.support.images import jpeg_bytes

BASE = "http://127.0.0.1:5000"
NOW = now_utc()


@pytest.fixture
def city(sessions):
    with sessions.begin() as s:
        return make_dispatch_city(s)


@pytest.fixture
def media(tmp_path):
    return tmp_path / "media"


def _new(sessions, media, **kw) -> int:
    with sessions.begin() as s:
        return report(s, media, **kw).id


def _events(s, rid, kind=None):
    q = sa.select(RequestEvent).where(RequestEvent.request_id == rid)
    if kind:
        q = q.where(RequestEvent.kind == kind)
    return s.scalars(q.order_by(RequestEvent.id)).all()


def _outbox(s, rid, kind):
    return s.scalars(
        sa.select(OutboxMessage).where(OutboxMessage.request_id == rid, OutboxMessage.kind == kind)
    ).all()


def test_routing_sends_west_potholes_to_the_west_crew(sessions, city, media):
    rid = _new(sessions, media)
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert (req.department_id, req.crew_id) == (city.streets_id, city.crew_w_id)
        assert "West crew" in req.routing_explanation


def test_triage_sets_priority_and_first_response_with_an_internal_event(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        req = s.get(ServiceRequest, rid)
        assert req.first_response_at is None
        actions.triage(s, user(s, "dispatcher"), req, priority="high")
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.priority == "high"
        assert req.first_response_at is not None
        (ev,) = _events(s, rid, "triaged")
        assert (ev.from_value, ev.to_value, ev.public) == ("normal", "high", False)
        assert ev.actor_label == "Dispatcher" and ev.actor_id == user(s, "dispatcher").id
        assert "routing confirmed" in ev.note
        assert actions.is_triaged(s, req)
        first = req.first_response_at
    with sessions.begin() as s:
        actions.add_note(s, user(s, "dispatcher"), s.get(ServiceRequest, rid), text="later")
    with sessions() as s:
        assert s.get(ServiceRequest, rid).first_response_at == first


def test_triage_rejects_an_unknown_priority_and_writes_nothing(sessions, city, media):
    rid = _new(sessions, media)
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        with pytest.raises(InvalidInput, match="priority 'asap' is not one of"):
            actions.triage(s, user(s, "dispatcher"), req, priority="asap")
        s.rollback()
        assert _events(s, rid, "triaged") == []
        assert s.get(ServiceRequest, rid).first_response_at is None


def test_reassign_checks_the_crew_belongs_to_the_department(sessions, city, media):
    rid = _new(sessions, media)
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        with pytest.raises(InvalidInput, match="does not belong to Parks"):
            actions.reassign(
                s, user(s, "dispatcher"), req, department_id=city.parks_id, crew_id=city.crew_e_id
            )


def test_reassign_records_from_and_to_and_tells_the_new_crew(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        req = s.get(ServiceRequest, rid)
        actions.reassign(
            s,
            user(s, "dispatcher"),
            req,
            department_id=city.streets_id,
            crew_id=city.crew_e_id,
            public_base_url=BASE,
        )
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.crew_id == city.crew_e_id
        assert "reassigned by dispatch" in req.routing_explanation
        (ev,) = _events(s, rid, "reassigned")
        assert ev.from_value == "Streets / West crew"
        assert ev.to_value == "Streets / East crew"
        assert ev.public
        # the West crew heard of it when it came in; the East crew now
        assert [m.to_addr for m in _outbox(s, rid, "crew_assignment")] == [
            "crew@city.example",
            "crew_other@city.example",
        ]


def test_recategorise_routes_again(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        req = s.get(ServiceRequest, rid)
        actions.recategorise(s, user(s, "dispatcher"), req, service_id=city.private_id)
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.service_id == city.private_id
        # No rule for the private category: back to its default department, no crew.
        assert req.crew_id is None and req.department_id == city.streets_id
        assert req.routing_explanation.startswith("no rule matched")
        (ev,) = _events(s, rid, "recategorised")
        assert (ev.from_value, ev.to_value) == ("Pothole", "Abuse report")
        assert not ev.public  # a private category's name stays off the public record
        assert _events(s, rid, "routed"), "the re-route is recorded"


def test_triaged_priority_survives_a_reroute(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        d = user(s, "dispatcher")
        req = s.get(ServiceRequest, rid)
        actions.triage(s, d, req, priority="urgent")
        actions.move_pin(s, d, req, lon=EAST[1], lat=EAST[0])
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.priority == "urgent"
        assert req.crew_id == city.crew_e_id


def test_move_pin_reroutes_to_the_other_zone(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        req = s.get(ServiceRequest, rid)
        actions.move_pin(s, user(s, "dispatcher"), req, lon=EAST[1], lat=EAST[0])
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.crew_id == city.crew_e_id
        assert req.zone.code == "E"
        (moved,) = _events(s, rid, "moved")
        # The old address with its spot; the new spot has no address near (no streets).
        assert moved.from_value == f"100 Main St ({WEST[0]:.5f}, {WEST[1]:.5f})"
        assert moved.to_value == f"{EAST[0]:.6f}, {EAST[1]:.6f}"
        assert req.address is None
        (routed,) = _events(s, rid, "routed")
        assert "East" in routed.to_value and routed.public


@pytest.mark.parametrize(
    "lon, lat, message",
    [
        (-118.6, 34.3, "outside the city"),
        ("x", 34.0, "lon must be a number"),
        (float("nan"), 34.0, "lon must be between"),
        (-118.25, 95, "lat must be between"),
    ],
)
def test_move_pin_refuses_bad_places_and_changes_nothing(sessions, city, media, lon, lat, message):
    rid = _new(sessions, media)
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        with pytest.raises(InvalidInput, match=message):
            actions.move_pin(s, user(s, "dispatcher"), req, lon=lon, lat=lat)
        s.rollback()
        assert _events(s, rid, "moved") == []
        assert s.get(ServiceRequest, rid).crew_id == city.crew_w_id


def test_merge_closes_the_child_and_moves_its_followers(sessions, city, media):
    parent_id = _new(sessions, media, email="first@example.org")
    child_id = _new(sessions, media, email="second@example.org")
    grandchild_id = _new(sessions, media, email=None)
    with sessions.begin() as s:
        s.add_all(
            [
                Follower(request_id=child_id, email="neighbour@example.org", confirmed_at=NOW),
                Follower(  # already on the parent
                    request_id=child_id, email="FIRST@example.org", confirmed_at=NOW
                ),
                Follower(request_id=child_id, email=None, confirmed_at=NOW),
            ]
        )
    with sessions.begin() as s:
        d = user(s, "dispatcher")
        actions.merge(s, d, s.get(ServiceRequest, grandchild_id), s.get(ServiceRequest, child_id))
    with sessions.begin() as s:
        result = actions.merge(
            s,
            user(s, "dispatcher"),
            s.get(ServiceRequest, child_id),
            s.get(ServiceRequest, parent_id),
            public_base_url=BASE,
        )
        assert result.followers_moved == 3  # neighbour, the anonymous follow, the reporter
    with sessions() as s:
        child = s.get(ServiceRequest, child_id)
        parent = s.get(ServiceRequest, parent_id)
        assert child.status == "duplicate" and child.duplicate_of_id == parent_id
        assert child.closed_at is not None
        assert s.get(ServiceRequest, grandchild_id).duplicate_of_id == parent_id
        emails = sorted(
            (e or "-")
            for e in s.scalars(sa.select(Follower.email).where(Follower.request_id == parent_id))
        )
        assert emails == ["-", "neighbour@example.org", "second@example.org"]
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(Follower)
                .where(Follower.request_id == child_id)
            )
            == 0
        )
        (ev,) = _events(s, child_id, "merged")
        assert ev.to_value == parent.public_id and ev.public
        assert _events(s, parent_id, "merged_in")[0].to_value == child.public_id
        told = {m.to_addr for m in _outbox(s, child_id, "status_change")}
        assert {"second@example.org", "neighbour@example.org"} <= told
        assert actions.support_count(s, parent) == 3


def test_merge_refuses_itself_and_duplicates(sessions, city, media):
    a = _new(sessions, media)
    b = _new(sessions, media)
    c = _new(sessions, media)
    with sessions.begin() as s:
        actions.merge(s, user(s, "dispatcher"), s.get(ServiceRequest, b), s.get(ServiceRequest, a))
    with sessions() as s:
        d = user(s, "dispatcher")
        with pytest.raises(InvalidInput, match="into itself"):
            actions.merge(s, d, s.get(ServiceRequest, c), s.get(ServiceRequest, c))
        a_pid = s.get(ServiceRequest, a).public_id
        with pytest.raises(InvalidInput, match=f"merge into that|{a_pid}"):
            actions.merge(s, d, s.get(ServiceRequest, c), s.get(ServiceRequest, b))
        s.rollback()
        assert s.get(ServiceRequest, c).status == "new"


def test_reply_with_template_is_a_public_note_and_an_email(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        req = s.get(ServiceRequest, rid)
        result = actions.reply_with_template(
            s,
            user(s, "dispatcher"),
            req,
            template_id=city.template_id,
            extra="The crew comes on Tuesday.",
            public_base_url=BASE,
        )
        assert result.emailed
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        (ev,) = _events(s, rid, "reply")
        assert ev.public and ev.to_value == "Scheduled"
        assert ev.note.startswith(f"Thank you. Pothole {req.public_id} is scheduled")
        assert ev.note.endswith("The crew comes on Tuesday.")
        (mail,) = _outbox(s, rid, "template_reply")
        assert mail.to_addr == "resident@example.org"
        assert "The crew comes on Tuesday." in mail.body_text


def test_reply_to_an_anonymous_report_sends_no_email(sessions, city, media):
    rid = _new(sessions, media, email=None)
    with sessions.begin() as s:
        result = actions.reply_with_template(
            s,
            user(s, "dispatcher"),
            s.get(ServiceRequest, rid),
            template_id=city.template_id,
            public_base_url=BASE,
        )
        assert not result.emailed
    with sessions() as s:
        assert _events(s, rid, "reply")
        assert _outbox(s, rid, "template_reply") == []


def test_internal_notes_are_seen_only_by_their_department(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        req = s.get(ServiceRequest, rid)
        # Parks' dispatcher works the central queue too: a note there belongs to Parks.
        streets, req.department_id = req.department_id, None
        actions.add_note(s, user(s, "parks_dispatcher"), req, text="Parks: tree roots here?")
        req.department_id = streets
        actions.add_note(s, user(s, "crew"), req, text="Streets: needs asphalt truck")
        actions.add_note(s, user(s, "dispatcher"), req, text="Central: caller is the mayor")
    with sessions() as s:
        req = s.get(ServiceRequest, rid)

        def notes(key):
            return {
                e.note for e in actions.visible_events(s, user(s, key), req) if e.kind == "note"
            }

        assert notes("dispatcher") == {
            "Parks: tree roots here?",
            "Streets: needs asphalt truck",
            "Central: caller is the mayor",
        }
        # A central note on a Streets request belongs to Streets.
        assert notes("crew") == {"Streets: needs asphalt truck", "Central: caller is the mayor"}
        assert notes("parks_dispatcher") == {"Parks: tree roots here?"}
        # Planners work with figures, not with the requests' internal notes.
        assert notes("planner") == set()
        assert all(e.public for e in actions.visible_events(s, user(s, "planner"), req))


def test_crew_works_its_request_to_resolved_with_a_photo(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        crew = user(s, "crew")
        req = s.get(ServiceRequest, rid)
        actions.set_status(s, crew, req, status="acknowledged", public_base_url=BASE)
        actions.set_status(
            s, crew, req, status="in_progress", note="On our way", public_base_url=BASE
        )
        from spatial.media import PhotoUpload

        actions.set_status(
            s,
            crew,
            req,
            status="resolved",
            note="Filled with hot asphalt",
            photo=PhotoUpload("done.jpg", jpeg_bytes(lat=34.05, lon=-118.28)),
            media_dir=media,
            public_base_url=BASE,
        )
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.status == "resolved" and req.closed_at is not None
        steps = [(e.from_value, e.to_value, e.note) for e in _events(s, rid, "status")]
        assert steps == [
            ("new", "acknowledged", None),
            ("acknowledged", "in_progress", "On our way"),
            ("in_progress", "resolved", "Filled with hot asphalt"),
        ]
        (photo,) = s.scalars(sa.select(Photo).where(Photo.request_id == rid)).all()
        assert photo.stage == "completion"
        served = Image.open(io.BytesIO((media / photo.public_key).read_bytes()))
        assert not served.getexif(), "the served copy carries no EXIF (no GPS)"
        assert (media / photo.original_key).exists()
        assert _outbox(s, rid, "resolution"), "the resident is told it is resolved"
        assert [m.to_addr for m in _outbox(s, rid, "status_change")] == [
            "resident@example.org",
            "resident@example.org",
        ]


def test_cant_fix_needs_a_note_and_bad_transitions_are_refused(sessions, city, media):
    rid = _new(sessions, media)
    with sessions() as s:
        crew = user(s, "crew")
        req = s.get(ServiceRequest, rid)
        with pytest.raises(InvalidInput, match="Write a note"):
            actions.set_status(s, crew, req, status="cant_fix")
        with pytest.raises(InvalidInput, match="status 'closed' is not one of"):
            actions.set_status(s, crew, req, status="closed")
        with pytest.raises(InvalidInput, match="not an image|cannot|photo"):
            from spatial.media import PhotoUpload

            actions.set_status(
                s,
                crew,
                req,
                status="resolved",
                photo=PhotoUpload("x.jpg", b"not an image"),
                media_dir=media,
            )
        s.rollback()
        assert _events(s, rid, "status") == []
        assert not media.exists() or not any(media.rglob("*.jpg"))
    with sessions.begin() as s:
        actions.set_status(s, user(s, "crew"), s.get(ServiceRequest, rid), status="in_progress")
    with sessions() as s:
        with pytest.raises(InvalidInput, match="in progress: it cannot become acknowledged"):
            actions.set_status(
                s, user(s, "crew"), s.get(ServiceRequest, rid), status="acknowledged"
            )


def test_other_crews_and_other_roles_are_forbidden(sessions, city, media):
    rid = _new(sessions, media)
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        with pytest.raises(Forbidden, match="not assigned to your crew"):
            actions.set_status(s, user(s, "crew_other"), req, status="acknowledged")
        with pytest.raises(Forbidden):
            actions.add_note(s, user(s, "crew_other"), req, text="not mine")
        with pytest.raises(Forbidden):
            actions.triage(s, user(s, "crew"), req, priority="high")
        with pytest.raises(Forbidden):
            actions.close(s, user(s, "agent"), req, reason="no")
        with pytest.raises(Forbidden):
            actions.set_status(s, user(s, "dispatcher"), req, status="acknowledged")
        s.rollback()
        assert len(_events(s, rid)) == 1  # only "submitted"


def test_contact_details_only_for_own_crew(sessions, city, media):
    rid = _new(sessions, media)
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert actions.sees_private_details(user(s, "crew"), req)
        assert not actions.sees_private_details(user(s, "crew_other"), req)
        assert actions.sees_private_details(user(s, "dispatcher"), req)
        assert actions.sees_private_details(user(s, "agent"), req)
        assert not actions.sees_private_details(user(s, "planner"), req)


def test_close_needs_a_reason_and_tells_the_resident(sessions, city, media):
    rid = _new(sessions, media)
    with sessions() as s:
        with pytest.raises(InvalidInput, match="Write a reason"):
            actions.close(s, user(s, "dispatcher"), s.get(ServiceRequest, rid), reason="  ")
    with sessions.begin() as s:
        actions.close(
            s,
            user(s, "dispatcher"),
            s.get(ServiceRequest, rid),
            reason="Private property: not the city's",
            public_base_url=BASE,
        )
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        assert req.status == "closed" and req.closed_at and req.close_reason
        (ev,) = _events(s, rid, "status")
        assert ev.public and ev.note == "Private property: not the city's"
        assert [m.to_addr for m in _outbox(s, rid, "status_change")] == ["resident@example.org"]
        with pytest.raises(InvalidInput, match="is closed: it cannot be closed"):
            actions.close(s, user(s, "dispatcher"), req, reason="again")


def test_follow_adds_support_and_refuses_the_same_address_twice(sessions, city, media):
    rid = _new(sessions, media)
    with sessions.begin() as s:
        agent = user(s, "agent")
        req = s.get(ServiceRequest, rid)
        actions.follow(
            s, agent, req, email="caller@example.org", channel="phone", public_base_url=BASE
        )
        actions.follow(s, agent, req, email=None, channel="in_person")
    with sessions() as s:
        req = s.get(ServiceRequest, rid)
        # the address counts (and gets updates) once the caller opens the link mailed to it
        assert actions.support_count(s, req) == 1
        (confirm,) = _outbox(s, rid, "follow_confirmation")
        assert confirm.to_addr == "caller@example.org" and "token=" not in confirm.body_text
        notes = [e.note for e in _events(s, rid, "followed")]
        assert notes == [
            "Another resident reported this too (phone)",
            "Another resident reported this too (in person)",
        ]
        assert all("caller@" not in (e.note or "") for e in _events(s, rid))
        with pytest.raises(InvalidInput, match="already follows"):
            actions.follow(s, user(s, "agent"), req, email="Caller@example.org")
        with pytest.raises(InvalidInput, match="already follows"):
            actions.follow(s, user(s, "agent"), req, email="resident@example.org")
        with pytest.raises(InvalidInput, match="not an e-mail"):
            actions.follow(s, user(s, "agent"), req, email="nope")
