"""The configuration of a bot homed in a test's temporary directory."""

from __future__ import annotations

from pathlib import Path

from tradingbot.config import Config, load_config


def bot_environ(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of a bot homed in ``tmp_path / "home"`` with an empty .env file
    (nothing from the developer's), plus ``settings`` named without ``TRADINGBOT_``."""
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    return {
        "TRADINGBOT_HOME": str(tmp_path / "home"),
        "TRADINGBOT_ENV_FILE": str(env_file),
        **{f"TRADINGBOT_{key}": value for key, value in settings.items()},
    }


def bot_config(tmp_path: Path, **settings: str) -> Config:
    """The loaded configuration of :func:`bot_environ` (exits 2 on a bad setting)."""
    return load_config(environ=bot_environ(tmp_path, **settings))
