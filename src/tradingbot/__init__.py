"""trading-bot: the operations core of an Interactive Brokers trading bot."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trading-bot")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
