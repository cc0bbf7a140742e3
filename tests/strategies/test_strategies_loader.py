"""Loading strategies: classes, TOML parameters and watchlists, checked before anything runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.bot_config import bot_environ
from tradingbot.broker.api import SYMBOL as BROKER_SYMBOL
from tradingbot.config import Config, ConfigError, load_config
from tradingbot.config.kinds import SYMBOL as CONFIG_SYMBOL
from tradingbot.config.settings import DEFAULT_WATCHLIST
from tradingbot.strategies.example import MovingAverageCrossover
from tradingbot.strategies.loader import load_strategies


def config(tmp_path: Path, toml: str | None = None, **env: str) -> Config:
    """A configuration homed in ``tmp_path`` with ``TRADINGBOT_<key>`` settings."""
    environ = bot_environ(tmp_path, **env)
    if toml is not None:
        path = tmp_path / "strategies.toml"
        path.write_text(toml)
        environ["TRADINGBOT_STRATEGY_CONFIG"] = str(path)
    return load_config(environ=environ)


def error_of(tmp_path: Path, toml: str | None = None, **env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_strategies(config(tmp_path, toml, **env))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_the_simulator_runs_the_example_on_the_default_watchlist(tmp_path: Path) -> None:
    """With no configuration and the simulator, the example runs on 12 liquid symbols."""
    (loaded,) = load_strategies(config(tmp_path))
    assert loaded.cls is MovingAverageCrossover
    assert loaded.id == "ma_cross"
    assert loaded.actor_id == "strategy-ma_cross"
    assert loaded.watchlist == DEFAULT_WATCHLIST
    assert len(DEFAULT_WATCHLIST) >= 10
    assert loaded.params["fast"] == 4


def test_a_real_gateway_or_an_empty_setting_runs_no_strategy(tmp_path: Path) -> None:
    """A real gateway runs no strategy by default; an empty TRADINGBOT_STRATEGIES neither."""
    assert load_strategies(config(tmp_path, BROKER="ibkr")) == ()
    assert load_strategies(config(tmp_path, STRATEGIES="")) == ()
    assert load_strategies(config(tmp_path, STRATEGIES="none")) == ()


def test_the_toml_table_sets_parameters_and_the_watchlist(tmp_path: Path) -> None:
    """A strategy's table overrides its parameters (an int for a float is fine) and watchlist."""
    toml = '[ma_cross]\nfast = 3\norder_usd = 500\nwatchlist = ["msft", "IBM"]\n'
    (loaded,) = load_strategies(config(tmp_path, toml, WATCHLIST="AAPL"))
    assert loaded.params["fast"] == 3
    assert loaded.params["order_usd"] == 500.0
    assert isinstance(loaded.params["order_usd"], float)
    assert loaded.params["slow"] == 12  # untouched default
    assert loaded.watchlist == ("MSFT", "IBM")


def test_two_instances_of_one_class_need_their_own_ids(tmp_path: Path) -> None:
    """`id=module:Class` runs one class twice with separate tables; the same id twice exits."""
    ref = "tradingbot.strategies.example:MovingAverageCrossover"
    toml = "[slow_one]\nslow = 30\n"
    fast, slow = load_strategies(config(tmp_path, toml, STRATEGIES=f"{ref},slow_one={ref}"))
    assert (fast.id, slow.id) == ("ma_cross", "slow_one")
    assert (fast.params["slow"], slow.params["slow"]) == (12, 30)
    message = error_of(tmp_path, STRATEGIES=f"{ref},{ref}")
    assert "TRADINGBOT_STRATEGIES" in message
    assert "'ma_cross' is used twice" in message
    message = error_of(tmp_path, STRATEGIES=f"ma_cross-sup={ref}")  # a supervisor's name
    assert "strategy id 'ma_cross-sup' is not" in message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[ma_cross]\nfats = 3\n", r"strategies\.toml: \[ma_cross\]: unknown key 'fats'"),
        ("[ma_cross]\nfast = 'x'\n", r"\[ma_cross\]: key 'fast': expected an integer, got 'x'"),
        ("[ma_cross]\nfast = 2.5\n", r"key 'fast': expected an integer, got 2\.5"),
        ("[ma_cross]\nfast = true\n", r"key 'fast': expected an integer, got True"),
        ("[other]\nfast = 3\n", r"\[other\]: unknown strategy \(configured in .*: ma_cross\)"),
        ("fast = 3\n", r"'fast' is not a table"),
        ("[ma_cross\n", r"strategies\.toml: not valid TOML"),
        ("[ma_cross]\nwatchlist = ['A$']\n", r"key 'watchlist': bad symbol 'A\$'"),
        ("[ma_cross]\nwatchlist = 'AAPL'\n", r"key 'watchlist': expected a list of symbols"),
    ],
)
def test_a_bad_strategy_file_names_the_file_the_strategy_and_the_key(
    tmp_path: Path, toml: str, expected: str
) -> None:
    """Each mistake in the TOML file is one line naming the setting, file, strategy and key."""
    message = error_of(tmp_path, toml)
    assert message.startswith("TRADINGBOT_STRATEGY_CONFIG: ")
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("refs", "expected"),
    [
        ("nosuch_module_xyz:Foo", r"cannot import nosuch_module_xyz \(ModuleNotFoundError"),
        ("tradingbot.strategies.example:Nope", r"has no class Nope"),
        ("tradingbot.strategies.api:Signal", r"Signal lacks on_start, on_quote"),
    ],
)
def test_a_strategy_that_cannot_be_loaded_names_it(
    tmp_path: Path, refs: str, expected: str
) -> None:
    """An unimportable module, a missing class or a class that is no strategy exits 2."""
    message = error_of(tmp_path, STRATEGIES=refs)
    assert message.startswith(f"TRADINGBOT_STRATEGIES: {refs}: ")
    assert re.search(expected, message), message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("WATCHLIST", "AAPL,MS FT!", "bad symbol 'MS FT!'"),
        ("STRATEGIES", "not a reference", "bad reference 'not a reference'"),
        ("STRATEGIES", "Big=mod:Cls", "bad id 'Big'"),
        ("STRATEGY_CONFIG", "/nonexistent/strategies.toml", "an existing TOML file"),
    ],
)
def test_malformed_strategy_settings_exit_at_load(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    """A malformed watchlist, strategy list or missing TOML file is a configuration error."""
    with pytest.raises(ConfigError) as caught:
        config(tmp_path, **{name: value})
    assert str(caught.value).startswith(f"TRADINGBOT_{name}: expected ")
    assert expected in str(caught.value)


def test_the_watchlist_setting_accepts_what_the_broker_accepts() -> None:
    """The configuration checks symbols with the broker API's own pattern."""
    assert CONFIG_SYMBOL.pattern == BROKER_SYMBOL.pattern
