"""The ``trading_state`` table: the kill switch of each account, durable across restarts.

A paused bot restarts paused: the state is read at start before anything can trade.
Each change bumps ``version``; :meth:`TradingStateRepository.change` writes only when
the stored version is the one the caller read, so two writers can never overwrite each
other's switch unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from tradingbot.storage.errors import StorageError
from tradingbot.storage.models import TRADING_MODES, TradingStateRow
from tradingbot.storage.timestamps import require_utc
from tradingbot.storage.transactions import Transactions


class StaleTradingState(StorageError):
    """The stored state changed since it was read (another writer switched it)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingStateRecord:
    """One account's switch as stored."""

    account: str
    mode: str
    reason: str
    changed_by: str
    since: datetime
    version: int


class TradingStateRepository:
    """Reads and writes the kill switch; every method is one short transaction."""

    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    def get(self, account: str) -> TradingStateRecord | None:
        """The stored state of ``account`` (``None``: never switched, so running)."""
        with self._tx.read() as session:
            row = session.scalars(
                select(TradingStateRow).where(TradingStateRow.account == account)
            ).one_or_none()
            return None if row is None else _to_record(row)

    def change(
        self,
        account: str,
        *,
        mode: str,
        reason: str,
        changed_by: str,
        since: datetime,
        expected_version: int,
    ) -> TradingStateRecord:
        """Store a new state if the stored version is ``expected_version`` (0: no row yet).

        Raises :class:`StaleTradingState` when another writer changed it meanwhile.
        """
        if mode not in TRADING_MODES:
            raise ValueError(f"mode must be one of {', '.join(TRADING_MODES)}, got {mode!r}")
        since = require_utc(since, "since")
        version = expected_version + 1
        with self._tx.write() as session:
            if expected_version == 0:
                exists = session.get(TradingStateRow, account)
                if exists is not None:
                    raise StaleTradingState(f"trading state of {account!r} changed meanwhile")
                session.add(
                    TradingStateRow(
                        account=account,
                        mode=mode,
                        reason=reason,
                        changed_by=changed_by,
                        since=since,
                        version=version,
                    )
                )
            else:
                result = session.execute(
                    update(TradingStateRow)
                    .where(
                        TradingStateRow.account == account,
                        TradingStateRow.version == expected_version,
                    )
                    .values(
                        mode=mode,
                        reason=reason,
                        changed_by=changed_by,
                        since=since,
                        version=version,
                    )
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise StaleTradingState(f"trading state of {account!r} changed meanwhile")
        return TradingStateRecord(
            account=account,
            mode=mode,
            reason=reason,
            changed_by=changed_by,
            since=since,
            version=version,
        )


def _to_record(row: TradingStateRow) -> TradingStateRecord:
    return TradingStateRecord(
        account=row.account,
        mode=row.mode,
        reason=row.reason,
        changed_by=row.changed_by,
        since=row.since,
        version=row.version,
    )
