"""Where a rendered message goes: an SMTP server, or ``.eml`` files in the outbox folder.

A :class:`Transport` opens a :class:`Session` for one delivery pass (one SMTP
connection for every due mail); the session's :meth:`~Session.send` returns once the
server accepted the DATA (or the file is renamed into place) and raises otherwise.
Every blocking call is bounded by the SMTP timeout.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Protocol

import structlog

from tradingbot.notify.settings import SmtpSettings

log = structlog.get_logger(__name__)


class Session(Protocol):
    """One delivery pass; close it when done."""

    def send(self, message_id: str, sender: str, recipients: tuple[str, ...], data: str) -> None:
        """Deliver one message; raise (smtplib exceptions / ``OSError``) if not accepted."""

    def close(self) -> None: ...


class Transport(Protocol):
    """Opens delivery sessions."""

    @property
    def name(self) -> str: ...

    def open(self) -> Session: ...


class ConnectFailed(OSError):
    """The SMTP conversation could not be set up (connect, TLS, EHLO or AUTH).

    The server refused the *connection*, not a message: the mail is kept and retried
    (an ``OSError``, so transient) and ``cause`` says why, e.g. a wrong password.
    """

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


def envelope_address(mailbox: str) -> str:
    """The bare ``addr@host`` of ``Name <addr@host>`` (for MAIL FROM / RCPT TO)."""
    match = re.search(r"<([^<>]+)>\s*$", mailbox)
    return match.group(1) if match else mailbox.strip()


class SmtpSession:
    """One SMTP connection, opened lazily at the first send (TLS and AUTH as configured)."""

    def __init__(self, settings: SmtpSettings, context: ssl.SSLContext | None) -> None:
        self._settings = settings
        self._context = context
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        smtp: smtplib.SMTP
        try:
            if s.tls == "tls":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s, context=self._context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
        except OSError as exc:
            raise ConnectFailed(exc) from exc
        try:
            smtp.ehlo()
            if s.tls == "starttls":
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if s.username is not None:
                smtp.login(s.username, s.password or "")
        except OSError as exc:  # smtplib's exceptions included
            _quietly_close(smtp)
            raise ConnectFailed(exc) from exc
        except BaseException:
            _quietly_close(smtp)
            raise
        return smtp

    def send(self, message_id: str, sender: str, recipients: tuple[str, ...], data: str) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        smtp = self._smtp
        try:
            refused = smtp.sendmail(
                envelope_address(sender),
                [envelope_address(r) for r in recipients],
                data.encode("ascii"),
            )
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
            # A reply about this message: smtplib reset the transaction, so the connection
            # is reused -- unless the reply was 421 (the server closes the channel) and
            # smtplib closed it: the next mail then opens a new one instead of failing.
            if smtp.sock is None:
                self._drop()
            raise
        except OSError:
            self._drop()  # the connection is gone or in an unknown state
            raise
        if refused:
            # Accepted for at least one recipient: delivered, and never sent again.
            log.warning("mail_recipients_refused", message_id=message_id, refused=str(refused))

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            _quietly_close(smtp)

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            _quietly_close(smtp)


def _quietly_close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):  # closing a broken connection: nothing to save
        smtp.close()


class SmtpTransport:
    """Delivery through an SMTP server (smtplib; STARTTLS or implicit TLS; AUTH)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._context: ssl.SSLContext | None = None
        if settings.tls != "none":
            cafile = None if settings.ca_file is None else os.fspath(settings.ca_file)
            self._context = ssl.create_default_context(cafile=cafile)

    @property
    def name(self) -> str:
        return f"smtp://{self.settings.host}:{self.settings.port}"

    def open(self) -> SmtpSession:
        return SmtpSession(self.settings, self._context)


def eml_name(message_id: str) -> str:
    """The file name of a message in the outbox folder: its Message-ID, made path-safe."""
    token = message_id.strip().strip("<>")
    return re.sub(r"[^A-Za-z0-9.@_+-]", "_", token) + ".eml"


#: A message being written is named ``.tmp-XXXX.eml.part``: never ``*.eml`` until it is whole,
#: so nothing reading the outbox (an operator's script, a mail pickup) sees half a message,
#: not even one left behind by a ``kill -9`` in the middle of a write.
PARTIAL_SUFFIX = ".eml.part"


class EmlSession:
    """Writes each message atomically: a temporary file, fsync, then rename into place."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def send(self, message_id: str, sender: str, recipients: tuple[str, ...], data: str) -> None:
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self._folder / eml_name(message_id)
        fd, temp = tempfile.mkstemp(dir=self._folder, prefix=".tmp-", suffix=PARTIAL_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data.encode("ascii"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):  # never written
                os.unlink(temp)
            raise
        directory = os.open(self._folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def close(self) -> None:
        return None


class EmlTransport:
    """Delivery into ``TRADINGBOT_HOME/outbox/`` when no SMTP server is configured."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def name(self) -> str:
        return f"eml:{self.folder}"

    def open(self) -> EmlSession:
        return EmlSession(self.folder)


class _Closing:
    """``with closing_session(transport) as session:`` (closes it whatever happens)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def __enter__(self) -> Session:
        return self.session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.close()


def opened(transport: Transport) -> _Closing:
    """Open a session of ``transport`` for a ``with`` block."""
    return _Closing(transport.open())
