"""A real SMTP server on loopback for the notifier tests (aiosmtpd), with failure modes.

:class:`SmtpServer` runs an aiosmtpd ``Controller`` on a fixed free port so it can be
stopped (``down``: connections are refused) and started again on the same port. It
records every message accepted and counts every DATA attempt by Message-ID, so a test
can assert "delivered exactly once" at the server. Modes:

* plain (no TLS), optionally with AUTH (``auth_require_tls=False``);
* STARTTLS (required) or implicit TLS, with a self-signed certificate made by the
  ``openssl`` command line (:func:`self_signed_cert`);
* ``fail_next(n, reply)``: the next ``n`` DATA commands get ``reply`` (4xx or 5xx);
  ``fail_always(reply)`` until ``heal()``.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import ssl
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from support.ports import free_port

# aiosmtpd warns about AUTH without STARTTLS (even under implicit TLS, which it cannot
# tell apart); tests of those modes mark themselves with this filter.
AUTH_WITHOUT_STARTTLS = "ignore:Requiring AUTH while not requiring TLS:UserWarning"

TEMPFAIL = "451 4.3.0 Try again later"
REJECT = "550 5.7.1 Message rejected"


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1/localhost and its key, made by ``openssl`` (PEM files)."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - openssl is part of the test image
        raise RuntimeError("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@dataclass(frozen=True, slots=True)
class Received:
    """One message the server accepted."""

    message_id: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    authenticated_as: str | None
    tls: bool


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else raw.encode()
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        received = Received(
            message_id=str(message["Message-ID"]),
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=data,
            message=message,
            authenticated_as=None if login is None else login.decode(),
            tls=session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
        )
        return self._server._data(received)


class SmtpServer:
    """aiosmtpd on 127.0.0.1:<port>; see the module docstring."""

    def __init__(
        self,
        *,
        tls: str = "none",
        cert: tuple[Path, Path] | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if tls != "none" and cert is None:
            raise ValueError("TLS needs a certificate (self_signed_cert)")
        self.tls = tls
        self.cert = cert
        self.credentials = credentials
        self.port = free_port()
        self._lock = threading.Condition()
        self._controller: Controller | None = None
        self._failures: list[str] = []
        self._fail_always: str | None = None
        self.received: list[Received] = []
        self.data_attempts: Counter[str] = Counter()
        self.auth_failures = 0

    # -- lifecycle ------------------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.cert is not None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        return context

    def start(self) -> Self:
        """Listen (again) on :attr:`port`."""
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = self.tls == "starttls"
        if self.tls == "starttls":
            kwargs["tls_context"] = self._ssl_context()
            kwargs["require_starttls"] = True
        elif self.tls == "tls":
            kwargs["ssl_context"] = self._ssl_context()
        deadline = time.monotonic() + 10
        while True:
            controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)
            try:
                controller.start()
            except (OSError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the port is still being released by the last stop
                continue
            break
        self._controller = controller
        return self

    def stop(self) -> None:
        """Go down: new connections are refused until :meth:`start`."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- failure modes --------------------------------------------------------------------

    def fail_next(self, count: int, reply: str = TEMPFAIL) -> None:
        """Answer the next ``count`` DATA commands with ``reply``."""
        with self._lock:
            self._failures.extend([reply] * count)

    def fail_always(self, reply: str = TEMPFAIL) -> None:
        with self._lock:
            self._fail_always = reply

    def heal(self) -> None:
        with self._lock:
            self._failures.clear()
            self._fail_always = None

    # -- observation ----------------------------------------------------------------------

    def _data(self, received: Received) -> str:
        with self._lock:
            self.data_attempts[received.message_id] += 1
            if self._failures:
                return self._failures.pop(0)
            if self._fail_always is not None:
                return self._fail_always
            self.received.append(received)
            self._lock.notify_all()
            return "250 2.0.0 OK"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.credentials is not None
        user, password = self.credentials
        if (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        ):
            return AuthResult(success=True, auth_data=auth_data)
        with self._lock:
            self.auth_failures += 1
        return AuthResult(success=False, handled=False)

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def message_ids(self) -> Counter[str]:
        """How many times each Message-ID was accepted."""
        with self._lock:
            return Counter(r.message_id for r in self.received)

    def event_ids(self) -> Counter[str]:
        """How many mails were accepted for each event (``X-Trading-Bot-Event``).

        Unlike :meth:`message_ids` this also counts a duplicate sent under a new
        Message-ID: what a reader would see twice.
        """
        with self._lock:
            return Counter(
                str(r.message["X-Trading-Bot-Event"])
                for r in self.received
                if r.message["X-Trading-Bot-Event"] is not None
            )

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        """Wait until at least ``count`` messages were accepted; return them."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout_s:g} s: {len(self.received)} of {count} "
                        "messages arrived"
                    )
                self._lock.wait(remaining)
            return list(self.received)
