"""Active Dispatch end to end in a real Chromium: a new report appears in the open
console without a reload (banner and beep); the dispatcher triages, reassigns and
merges from the console; the crew resolves it with a photo from a phone-sized page;
the resident's history holds the public part of all that, and none of the internal.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from spatial.models import OutboxMessage, Photo, RequestEvent, ServiceRequest
from tests.support.browser import chromium, serve, watch_problems
from tests.support.dispatch_city import PASSWORD, make_dispatch_city, report
from tests.support.images import jpeg_bytes

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/civicpin-dispatch-{}.png"
INTERNAL = "Internal: the caller is a council member"


def _login(page, base, key, next_path):
    page.goto(f"{base}/login?next={next_path}")
    page.fill('input[name="email"]', f"{key}@city.example")
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')
    page.wait_for_url(f"**{next_path}")


def _submit_in_panel(page, action, expect):
    page.click(f'#panel form[data-action="{action}"] button[type="submit"]')
    page.locator("#panel .panel-message.form-ok").filter(has_text=expect).wait_for(timeout=10_000)


def test_dispatch_to_resolution_in_chromium(app, sessions, settings, tmp_path):
    with sessions.begin() as s:
        make_dispatch_city(s)
        older = report(s, settings.media_dir, address="1 Old Rd", email="old@example.org")
        older_pid = older.public_id

    with serve(app) as base, chromium() as browser:
        # ---- the dispatcher opens the console
        desk = browser.new_context(viewport={"width": 1400, "height": 900})
        page = desk.new_page()
        problems = watch_problems(page)
        _login(page, base, "dispatcher", "/dispatch")
        page.wait_for_selector("#console[data-live='1']")
        assert page.locator(f'.queue-item[data-public-id="{older_pid}"]').count() == 1
        page.evaluate("() => { window.civicpinMarker = 'still here'; }")

        # ---- a resident reports; it appears without a reload, with a banner and a beep
        with sessions.begin() as s:
            new = report(
                s,
                settings.media_dir,
                address="5 Elm St",
                email="rosa@example.org",
                where=(34.06, -118.27),
            )
            new_id, pid, token = new.id, new.public_id, new.token
        item = page.locator(f'.queue-item[data-public-id="{pid}"]')
        item.wait_for(timeout=10_000)
        banner = page.locator("#arrival-banner")
        banner.wait_for(state="visible")
        assert pid in banner.inner_text() and "Pothole" in banner.inner_text()
        assert page.evaluate("() => window.civicpinMarker") == "still here", "no reload"
        assert int(page.get_attribute("body", "data-beeps") or 0) >= 1, page.get_attribute(
            "body", "data-beep-error"
        )
        assert "untriaged" in item.inner_text()
        assert page.inner_text("#queue-status").startswith("2 requests")
        assert page.locator(".leaflet-marker-icon.dispatch-pin").count() >= 2
        page.screenshot(path=SHOTS.format("arrival"))

        # ---- triage: priority high
        item.click()
        page.wait_for_selector(f'#panel .request-panel[data-public-id="{pid}"]')
        assert "rosa@example.org" in page.inner_text("#panel")
        page.select_option('#panel form[data-action="triage"] select[name="priority"]', "high")
        _submit_in_panel(page, "triage", "triaged (priority high)")
        assert "priority high" in page.inner_text("#panel-priority")

        # ---- reassign to the East crew
        page.select_option(
            '#panel form[data-action="reassign"] select[name="crew_id"]',
            label="Streets / East crew",
        )
        _submit_in_panel(page, "reassign", "reassigned")
        assert "East crew" in page.inner_text("#panel-assigned")

        # ---- an internal note, from the panel's conversation box
        page.check('#panel form[data-action="reply_text"] input[value="internal"]')
        page.fill('#panel form[data-action="reply_text"] textarea[name="reply"]', INTERNAL)
        _submit_in_panel(page, "reply_text", "Internal note added")

        # ---- a second report of the same hole arrives and is merged into the first
        with sessions.begin() as s:
            dup = report(
                s,
                settings.media_dir,
                address="5 Elm Street",
                email="neighbour@example.org",
                where=(34.0601, -118.2701),
            )
            dup_id, dup_pid = dup.id, dup.public_id
        dup_item = page.locator(f'.queue-item[data-public-id="{dup_pid}"]')
        dup_item.wait_for(timeout=10_000)
        assert dup_pid in banner.inner_text()
        dup_item.click()
        page.wait_for_selector(f'#panel .request-panel[data-public-id="{dup_pid}"]')
        # The nearby report is offered as a merge target.
        page.click(f'#panel .js-fill[data-value="{pid}"]')
        _submit_in_panel(page, "merge", f"merged into {pid}")
        assert "Duplicate" in page.inner_text("#panel-status")
        page.screenshot(path=SHOTS.format("console"))
        assert problems == []

        # ---- the East crew resolves it from a phone with a photo
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
        )
        crew = phone.new_page()
        crew_problems = watch_problems(crew)
        _login(crew, base, "crew_other", "/crew")
        crew.wait_for_selector("#crew[data-loaded]")
        crew.wait_for_selector(".leaflet-overlay-pane path")  # the East zone outline
        row = crew.locator(f'.crew-item[data-public-id="{pid}"]')
        assert "high" in row.inner_text()
        crew.screenshot(path=SHOTS.format("crew"))
        row.locator("a").click()
        crew.wait_for_url(f"**/crew/requests/{pid}")
        assert "rosa@example.org" in crew.inner_text(".contact")
        crew.check('input[name="status"][value="resolved"]')
        crew.fill('textarea[name="note"]', "Filled and compacted")
        photo = tmp_path / "after.jpg"
        photo.write_bytes(jpeg_bytes(lat=34.06, lon=-118.27))
        crew.set_input_files('input[name="photo"]', str(photo))
        crew.click('form.crew-status button[type="submit"]')
        crew.wait_for_url(f"**/crew/requests/{pid}")
        assert "is now resolved" in crew.inner_text(".flashes")
        assert crew.inner_text("#crew-status-badge") == "Resolved"
        crew.screenshot(path=SHOTS.format("resolved"), full_page=True)
        assert crew_problems == []

        # ---- the resident's history: the public part only
        resident = browser.new_context().new_page()
        resident_problems = watch_problems(resident)
        resident.goto(f"{base}/requests/{pid}?token={token}")
        text = resident.inner_text("body")
        for public_bit in ("Filled and compacted", "Now handled by Streets / East crew", dup_pid):
            assert public_bit in text
        for internal_bit in (INTERNAL, "routing confirmed", "Dispatcher"):
            assert internal_bit not in text
        resident.screenshot(path=SHOTS.format("resident"), full_page=True)
        assert resident_problems == []
        desk.close()
        phone.close()

    with sessions() as s:
        req = s.get(ServiceRequest, new_id)
        assert (req.status, req.priority) == ("resolved", "high")
        events = s.scalars(
            sa.select(RequestEvent)
            .where(RequestEvent.request_id == new_id)
            .order_by(RequestEvent.at, RequestEvent.id)
        ).all()
        public = [(e.kind, e.to_value) for e in events if e.public]
        assert [k for k, _ in public] == ["submitted", "reassigned", "merged_in", "status", "photo"]
        assert ("reassigned", "Streets / East crew") in public
        assert ("merged_in", dup_pid) in public
        assert ("status", "resolved") in public
        internal = {e.kind for e in events if not e.public}
        assert internal == {"triaged", "note"}
        assert all(INTERNAL != e.note for e in events if e.public)
        assert all(e.actor_id is not None for e in events if e.kind != "submitted")
        assert s.get(ServiceRequest, dup_id).duplicate_of_id == new_id
        assert s.scalar(sa.select(Photo.stage).where(Photo.request_id == new_id)) == "completion"
        # The reporter and the merged report's reporter both hear of the resolution.
        told = set(
            s.scalars(
                sa.select(OutboxMessage.to_addr).where(
                    OutboxMessage.request_id == new_id, OutboxMessage.kind == "resolution"
                )
            )
        )
        assert told == {"rosa@example.org", "neighbour@example.org"}
