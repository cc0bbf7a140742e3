"""What follows the crashes found at a start: their claims freed, their reports settled
and mailed.

At start, :func:`release_dead_claims` frees the outbox claims of crashed runs whose
process is gone, so their mail goes out now. Then, after each reconciliation,
:class:`CrashFollowUp` gives this start's crash reports the discrepancy list (the
``recovery_events`` row) and mails the recovery report once per crash (its Message-ID
derives from the crash); the reconciliation that passes, or the operator's acceptance,
settles them (``reconciled`` or ``accepted``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from tradingbot.events.model import Severity
from tradingbot.notify import RECOVERY_REPORT, Notifier
from tradingbot.recovery.crash import CrashReport, process_is_gone
from tradingbot.storage import Database, ReconciliationRecord, StorageError

log = structlog.get_logger(__name__)

# What reconciliation did about each kind of discrepancy, as the report names it.
_ACTIONS = {
    "missing_fill": "imported",
    "external_fill": "imported",
    "order_closed": "end recorded",
}


def release_dead_claims(crashes: list[CrashReport], notifier: Notifier) -> None:
    """Free the outbox claims of the crashed runs whose process is gone, so their mail
    goes out now. A crashed run on another host (or still running here, having lost its
    lock) keeps its claims until they expire: it may still be sending.
    """
    dead = sorted(
        {report.recovery.run_id for report in crashes if process_is_gone(report.recovery)}
    )
    if not dead:
        return
    try:
        freed = notifier.repository.release_claims_of(dead, datetime.now(UTC))
    except StorageError as exc:  # the claims simply expire
        log.warning("outbox_claims_not_released", error=str(exc), runs=dead)
        return
    if freed:
        log.info("outbox_claims_released", rows=freed, runs=dead)


def recovery_report(report: CrashReport, record: ReconciliationRecord) -> dict[str, Any]:
    """The recovery-report e-mail's content: the crashed run, the downtime and what the
    reconciliation found and did."""
    r = report.recovery
    accepted = record.status == "accepted"
    actions = {**_ACTIONS, "orphaned_order": "closed in our books" if accepted else "blocked"}
    discrepancies = [
        {
            "kind": d.get("kind"),
            "symbol": d.get("symbol") or d.get("order_ref") or "",
            "ours": d.get("ours"),
            "broker": d.get("broker"),
            "action": actions.get(str(d.get("kind")))
            or (("accepted" if accepted else "blocked") if d.get("blocking") else "reported"),
        }
        for d in record.discrepancies
    ]
    outcome = {
        "clean": "resumed",
        "accepted": f"resumed (accepted by {record.accepted_by})",
    }.get(record.status, "blocked until an operator accepts (reconcile accept)")
    stale = "heartbeat stale" if report.heartbeat_stale else "no clean stop"
    return {
        "reason": f"a crash ({stale})",
        "detected_at": r.detected_at.isoformat(),
        "downtime_s": r.downtime_s,
        "outcome": outcome,
        "previous_run": {
            "pid": r.pid,
            "host": r.host,
            "version": r.version,
            "started_at": r.started_at.isoformat(),
            "last_heartbeat": r.last_heartbeat.isoformat(),
        },
        "discrepancies": discrepancies,
        "notes": [f"reconciliation {record.id} ({record.status}, {record.duration_s:.2f} s)"],
    }


class CrashFollowUp:
    """Settles this start's crash reports with the reconciliations that follow them."""

    def __init__(
        self, database: Database, notifier: Notifier | None, crashes: list[CrashReport]
    ) -> None:
        self._database = database
        self._notifier = notifier
        self._crashes = list(crashes)
        self._settled = False

    def on_reconciled(self, record: ReconciliationRecord) -> None:
        """After each reconciliation or acceptance (reconciler thread): until one passes,
        each crash gets its discrepancy list and its report is mailed; the one that
        passes, or the operator's acceptance, settles them."""
        if self._settled or not self._crashes:
            return
        status = {"clean": "reconciled", "accepted": "accepted"}.get(record.status)
        self._settled = status is not None
        for report in self._crashes:
            try:
                self._database.recovery.update(
                    report.recovery.id,
                    at=datetime.now(UTC),
                    status=status,
                    discrepancies=list(record.discrepancies),
                )
            except StorageError as exc:
                log.error("recovery_event_not_updated", error=str(exc), id=report.recovery.id)
            self._mail(report, record)

    def _mail(self, report: CrashReport, record: ReconciliationRecord) -> None:
        """The recovery-report e-mail of one crash (once: its Message-ID derives from it)."""
        if self._notifier is None:
            return
        severity = Severity.WARNING if record.status == "clean" else Severity.ERROR
        try:
            self._notifier.enqueue(
                RECOVERY_REPORT,
                recovery_report(report, record),
                severity=severity,
                token=f"recovery:{report.recovery.id}",
            )
        except (StorageError, ValueError) as exc:
            log.error("recovery_report_not_queued", error=str(exc), id=report.recovery.id)
