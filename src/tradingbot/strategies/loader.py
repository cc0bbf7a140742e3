"""Which strategies run, with which parameters and watchlist: checked once, at start.

``TRADINGBOT_STRATEGIES`` names the classes (``[id=]module:Class``), the TOML file in
``TRADINGBOT_STRATEGY_CONFIG`` holds one table per strategy id (its parameters, and an
optional ``watchlist``), and ``TRADINGBOT_WATCHLIST`` is the watchlist of the others.
Every mistake raises :class:`StrategyConfigError` (a ``ConfigError``): the command line
prints its one line and exits 2 before anything runs.

```toml
[ma_cross]
fast = 4
order_usd = 800.0
watchlist = ["AAPL", "MSFT"]
```
"""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from tradingbot.config import Config, ConfigError
from tradingbot.config.kinds import STRATEGY_ID, SYMBOL, parse_strategy_ref
from tradingbot.config.settings import PREFIX
from tradingbot.strategies.api import ParamValue, Strategy

STRATEGIES = PREFIX + "STRATEGIES"
STRATEGY_CONFIG = PREFIX + "STRATEGY_CONFIG"
WATCHLIST_KEY = "watchlist"  # reserved in every table: not a parameter name
CALLBACKS = (
    "on_start",
    "on_quote",
    "on_bar",
    "on_fill",
    "on_order_status",
    "on_timer",
    "on_stop",
)


class StrategyConfigError(ConfigError):
    """A strategy cannot be loaded or configured; ``str()`` is the one-line message."""

    def __init__(self, variable: str, message: str) -> None:
        ValueError.__init__(self, f"{variable}: {message}")
        self.variable = variable
        self.expected = message
        self.got = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedStrategy:
    """One strategy to run: its id, class, effective parameters and watchlist."""

    id: str
    ref: str  # as configured: [id=]module:Class
    cls: type[Strategy]
    params: Mapping[str, ParamValue]
    watchlist: tuple[str, ...]

    @property
    def actor_id(self) -> str:
        """Its worker's id in the supervision tree (``strategy-<id>``)."""
        return f"strategy-{self.id}"


def load_strategies(config: Config) -> tuple[LoadedStrategy, ...]:
    """Import every configured class and apply its TOML table; StrategyConfigError if not."""
    tables = _read_tables(config.strategy_config)
    loaded: list[LoadedStrategy] = []
    for ref in config.strategies:
        given_id, module, name = parse_strategy_ref(ref)
        cls = _import(ref, module, name)
        strategy_id = given_id or _default_id(cls, name)
        if not STRATEGY_ID.fullmatch(strategy_id) or strategy_id.endswith("-sup"):
            raise StrategyConfigError(
                STRATEGIES,
                f"{ref}: strategy id {strategy_id!r} is not 1-23 lower-case letters, digits, "
                "'_' and '-', not ending in -sup (give one: id=module:Class)",
            )
        if any(s.id == strategy_id for s in loaded):
            raise StrategyConfigError(
                STRATEGIES,
                f"{ref}: strategy id {strategy_id!r} is used twice (give one: id=module:Class)",
            )
        table = tables.pop(strategy_id, {})
        where = f"{config.strategy_config}: [{strategy_id}]"
        watchlist = _watchlist(table.pop(WATCHLIST_KEY, None), config.watchlist, where)
        params = _params(cls, table, where)
        loaded.append(
            LoadedStrategy(
                id=strategy_id,
                ref=ref,
                cls=cls,
                params=MappingProxyType(params),
                watchlist=watchlist,
            )
        )
    if tables:
        unknown = sorted(tables)[0]
        configured = ", ".join(s.id for s in loaded) or "none"
        raise StrategyConfigError(
            STRATEGY_CONFIG,
            f"{config.strategy_config}: [{unknown}]: unknown strategy "
            f"(configured in {STRATEGIES}: {configured})",
        )
    return tuple(loaded)


def _read_tables(path: Path | None) -> dict[str, dict[str, Any]]:
    if path is None:
        return {}
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise StrategyConfigError(STRATEGY_CONFIG, f"{path}: cannot read it ({reason})") from None
    except tomllib.TOMLDecodeError as exc:
        raise StrategyConfigError(STRATEGY_CONFIG, f"{path}: not valid TOML ({exc})") from None
    tables: dict[str, dict[str, Any]] = {}
    for key, value in document.items():
        if not isinstance(value, dict):
            raise StrategyConfigError(
                STRATEGY_CONFIG,
                f"{path}: {key!r} is not a table; put each strategy's keys under [strategy-id]",
            )
        tables[key] = dict(value)
    return tables


def _import(ref: str, module: str, name: str) -> type[Strategy]:
    try:
        loaded = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - the user's module: one line, exit 2
        raise StrategyConfigError(
            STRATEGIES, f"{ref}: cannot import {module} ({type(exc).__name__}: {exc})"
        ) from None
    cls = getattr(loaded, name, None)
    if not inspect.isclass(cls):
        raise StrategyConfigError(STRATEGIES, f"{ref}: {module} has no class {name}")
    missing = [c for c in CALLBACKS if not callable(getattr(cls, c, None))]
    if missing:
        raise StrategyConfigError(
            STRATEGIES,
            f"{ref}: {name} lacks {', '.join(missing)} (subclass "
            "tradingbot.strategies.StrategyBase for no-op defaults)",
        )
    defaults = getattr(cls, "params", {})
    if not isinstance(defaults, Mapping) or not all(
        isinstance(k, str) and _kind(v) is not None for k, v in defaults.items()
    ):
        raise StrategyConfigError(
            STRATEGIES,
            f"{ref}: {name}.params must map names to bool, int, float, str or list of str",
        )
    if WATCHLIST_KEY in defaults:
        raise StrategyConfigError(
            STRATEGIES, f"{ref}: {name}.params may not use the reserved name {WATCHLIST_KEY!r}"
        )
    for attribute in ("bar_seconds", "warmup_bars"):
        value = getattr(cls, attribute, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StrategyConfigError(
                STRATEGIES, f"{ref}: {name}.{attribute} must be an integer >= 0"
            )
    return cast(type[Strategy], cls)


def _default_id(cls: type[Any], name: str) -> str:
    given = getattr(cls, "strategy_id", "")
    if isinstance(given, str) and given:
        return given
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _kind(value: object) -> str | None:
    """The parameter type of a default value (None: not a parameter type)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return "a list of strings"
    return None


def _params(cls: type[Strategy], table: Mapping[str, Any], where: str) -> dict[str, ParamValue]:
    defaults: Mapping[str, ParamValue] = getattr(cls, "params", {})
    params: dict[str, ParamValue] = {
        k: list(v) if isinstance(v, list | tuple) else v for k, v in defaults.items()
    }
    for key, value in table.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise StrategyConfigError(
                STRATEGY_CONFIG,
                f"{where}: unknown key {key!r} (parameters: {known}; and {WATCHLIST_KEY})",
            )
        params[key] = _checked(defaults[key], value, f"{where}: key {key!r}")
    return params


def _checked(default: ParamValue, value: Any, where: str) -> ParamValue:
    expected = _kind(default)
    ok: bool
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if not ok:
        raise StrategyConfigError(STRATEGY_CONFIG, f"{where}: expected {expected}, got {value!r}")
    checked: ParamValue = value
    return checked


def _watchlist(value: Any, default: tuple[str, ...], where: str) -> tuple[str, ...]:
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise StrategyConfigError(
            STRATEGY_CONFIG, f"{where}: key {WATCHLIST_KEY!r}: expected a list of symbols"
        )
    symbols = tuple(dict.fromkeys(v.strip().upper() for v in value))
    for symbol in symbols:
        if not SYMBOL.fullmatch(symbol):
            raise StrategyConfigError(
                STRATEGY_CONFIG,
                f"{where}: key {WATCHLIST_KEY!r}: bad symbol {symbol!r} "
                "(1-20 letters, digits and ' ._-')",
            )
    return symbols
