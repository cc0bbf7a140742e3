"""Health: component checks, the cached report and the health+json format."""

from tradingbot.health.model import (
    CONTENT_TYPE,
    FAIL,
    PASS,
    WARN,
    Check,
    HealthReport,
    Status,
    health_body,
    worst,
)
from tradingbot.health.state import HealthState

__all__ = [
    "CONTENT_TYPE",
    "FAIL",
    "PASS",
    "WARN",
    "Check",
    "HealthReport",
    "HealthState",
    "Status",
    "health_body",
    "worst",
]
