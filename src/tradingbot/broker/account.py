"""The account's positions and P&L as the gateway streams them, kept in :class:`BrokerStatus`.

After every sync the broker seeds the positions from the client (``ib_async`` asked the
gateway for them while connecting), follows ``positionEvent`` and subscribes the
account's P&L (``reqPnL``); the positions' valuations and the equity (for the
dashboard) are :mod:`tradingbot.broker.valuations`. Each P&L report is stored in the
status (read-only for the dashboard) and told to the ``pnl_sink`` (the daily loss
limit's monitor), if any. So what the pre-trade checks and the loss limit read comes
from the broker, never from memory of an earlier run.

Everything here runs on the client's loop thread.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from ib_async import IB

from tradingbot.broker.answers import AccountPnL
from tradingbot.broker.parsing import number
from tradingbot.broker.status import BrokerStatus
from tradingbot.broker.valuations import follow_valuations, renew_position_pnl
from tradingbot.tellable import Tellable

log = structlog.get_logger("tradingbot.broker")


def account_of(ib: IB, configured: str | None) -> str:
    """The account to follow: the configured one, else the only managed one ("" if several)."""
    if configured:
        return configured
    accounts = ib.managedAccounts()
    return accounts[0] if len(accounts) == 1 else ""


def follow_account(
    ib: IB, configured: str | None, status: BrokerStatus, pnl_sink: Tellable | None
) -> str:
    """Seed the positions, follow their changes and subscribe the P&L; return the account.

    Without an account to follow (several managed accounts and none configured) only
    the positions of every account are followed: the P&L, and so the daily loss limit,
    needs ``TRADINGBOT_IB_ACCOUNT`` then (logged as a warning).
    """
    account = account_of(ib, configured)
    status.set_positions(
        {p.contract.symbol: float(p.position) for p in ib.positions(account)},
    )

    def on_position(p: Any) -> None:
        if not account or p.account == account:
            status.set_position(p.contract.symbol, float(p.position))

    def on_pnl(p: Any) -> None:
        daily = number(p.dailyPnL)
        if p.account != account or daily is None:
            return  # not ours, or not computed yet
        pnl = AccountPnL(
            account=account,
            daily=daily,
            unrealized=number(p.unrealizedPnL),
            realized=number(p.realizedPnL),
            received_at=datetime.now(UTC),
        )
        status.set_pnl(pnl)
        if pnl_sink is not None:
            pnl_sink.tell(pnl)

    ib.positionEvent += on_position
    ib.pnlEvent += on_pnl
    follow_valuations(ib, account, status)
    if account:
        ib.reqPnL(account)
    else:
        log.warning(
            "broker_pnl_not_followed",
            why="several managed accounts and TRADINGBOT_IB_ACCOUNT unset",
            accounts=ib.managedAccounts(),
        )
    return account


def renew_pnl(ib: IB, account: str) -> None:
    """After 1101 (data lost): the gateway dropped the P&L subscriptions; ask again."""
    if not account:
        return
    if ib.pnl(account):
        ib.cancelPnL(account)
    ib.reqPnL(account)
    renew_position_pnl(ib, account)
