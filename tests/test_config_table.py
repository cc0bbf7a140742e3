"""The settings table is the one statement of every variable: Config, defaults and docs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tradingbot.config import SETTINGS, Config, ConfigError, load_config
from tradingbot.config.docs import BEGIN, END, settings_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_config_field_has_exactly_one_setting() -> None:
    """Each Config field is filled by one row of the table, and each row fills a real field."""
    attributes = [s.attribute for s in SETTINGS if s.attribute is not None]
    fields = [field.name for field in dataclasses.fields(Config)]
    assert sorted(attributes) == sorted(fields)
    assert len(set(attributes)) == len(attributes)


def test_table_defaults_are_the_loaded_defaults(tmp_path: Path) -> None:
    """With nothing configured, every setting's value is the default the table states."""
    config = load_config(environ={"TRADINGBOT_HOME": str(tmp_path)})
    for setting in SETTINGS:
        if setting.attribute is None or setting.shown_default is not None:
            continue
        assert getattr(config, setting.attribute) == setting.default, setting.name


def test_documentation_shows_the_table_as_the_code_states_it() -> None:
    """docs/configuration.md holds the generated table; regenerate it when this fails."""
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END) + 1
    assert text[start:end] == settings_markdown(), (
        "docs/configuration.md is stale: replace its table with the output of "
        "`.venv/bin/python -m tradingbot.config.docs`"
    )


DURATIONS = [s for s in SETTINGS if s.name.endswith(("_S", "_DAYS", "_MB"))]


@pytest.mark.parametrize("setting", DURATIONS, ids=[s.name for s in DURATIONS])
def test_every_duration_refuses_an_absurd_value(tmp_path: Path, setting: object) -> None:
    """A duration like 1e300 (which would overflow a timer or disable a deadline) exits 2."""
    name = setting.name  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as raised:
        load_config(environ={"TRADINGBOT_HOME": str(tmp_path), f"TRADINGBOT_{name}": "1e300"})
    assert raised.value.variable == f"TRADINGBOT_{name}"
    assert str(raised.value).startswith(f"TRADINGBOT_{name}: expected a number of ")


def test_a_short_api_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """A token shorter than 16 characters could be guessed over the network: the bot
    refuses to start, names the variable and the rule, and does not print the token."""
    with pytest.raises(ConfigError) as raised:
        load_config(
            environ={"TRADINGBOT_HOME": str(tmp_path), "TRADINGBOT_API_TOKEN": "hunter2-short"}
        )
    assert raised.value.variable == "TRADINGBOT_API_TOKEN"
    assert "at least 16 characters" in str(raised.value)
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("token", ["abc def", "tab\there", "new\nline"])
def test_an_api_token_with_blanks_is_refused(tmp_path: Path, token: str) -> None:
    """A token with whitespace could never match a request header: refused, and not echoed."""
    with pytest.raises(ConfigError) as raised:
        load_config(environ={"TRADINGBOT_HOME": str(tmp_path), "TRADINGBOT_API_TOKEN": token})
    assert raised.value.variable == "TRADINGBOT_API_TOKEN"
    assert token.strip() not in str(raised.value)
