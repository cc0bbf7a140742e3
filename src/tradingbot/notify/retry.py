"""Which delivery failures are retried, and when: tenacity's policy, durable waits.

The policy is tenacity's (``retry_if_exception``, ``stop_after_attempt``,
``wait_fixed + wait_random``, ``wait_exponential``), but its waits are not slept: each
wait becomes the row's ``next_attempt_at`` in the outbox. A crash during a wait loses
nothing, no thread is blocked for the wait, and an injected clock drives it in tests.

Transient (retried): 4xx replies, disconnects, refused or failed connections, timeouts,
TLS errors. Permanent (failed at once): 5xx replies and protocol errors such as a
server without the AUTH or STARTTLS the configuration asks for. ``smtplib.SMTPException``
is an ``OSError``, so the SMTP exceptions are classified before the ``OSError`` rule.
"""

from __future__ import annotations

import smtplib

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_fixed,
    wait_random,
)


def is_transient(error: BaseException) -> bool:
    """True for a failure that may go away by itself (see the module docstring)."""
    if isinstance(error, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    if isinstance(error, smtplib.SMTPException):
        return False  # no AUTH method in common, STARTTLS not offered, ...
    return isinstance(error, OSError)  # refused, unreachable, timeout, TLS


class RetryPolicy:
    """When to try a mail again after a failed attempt; ``None`` means never (permanent)."""

    def __init__(
        self,
        attempts: int = 3,
        interval_s: float = 5.0,
        jitter_s: float = 1.0,
        max_backoff_s: float = 300.0,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.attempts = attempts
        self._burst = Retrying(
            retry=retry_if_exception(is_transient),
            stop=stop_after_attempt(attempts),
            wait=wait_fixed(interval_s) + wait_random(0, jitter_s),
        )
        # After the burst: an outage, waited out with growing pauses (never given up).
        self._outage_wait = wait_exponential(
            multiplier=max(interval_s, 1.0), min=interval_s, max=max_backoff_s
        ) + wait_random(0, jitter_s)

    def delay_after(self, attempt_number: int, error: BaseException) -> float | None:
        """Seconds until attempt ``attempt_number + 1``; ``None`` if ``error`` is permanent."""
        state = RetryCallState(self._burst, None, (), {})
        state.attempt_number = attempt_number
        state.set_exception((type(error), error, error.__traceback__))
        if not self._burst.retry(state):
            return None
        if not self._burst.stop(state):
            return float(self._burst.wait(state))
        state.attempt_number = attempt_number - self.attempts + 1
        return float(self._outage_wait(state))

    def in_burst(self, attempt_number: int) -> bool:
        """True while the quick retries are not used up."""
        return attempt_number < self.attempts
