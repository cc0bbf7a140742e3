"""Requests the simulator does not implement, answered at once with error 322.

A real gateway answers a request it cannot serve with an error for the request's id;
staying silent would leave the client waiting for its own timeout. Each entry names the
request (as in ib_async's ``client.py``) and where its request id sits in the message
(``None``: the request has no id, the error goes to reqId -1). Cancels of these requests
need no answer (there is nothing to cancel; the real gateway sends none either).
"""

from __future__ import annotations

__all__ = ["NOT_SUPPORTED", "SILENT_CANCELS", "UNSUPPORTED", "not_supported_text", "req_id_of"]

NOT_SUPPORTED = 322

# message id -> (request name, index of the request id or None)
UNSUPPORTED: dict[int, tuple[str, int | None]] = {
    10: ("reqMktDepth", 2),
    12: ("reqNewsBulletins", None),
    14: ("setServerLogLevel", None),
    18: ("requestFA", None),
    19: ("replaceFA", 4),
    21: ("exerciseOptions", 2),
    22: ("reqScannerSubscription", 1),
    24: ("reqScannerParameters", None),
    52: ("reqFundamentalData", 2),
    54: ("calculateImpliedVolatility", 2),
    55: ("calculateOptionPrice", 2),
    65: ("verifyRequest", None),
    66: ("verifyMessage", None),
    67: ("queryDisplayGroups", 2),
    68: ("subscribeToGroupEvents", 2),
    69: ("updateDisplayGroup", 2),
    72: ("verifyAndAuthRequest", None),
    73: ("verifyAndAuthMessage", None),
    74: ("reqPositionsMulti", 2),
    78: ("reqSecDefOptParams", 1),
    79: ("reqSoftDollarTiers", 1),
    80: ("reqFamilyCodes", None),
    81: ("reqMatchingSymbols", 1),
    82: ("reqMktDepthExchanges", None),
    83: ("reqSmartComponents", 1),
    84: ("reqNewsArticle", 1),
    85: ("reqNewsProviders", None),
    86: ("reqHistoricalNews", 1),
    88: ("reqHistogramData", 1),
    91: ("reqMarketRule", None),
    96: ("reqHistoricalTicks", 1),
    97: ("reqTickByTickData", 1),
    100: ("reqWshMetaData", 1),
    102: ("reqWshEventData", 1),
    104: ("reqUserInfo", 1),
}

# Cancels (and unsubscribes) of unsupported requests: nothing to do, nothing to answer.
SILENT_CANCELS: dict[int, str] = {
    11: "cancelMktDepth",
    13: "cancelNewsBulletins",
    23: "cancelScannerSubscription",
    53: "cancelFundamentalData",
    56: "cancelCalculateImpliedVolatility",
    57: "cancelCalculateOptionPrice",
    70: "unsubscribeFromGroupEvents",
    75: "cancelPositionsMulti",
    89: "cancelHistogramData",
    98: "cancelTickByTickData",
    101: "cancelWshMetaData",
    103: "cancelWshEventData",
}


def req_id_of(fields: list[str], index: int | None) -> int:
    """The request id at ``index`` of ``fields`` (-1 when absent or unreadable)."""
    if index is None or index >= len(fields):
        return -1
    try:
        return int(fields[index])
    except ValueError:
        return -1


def not_supported_text(msg_id: str, name: str) -> str:
    """Error 322's text, in the real gateway's form."""
    return (
        f"Error processing request.-'{msg_id}' : cause - {name} is not supported by the "
        "gateway simulator"
    )
