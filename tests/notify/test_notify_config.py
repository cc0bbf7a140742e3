"""E-mail configuration: every bad value is one line naming the variable, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tradingbot.config import ConfigError, load_config
from tradingbot.notify import NotifySettings


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return {
        "TRADINGBOT_HOME": str(tmp_path / "home"),
        "TRADINGBOT_ENV_FILE": str(empty),
        **{f"TRADINGBOT_{k}": v for k, v in values.items()},
    }


BAD_VALUES = [
    ("SMTP_PORT", "smtp", {"SMTP_HOST": "mail.example.com", "EMAIL_TO": "a@example.com"}),
    ("SMTP_PORT", "70000", {"SMTP_HOST": "mail.example.com", "EMAIL_TO": "a@example.com"}),
    ("SMTP_TLS", "ssl3", {}),
    ("SMTP_STARTTLS", "maybe", {}),
    ("SMTP_TIMEOUT_S", "0", {}),
    ("SMTP_TIMEOUT_S", "soon", {}),
    ("SMTP_CA_FILE", "/nonexistent/ca.pem", {}),
    ("SMTP_RETRY_ATTEMPTS", "0", {}),
    ("SMTP_RETRY_ATTEMPTS", "three", {}),
    ("SMTP_RETRY_INTERVAL_S", "-1", {}),
    ("SMTP_RETRY_JITTER_S", "x", {}),
    ("EMAIL_FROM", "not an address", {}),
    ("EMAIL_FROM", "bot@example.com\r\nBcc: x@evil.example", {}),
    ("EMAIL_TO", "ops@example.com, nope", {}),
    ("EMAIL_TO", "ops@example.com\nBcc: x@evil.example", {}),
    ("NOTIFY_TYPES", "trade_execution,newsletter", {}),
    ("NOTIFY_MIN_SEVERITY", "LOUD", {}),
    ("NOTIFY_STORM_WINDOW_S", "-5", {}),
    ("NOTIFY_RATE_LIMIT_PER_HOUR", "0", {}),
    ("NOTIFY_RATE_LIMIT_PER_HOUR", "lots", {}),
]


@pytest.mark.parametrize(("name", "value", "others"), BAD_VALUES)
def test_a_bad_value_names_its_variable(
    tmp_path: Path, name: str, value: str, others: dict[str, str]
) -> None:
    """Loading fails with a ConfigError whose one-line message names the variable."""
    with pytest.raises(ConfigError) as caught:
        load_config(env(tmp_path, **others, **{name: value}))
    assert caught.value.variable == f"TRADINGBOT_{name}"
    assert "\n" not in str(caught.value)


def test_smtp_host_needs_recipients(tmp_path: Path) -> None:
    """A configured server without TRADINGBOT_EMAIL_TO is refused, naming EMAIL_TO."""
    with pytest.raises(ConfigError, match="TRADINGBOT_EMAIL_TO"):
        load_config(env(tmp_path, SMTP_HOST="mail.example.com"))


def test_user_and_password_come_together(tmp_path: Path) -> None:
    """A password without a user name (or the reverse) names the missing variable."""
    with pytest.raises(ConfigError, match="TRADINGBOT_SMTP_USERNAME"):
        load_config(env(tmp_path, SMTP_PASSWORD="x"))
    with pytest.raises(ConfigError, match="TRADINGBOT_SMTP_PASSWORD"):
        load_config(env(tmp_path, SMTP_USER="bot"))


def test_defaults_write_eml_files_to_the_outbox_folder(tmp_path: Path) -> None:
    """No configuration: no server, .eml files in TRADINGBOT_HOME/outbox, all kinds on."""
    config = load_config(env(tmp_path))
    settings = NotifySettings.from_config(config)
    assert settings.smtp is None
    assert settings.outbox_dir == tmp_path / "home" / "outbox"
    assert settings.templates_dir == tmp_path / "home" / "templates"
    assert settings.retry_attempts == 3
    assert settings.retry_interval_s == 5.0
    assert settings.rate_limit_per_hour == 30
    assert settings.types == {"trade_execution", "alert", "daily_summary", "recovery_report"}


def test_full_smtp_configuration_and_the_password_is_a_secret(tmp_path: Path) -> None:
    """Every SMTP setting is read; the password is redacted and listed as a secret."""
    config = load_config(
        env(
            tmp_path,
            SMTP_HOST="mail.example.com",
            SMTP_TLS="tls",
            SMTP_USERNAME="bot",
            SMTP_PASSWORD="hunter2",
            SMTP_TIMEOUT_S="7.5",
            EMAIL_FROM="Trading Bot <bot@example.com>",
            EMAIL_TO="ops@example.com, Desk <desk@example.com>",
            NOTIFY_TYPES="alert,recovery_report",
            NOTIFY_MIN_SEVERITY="warning",
            NOTIFY_RATE_LIMIT_PER_HOUR="12",
        )
    )
    assert config.smtp_port == 465  # implicit TLS's port
    assert config.email_to == ("ops@example.com", '"Desk" <desk@example.com>')
    assert config.notify_types == ("alert", "recovery_report")
    assert "hunter2" in config.secrets()
    assert "hunter2" not in repr(config)
    assert config.redacted()["smtp_password"] == "***"
    settings = NotifySettings.from_config(config)
    assert settings.smtp is not None
    assert (settings.smtp.host, settings.smtp.port, settings.smtp.tls) == (
        "mail.example.com",
        465,
        "tls",
    )
    assert "hunter2" not in repr(settings)


def test_legacy_starttls_switch_is_honoured(tmp_path: Path) -> None:
    """TRADINGBOT_SMTP_STARTTLS=false means a plain connection on port 25."""
    config = load_config(env(tmp_path, SMTP_STARTTLS="false"))
    assert (config.smtp_tls, config.smtp_port) == ("none", 25)


@pytest.mark.parametrize(
    ("name", "value"),
    [("EMAIL_TO", "ops@example.com\r\nBcc: x@evil.example"), ("SMTP_TLS", "ssl3")],
)
def test_trading_bot_check_exits_2_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    """The real command exits 2 with one stderr line naming the variable."""
    script = Path(sys.executable).with_name("trading-bot")
    result = subprocess.run(
        [str(script), "check"],
        env={"PATH": "/usr/bin:/bin", **env(tmp_path, **{name: value})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"TRADINGBOT_{name}" in lines[0]
