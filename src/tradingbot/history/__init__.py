"""Market history: the daily bar update into the ``bars`` table (run by the scheduler at
16:05 ET) and the stored bars strategies warm up from.

==========  =======================================================================
``update``  each watchlist symbol's session bars from the gateway into the table
``stored``  the table read back as broker :class:`~tradingbot.broker.Bar` objects
==========  =======================================================================
"""

from tradingbot.history.stored import recent_bars, stored_bars
from tradingbot.history.update import BarUpdateFailed, BarUpdateResult, FetchBars, update_bars

__all__ = [
    "BarUpdateFailed",
    "BarUpdateResult",
    "FetchBars",
    "recent_bars",
    "stored_bars",
    "update_bars",
]
