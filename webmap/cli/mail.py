"""``civicpin mail-intake``, ``mail-poll``, ``worker`` and ``civicpin mail ...`` (set-up).

- ``mail-intake``: the SMTP server that turns mail to the city's addresses into requests;
- ``mail-poll``: the same for a mailbox, over IMAP (``--url`` or ``IMAP_URL``);
- ``worker``: delivers the outbox over ``SMTP_URL`` (or to ``var/mail-spool/``);
- ``mail address add|list|remove``: the accepted recipient addresses per city;
- ``mail config``: the dispatch address, the sender address, the loop limits, the hourly
  cap on auto-replies per intake address and the mail gateway whose verdicts are trusted;
- ``mail template list|show|set|reset``: the per-city message texts;
- ``mail outbox``: how many messages are pending, sent, failed.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from spatial.cities import get_city
from spatial.db import session_scope
from spatial.errors import InvalidInput, NotFound
from spatial.models import Department, Service
from webmap.cli import Runtime, audit, cli, pass_runtime


def _intake(rt: Runtime, max_message_mb: int):
    from intake.email_intake import IntakeLimits, MailIntake

    if max_message_mb < 1 or max_message_mb > 200:
        raise click.BadParameter("must be between 1 and 200", param_hint="--max-message-mb")
    return MailIntake(
        rt.sessions(),
        public_base_url=rt.settings.public_base_url,
        media_dir=rt.settings.media_dir,
        mail_from=rt.settings.mail_from,
        limits=IntakeLimits(max_message_bytes=max_message_mb * 1024 * 1024),
    )


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


@cli.command("mail-intake")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=2525, show_default=True, type=click.IntRange(1, 65535))
@click.option("--max-message-mb", default=25, show_default=True, type=int)
@pass_runtime
def mail_intake(rt: Runtime, host: str, port: int, max_message_mb: int) -> None:
    """Run the SMTP server that turns mail to the city's addresses into requests."""
    from intake.email_intake import start_smtp_server

    intake = _intake(rt, max_message_mb)
    stop = _stop_on_signals()
    try:
        controller = start_smtp_server(intake, host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    except RuntimeError as exc:
        raise click.ClickException(
            f"cannot start the SMTP server on {host}:{port}: {exc}"
        ) from None
    click.echo(f"civicpin mail intake listening on {host}:{port} (Ctrl-C to stop)", err=True)
    try:
        stop.wait()
    finally:
        controller.stop()
    click.echo("mail intake stopped", err=True)


@cli.command("mail-poll")
@click.option(
    "--url",
    envvar="IMAP_URL",
    required=True,
    help="imap://user:password@host[:port] (imaps:// for TLS); default $IMAP_URL.",
)
@click.option("--folder", default="INBOX", show_default=True)
@click.option(
    "--address",
    "default_address",
    default=None,
    help="The intake address this mailbox receives, when the headers do not name one.",
)
@click.option("--every", type=click.IntRange(min=5), default=None, help="Poll every N seconds.")
@click.option("--max-message-mb", default=25, show_default=True, type=int)
@pass_runtime
def mail_poll(
    rt: Runtime,
    url: str,
    folder: str,
    default_address: str | None,
    every: int | None,
    max_message_mb: int,
) -> None:
    """Process the unseen mail of an IMAP mailbox and mark it seen."""
    from intake.email_intake import poll_imap

    intake = _intake(rt, max_message_mb)
    if default_address and not intake.accepts(default_address):
        raise NotFound(
            f"{default_address} is not an intake address: add it with 'civicpin mail address add'"
        )
    stop = _stop_on_signals() if every else threading.Event()
    while True:
        result = poll_imap(intake, url, folder=folder, default_address=default_address)
        summary = ", ".join(f"{n} {k}" for k, n in sorted(result.outcomes.items())) or "no new mail"
        click.echo(f"{summary}; {result.left_unseen} left for the next poll")
        if not every or stop.wait(every):
            break


class _EveryMinute:
    """The worker's minute tick: escalate what waits too long, and send the departments'
    digests whose hour has come (both claim their rows, so several workers do it once)."""

    SECONDS = 60.0

    def __init__(self, sessions, public_base_url: str):
        self.sessions = sessions
        self.base = public_base_url
        self.next = 0.0

    def __call__(self) -> None:
        import logging
        import time

        from routing.escalation import send_digests, sweep

        if time.monotonic() < self.next:
            return
        self.next = time.monotonic() + self.SECONDS
        try:
            with self.sessions.begin() as session:
                sweep(session, public_base_url=self.base)
            with self.sessions.begin() as session:
                send_digests(session, public_base_url=self.base)
        except Exception:  # noqa: BLE001 - escalation must never stop delivery
            logging.getLogger(__name__).exception("worker: escalation or digest failed")


@cli.command("worker")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit.")
@click.option("--batch", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--lease",
    default=120.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds a claimed message stays with this worker before others may retry it.",
)
@click.option("--poll-interval", default=2.0, show_default=True, type=click.FloatRange(0.1, 600))
@click.option("--max-attempts", default=8, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--backoff",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    help="Seconds before the first retry; doubles with every failure (at most an hour).",
)
@pass_runtime
def worker(
    rt: Runtime,
    once: bool,
    batch: int,
    lease: float,
    poll_interval: float,
    max_attempts: int,
    backoff: float,
) -> None:
    """Deliver the outbox over SMTP_URL (or to var/mail-spool/ without one), re-route
    requests after a rule set or zone layer is published, escalate waiting work and send
    the departments' morning digests (every minute)."""
    from notify.worker import WorkerConfig, make_transport, run_forever, run_once
    from routing.reroute_jobs import JobRunner, run_queued

    cfg = WorkerConfig(
        batch_size=batch,
        lease_seconds=lease,
        poll_interval=poll_interval,
        max_attempts=max_attempts,
        backoff_base=backoff,
    )
    sessions = rt.sessions()
    target = repr(make_transport(rt.settings, cfg))
    if once:
        _EveryMinute(sessions, rt.settings.public_base_url)()
        rerouted = run_queued(sessions, public_base_url=rt.settings.public_base_url)
        if rerouted:
            click.echo(f"{rerouted} re-route jobs run")
        result = run_once(sessions, rt.settings, cfg)
    else:
        click.echo(f"civicpin worker delivering to {target} (Ctrl-C to stop)", err=True)
        from records.retention import run_due

        media_dir = rt.settings.media_dir
        escalate = _EveryMinute(sessions, rt.settings.public_base_url)

        def daily() -> None:
            from routing.classify import retrain_due

            try:
                run_due(sessions, media_dir)
            finally:
                # Each city's category classifier, when it is missing or a week old.
                retrain_due(sessions)

        def step() -> bool:
            more = jobs.step()
            escalate()
            return more

        with JobRunner(sessions, public_base_url=rt.settings.public_base_url) as jobs:
            result = run_forever(
                sessions,
                rt.settings,
                cfg,
                stop=_stop_on_signals(),
                daily=daily,
                jobs=step,
            )
    line = f"{result.sent} sent, {result.retrying} to retry, {result.failed} failed"
    if result.errors:
        line += f" (last error: {result.errors[-1]})"
    click.echo(line)


# --- civicpin mail ... --------------------------------------------------------------------


@cli.group("mail")
def mail_group() -> None:
    """Set up e-mail: intake addresses, dispatch address, message templates."""


@mail_group.group("address")
def address_group() -> None:
    """The addresses whose mail becomes requests."""


@address_group.command("add")
@click.option("--city", "slug", required=True)
@click.argument("address")
@click.option("--category", "category", default=None, help="Category code of new requests.")
@click.option("--department", "department", default=None, help="Default department code.")
@pass_runtime
def address_add(
    rt: Runtime, slug: str, address: str, category: str | None, department: str | None
) -> None:
    """Accept mail to ADDRESS for a city, with a default category and/or department.

    A category's required questions take their default answers; those without one are
    left for the dispatcher ("needs answers").
    """
    from intake.mail_addresses import add_address, check_email, unanswered

    address = check_email(address, "address")
    if not (category or department):
        raise click.UsageError("give --category CODE or --department CODE (or both)")
    with session_scope(rt.sessions()) as session:
        city = get_city(session, slug)
        row = add_address(session, city, address, category, department)
        service = session.get(Service, row.service_id)
        dept = session.get(Department, row.department_id) if row.department_id else None
        what = {"category": service.code, "department": dept.code if dept else None}
        audit(session, "mail.address_add", "mail_address", address, city, **what)
        missing = unanswered(service)
    click.echo(
        f"{address}: mail becomes {service.code!r} requests of {city.slug}"
        + (f", department {dept.code}" if dept else "")
    )
    if missing:
        click.echo(
            f"required questions without a default ({', '.join(missing)}): such requests "
            "are marked 'needs answers' for the dispatcher"
        )


@address_group.command("list")
@click.option("--city", "slug", default=None)
@pass_runtime
def address_list(rt: Runtime, slug: str | None) -> None:
    """List the intake addresses."""
    from intake.mail_addresses import list_addresses

    with session_scope(rt.sessions()) as session:
        rows = list_addresses(session, get_city(session, slug) if slug else None)
    if not rows:
        click.echo("no intake addresses yet: add one with 'civicpin mail address add'")
    for row in rows:
        state = "" if row.active else " (inactive)"
        click.echo(
            f"{row.city}\t{row.address}\tcategory={row.category}"
            f"\tdepartment={row.department or '-'}{state}"
        )


@address_group.command("remove")
@click.argument("address")
@pass_runtime
def address_remove(rt: Runtime, address: str) -> None:
    """Stop accepting mail to ADDRESS."""
    from intake.mail_addresses import remove_address

    with session_scope(rt.sessions()) as session:
        row = remove_address(session, address)
        audit(session, "mail.address_remove", "mail_address", row.address, row.jurisdiction_id)
    click.echo(f"{row.address} removed: mail to it is now refused")


# The options of ``mail config``, by setting.
CONFIG_OPTIONS = {
    "dispatch_email": "dispatch-email",
    "from_address": "from",
    "reply_limit_per_hour": "reply-limit",
    "accept_limit_per_hour": "accept-limit",
    "address_reply_limit_per_hour": "address-reply-limit",
    "trusted_authserv_id": "trusted-authserv-id",
}


@mail_group.command("config")
@click.option("--city", "slug", required=True)
@click.option("--dispatch-email", default=None, help="Where dispatcher alerts go ('' = none).")
@click.option("--from", "from_address", default=None, help="From: of the city's mail.")
@click.option("--reply-limit", type=click.IntRange(0, 1000), default=None)
@click.option("--accept-limit", type=click.IntRange(1, 100000), default=None)
@click.option(
    "--address-reply-limit",
    type=click.IntRange(0, 100000),
    default=None,
    help="Auto-replies per hour from each intake address, whoever the senders.",
)
@click.option(
    "--trusted-authserv-id",
    default=None,
    help="The authserv-id of the city's mail gateway, whose Authentication-Results are "
    "believed ('' = none: no mail counts as authenticated).",
)
@pass_runtime
def mail_config_cmd(
    rt: Runtime,
    slug: str,
    dispatch_email: str | None,
    from_address: str | None,
    reply_limit: int | None,
    accept_limit: int | None,
    address_reply_limit: int | None,
    trusted_authserv_id: str | None,
) -> None:
    """Show or change a city's mail settings."""
    from intake.mail_addresses import update_config

    given = {
        "dispatch_email": dispatch_email,
        "from_address": from_address,
        "reply_limit_per_hour": reply_limit,
        "accept_limit_per_hour": accept_limit,
        "address_reply_limit_per_hour": address_reply_limit,
        "trusted_authserv_id": trusted_authserv_id,
    }
    values = {k: v for k, v in given.items() if v is not None}
    with session_scope(rt.sessions()) as session:
        city = get_city(session, slug)
        cfg, changed = update_config(session, city, values, CONFIG_OPTIONS)
        if changed:
            audit(session, "mail.config", "mail_config", city.slug, city, **changed)
        gateway = (
            f"Authentication-Results trusted from {cfg.trusted_authserv_id}"
            if cfg.trusted_authserv_id
            else "no trusted mail gateway (no mail counts as authenticated)"
        )
        click.echo(
            f"{city.slug}: dispatch alerts to {cfg.dispatch_email or '(nobody)'}; "
            f"from {cfg.from_address or rt.settings.mail_from}; auto-replies up to "
            f"{cfg.reply_limit_per_hour}/h per sender and "
            f"{cfg.address_reply_limit_per_hour}/h per intake address, mail accepted up to "
            f"{cfg.accept_limit_per_hour}/h per sender; {gateway}"
        )


@mail_group.group("template")
def template_group() -> None:
    """The texts of the messages civicpin sends, per city."""


@template_group.command("list")
@click.option("--city", "slug", required=True)
@pass_runtime
def template_list(rt: Runtime, slug: str) -> None:
    """List the message kinds and whether the city changed them."""
    from notify import templates

    with session_scope(rt.sessions()) as session:
        city = get_city(session, slug)
        for kind, default in templates.DEFAULTS.items():
            _s, _b, custom = templates.current(session, city.id, kind)
            click.echo(f"{kind:<20} {'custom ' if custom else 'default'}  {default.title}")


@template_group.command("show")
@click.option("--city", "slug", required=True)
@click.argument("kind")
@pass_runtime
def template_show(rt: Runtime, slug: str, kind: str) -> None:
    """Print a template (subject line, blank line, body) and its placeholders."""
    from notify import templates

    if kind not in templates.DEFAULTS:
        raise InvalidInput(
            f"unknown message kind {kind!r} (one of {', '.join(templates.DEFAULTS)})"
        )
    with session_scope(rt.sessions()) as session:
        subject, body, _ = templates.current(session, get_city(session, slug).id, kind)
    click.echo(f"{subject}\n\n{body}")
    names = ", ".join("$" + v for v in templates.DEFAULTS[kind].variables)
    click.echo(f"# placeholders: {names}", err=True)


@template_group.command("set")
@click.option("--city", "slug", required=True)
@click.argument("kind")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_runtime
def template_set(rt: Runtime, slug: str, kind: str, file: Path) -> None:
    """Replace a template from FILE: first line the subject, then a blank line, the body."""
    from notify import templates

    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file} is not UTF-8 text") from None
    subject, _, body = text.replace("\r\n", "\n").partition("\n")
    with session_scope(rt.sessions()) as session:
        city = get_city(session, slug)
        templates.save_override(session, city, kind, subject, body, "cli")
        audit(session, "mail.template_set", "message_template", kind, city, subject=subject)
    click.echo(f"{kind}: saved for {slug}")


@template_group.command("reset")
@click.option("--city", "slug", required=True)
@click.argument("kind")
@pass_runtime
def template_reset(rt: Runtime, slug: str, kind: str) -> None:
    """Go back to the default text of a template."""
    from notify import templates

    with session_scope(rt.sessions()) as session:
        city = get_city(session, slug)
        changed = templates.reset_override(session, city, kind)
        if changed:
            audit(session, "mail.template_reset", "message_template", kind, city)
    click.echo(f"{kind}: {'back to the default' if changed else 'was already the default'}")


@mail_group.command("outbox")
@pass_runtime
def outbox_cmd(rt: Runtime) -> None:
    """Count outbox messages by status."""
    from notify.worker import outbox_counts

    with session_scope(rt.sessions()) as session:
        counts = outbox_counts(session)
    for status in ("pending", "sending", "sent", "failed"):
        click.echo(f"{status:<8} {counts.get(status, 0)}")
