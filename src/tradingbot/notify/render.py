"""Notification content: Jinja2 templates rendered into a multipart/alternative message.

Each kind has three templates in ``templates/``: ``<kind>.subject.txt`` (one line),
``<kind>.txt`` (the plain-text part) and ``<kind>.html`` (the HTML part, autoescaped).
A file of the same name in ``TRADINGBOT_HOME/templates/`` overrides the packaged one; an
override that fails to render is logged and the packaged template is used instead, so a
typo in an override never stops an alert.

Headers: the subject is reduced to one line of printable characters (CR, LF and every
other control character become spaces) and addresses were validated when configuration
loaded, so no value can inject a header. The message is built with
:class:`email.message.EmailMessage` under the SMTP policy: CRLF line ends, non-ASCII
headers as encoded words, both parts quoted-printable, so the result is pure ASCII.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2
import structlog

log = structlog.get_logger(__name__)

TEMPLATE_PACKAGE = "tradingbot.notify"
KINDS = ("trade_execution", "alert", "daily_summary", "recovery_report", "digest")
SUBJECT_PREFIX = "[trading-bot]"
MAX_SUBJECT_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SPACES = re.compile(r"\s{2,}")


def clean_header(value: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """One line of printable text: control characters (CR/LF above all) become spaces."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _missing(value: Any) -> bool:
    return value is None or value == "" or isinstance(value, jinja2.Undefined)


def _money(value: Any, signed: bool = False) -> str:
    if _missing(value):
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:+,.2f}" if signed else f"{number:,.2f}"


def _qty(value: Any) -> str:
    if _missing(value):
        return "-"
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def _when(value: Any) -> str:
    if _missing(value):
        return "-"
    moment: datetime
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
    else:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: Any) -> str:
    if _missing(seconds):
        return "-"
    try:
        total = int(float(seconds))
    except (TypeError, ValueError):
        return "-"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours or days:
        parts.append(f"{hours}h")
    if minutes or hours or days:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _environment(loader: jinja2.BaseLoader) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("html",), default_for_string=False, default=False
        ),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["money"] = _money
    env.filters["qty"] = _qty
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    return env


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered notification: subject line, plain-text part and HTML part."""

    subject: str
    text: str
    html: str


class Renderer:
    """Renders notifications from the packaged templates, or the operator's overrides."""

    def __init__(self, overrides: Path | None = None) -> None:
        self._builtin = _environment(jinja2.PackageLoader(TEMPLATE_PACKAGE, "templates"))
        self._overrides = overrides
        self._override_env: jinja2.Environment | None = None
        if overrides is not None:
            self._override_env = _environment(jinja2.FileSystemLoader(str(overrides)))

    def render(self, kind: str, context: Mapping[str, Any]) -> Rendered:
        """Render the three templates of ``kind``; ``jinja2.TemplateError`` if they fail."""
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r}; expected one of {KINDS}")
        values = {"bot": {"host": socket.gethostname()}, **context}
        subject = self._one(f"{kind}.subject.txt", values)
        return Rendered(
            subject=clean_header(subject),
            text=self._one(f"{kind}.txt", values),
            html=self._one(f"{kind}.html", values),
        )

    def subject(self, kind: str, context: Mapping[str, Any]) -> str:
        """Only the subject line of ``kind`` (what the outbox row shows before sending)."""
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r}; expected one of {KINDS}")
        values = {"bot": {"host": socket.gethostname()}, **context}
        return clean_header(self._one(f"{kind}.subject.txt", values))

    def _one(self, name: str, values: Mapping[str, Any]) -> str:
        overrides = self._overrides
        env = self._override_env
        if env is not None and overrides is not None and (overrides / name).is_file():
            try:
                return env.get_template(name).render(values)
            except jinja2.TemplateError as exc:
                log.error(
                    "notify_template_override_failed",
                    template=str(overrides / name),
                    error=str(exc),
                )
        return self._builtin.get_template(name).render(values)


def domain_of(address: str) -> str:
    """The domain of a (validated) ``addr@host`` or ``Name <addr@host>``."""
    _, addr = email.utils.parseaddr(address)
    return addr.rpartition("@")[2] or "localhost"


def message_id(token: str, sender: str) -> str:
    """A stable RFC 5322 Message-ID: ``<token@sender-domain>``."""
    safe = re.sub(r"[^A-Za-z0-9.\-_+]", "-", token)
    return f"<{safe}@{domain_of(sender)}>"


def build_message(
    rendered: Rendered,
    *,
    sender: str,
    recipients: tuple[str, ...],
    message_id: str,
    date: datetime,
    kind: str,
    severity: str,
    event_id: str | None = None,
) -> EmailMessage:
    """The multipart/alternative message (text first, HTML preferred by mail readers).

    ``event_id`` (the event the mail was made from) goes into ``X-Trading-Bot-Event``, so
    a mail filter, or a test counting mails per event, can tell which event it reports.
    """
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = clean_header(rendered.subject)
    message["Date"] = email.utils.format_datetime(date.astimezone(UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message["X-Trading-Bot-Kind"] = clean_header(kind, 64)
    message["X-Trading-Bot-Severity"] = clean_header(severity, 16)
    if event_id is not None:
        message["X-Trading-Bot-Event"] = clean_header(event_id, 64)
    message.set_content(rendered.text, cte="quoted-printable")
    message.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return message


def to_wire(message: EmailMessage) -> str:
    """The message as stored in the outbox and sent: ASCII text with CRLF line ends."""
    return message.as_bytes(policy=email.policy.SMTP).decode("ascii")
