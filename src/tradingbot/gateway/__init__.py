"""A TWS API gateway simulator that the unmodified ib_async client accepts.

``GatewaySimulator`` is an asyncio TCP server on loopback; ``SimulatorThread`` runs one
on its own loop in a background thread. The ``Brokerage`` inside holds accounts,
positions, orders and executions across client sessions.

Error codes the simulator sends (``[4, 2, reqId, code, text, ""]``), as the real gateway
(the full request table is in docs/gateway.md):

- 200 "No security definition has been found for the request": an implausible symbol,
  an unknown conId, a currency other than USD or a non-US exchange, in ``placeOrder``,
  ``reqMktData``, ``reqContractDetails``, history and P&L requests; ib_async cancels the
  Trade (status Cancelled, ``trade.log[-1].errorCode == 200``).
- 201 "Order rejected - reason:...": negative quantity, unsupported order type or time
  in force, a missing limit or stop price, unknown account or parent, an ``ocaType``
  other than 1-3, and the ``reject_next_order`` fault; ib_async cancels the Trade.
- 434 "The order size cannot be zero.": ib_async records it as a validation warning.
- 103 "Duplicate order id": an order id this client already used for a finished order.
- 162 "Historical Market Data Service error message:...": a history request it cannot
  serve (bar size, duration, whatToShow).
- 202 "Order Canceled - reason:": after the Cancelled orderStatus of any cancel.
- 322 "Error processing request...": a request the simulator does not implement.
- 10147 "OrderId N that needs to be cancelled is not found.": cancel of an unknown or
  finished order.
- 326 "Unable to connect as the client id is already in use...": then the socket closes.
- 1100 / 1101 / 1102: gateway-to-IB connectivity lost / restored (data lost / maintained).
- 2104 / 2106 / 2158: the farm-connection-OK notices sent at connect (warnings).

ib_async logs every one of these (except warnings) at ERROR on ``ib_async.wrapper``.
"""

from .brokerage import (
    Accepted,
    Account,
    Brokerage,
    CommissionSchedule,
    Execution,
    Instrument,
    OrderRequest,
    Position,
    Rejection,
    SimOrder,
    StatusChange,
    WhatIf,
)
from .calendar import AlwaysOpen, ExchangeSessions, SessionCalendar, calendar
from .faults import apply_command, start_control_server
from .history import PricePath
from .prices import PriceModel, Quote
from .server import GatewaySimulator, Session, seconds_until
from .standalone import add_arguments, build_simulator, main, run_command, serve
from .thread import SimulatorThread

__all__ = [
    "Accepted",
    "Account",
    "AlwaysOpen",
    "Brokerage",
    "CommissionSchedule",
    "ExchangeSessions",
    "Execution",
    "GatewaySimulator",
    "Instrument",
    "OrderRequest",
    "Position",
    "PriceModel",
    "PricePath",
    "Quote",
    "Rejection",
    "Session",
    "SessionCalendar",
    "SimOrder",
    "SimulatorThread",
    "StatusChange",
    "WhatIf",
    "add_arguments",
    "apply_command",
    "build_simulator",
    "calendar",
    "main",
    "run_command",
    "seconds_until",
    "serve",
    "start_control_server",
]
