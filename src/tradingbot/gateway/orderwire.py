"""Reading a placeOrder message (id 3) into an ``OrderRequest``.

The message has no version field and its length depends on the order (delta-neutral,
scale, hedge and algo parts are present only when set), so it is walked field by field
in the order ib_async's ``client.placeOrder`` writes it, up to ``whatIf``.
"""

from __future__ import annotations

import math

from .brokerage import OrderRequest
from .protocol import UNSET_DOUBLE

__all__ = ["parse_place_order"]


def _float(text: str) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return math.nan


def _opt_float(text: str) -> float | None:
    """An optional price: empty or the unset double means "not given"."""
    if not text:
        return None
    value = _float(text)
    return None if value >= UNSET_DOUBLE else value


def _int(text: str) -> int:
    try:
        return int(text) if text else 0
    except ValueError:
        return 0


class _Cursor:
    def __init__(self, fields: list[str], start: int) -> None:
        self.fields = fields
        self.pos = start

    def take(self) -> str:
        value = self.fields[self.pos] if self.pos < len(self.fields) else ""
        self.pos += 1
        return value

    def skip(self, n: int) -> None:
        self.pos += n


def parse_place_order(f: list[str], server_version: int) -> OrderRequest:
    """The fields of a placeOrder message the simulator acts on."""

    def at(i: int) -> str:
        return f[i] if i < len(f) else ""

    sec_type = at(4)
    good_till_date = trail_stop = trailing_percent = ""
    oca_type = 0
    what_if = False
    if sec_type != "BAG":  # combo orders are refused before these matter
        c = _Cursor(f, 35)
        c.skip(3)  # deprecated sharesAllocation, discretionaryAmt, goodAfterTime
        good_till_date = c.take()
        c.skip(3)  # faGroup, faMethod, faPercentage
        if server_version < 177:
            c.skip(1)  # faProfile
        c.skip(4)  # modelCode, shortSaleSlot, designatedLocation, exemptCode
        oca_type = _int(c.take())
        c.skip(17)  # rule80A .. volatilityType
        if c.take():  # deltaNeutralOrderType
            c.skip(1 + 8)
        else:
            c.skip(1)  # deltaNeutralAuxPrice
        c.skip(2)  # continuousUpdate, referencePriceType
        trail_stop = c.take()
        trailing_percent = c.take()
        c.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
        increment = _float(c.take())
        if 0 < increment < UNSET_DOUBLE:
            c.skip(7)
        c.skip(3)  # scaleTable, activeStartTime, activeStopTime
        if c.take():  # hedgeType
            c.skip(1)
        c.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
        if c.take() == "1":  # deltaNeutralContract present
            c.skip(3)
        if c.take():  # algoStrategy
            c.skip(2 * _int(c.take()))
        c.skip(1)  # algoId
        what_if = c.take() == "1"
    return OrderRequest(
        order_id=_int(at(1)),
        con_id=_int(at(2)),
        symbol=at(3),
        sec_type=sec_type,
        exchange=at(9),
        currency=at(11),
        action=at(16),
        quantity=_float(at(17)),
        order_type=at(18),
        lmt_price=_opt_float(at(19)),
        aux_price=_opt_float(at(20)),
        tif=at(21),
        oca_group=at(22),
        oca_type=oca_type,
        account=at(23),
        order_ref=at(26),
        transmit=at(27) != "0",
        parent_id=_int(at(28)),
        outside_rth=at(33) == "1",
        good_till_date=good_till_date,
        trail_stop_price=_opt_float(trail_stop),
        trailing_percent=_opt_float(trailing_percent),
        what_if=what_if,
    )
