"""A TWS API gateway simulator that the unmodified ib_async client accepts.

``GatewaySimulator`` is an asyncio TCP server on loopback; ``SimulatorThread`` runs one
on its own loop in a background thread. The ``Brokerage`` inside holds accounts,
positions, orders and executions across client sessions.

Error codes the simulator sends (``[4, 2, reqId, code, text, ""]``), as the real gateway:

- 200 "No security definition has been found for the request": unknown symbol or
  conId in ``placeOrder``, ``reqMktData`` or ``reqContractDetails``; ib_async cancels
  the Trade (status Cancelled, ``trade.log[-1].errorCode == 200``).
- 201 "Order rejected - reason:...": non-positive quantity, unsupported order type
  (only MKT and LMT), LMT without a positive price, unknown account, and the
  ``reject_next_order`` fault; ib_async cancels the Trade.
- 103 "Duplicate order id": an order id this client already used for a finished order.
- 202 "Order Canceled - reason:": after the Cancelled orderStatus of a client cancel.
- 10147 "OrderId N that needs to be cancelled is not found.": cancel of an unknown or
  finished order.
- 326 "Unable to connect as the client id is already in use...": then the socket closes.
- 1100 / 1101 / 1102: gateway-to-IB connectivity lost / restored (data lost / maintained).

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
)
from .faults import apply_command, start_control_server
from .prices import PriceModel, Quote
from .server import GatewaySimulator, Session
from .standalone import add_arguments, build_simulator, main, run_command, serve
from .thread import SimulatorThread

__all__ = [
    "Accepted",
    "Account",
    "Brokerage",
    "CommissionSchedule",
    "Execution",
    "GatewaySimulator",
    "Instrument",
    "OrderRequest",
    "Position",
    "PriceModel",
    "Quote",
    "Rejection",
    "Session",
    "SimOrder",
    "SimulatorThread",
    "add_arguments",
    "apply_command",
    "build_simulator",
    "main",
    "run_command",
    "serve",
    "start_control_server",
]
