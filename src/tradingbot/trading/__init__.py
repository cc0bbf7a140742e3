"""The trading day's controls: the operator's kill switch (pause, resume; the daily loss
limit trips it), durable across restarts and enforced in the broker's order path."""

from tradingbot.notify.routing import KILL_SWITCH_SOURCE
from tradingbot.trading.state import TradingMode, TradingState
from tradingbot.trading.switch import KillSwitch, SwitchResult

__all__ = ["KILL_SWITCH_SOURCE", "KillSwitch", "SwitchResult", "TradingMode", "TradingState"]
