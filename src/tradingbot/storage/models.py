"""SQLAlchemy declarative models: the schema as Python, private to ``storage/``.

Every ``Mapped[datetime]`` column is a :class:`UTCDateTime` (timezone-aware UTC).
Constraint names follow :data:`NAMING_CONVENTION` so migrations can refer to them on
both backends. A change here needs a migration in ``migrations/versions/``; the test
suite fails when the two disagree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, MetaData, String, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from tradingbot.storage.timestamps import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UUID_LENGTH = 36


class Base(DeclarativeBase):
    """Declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class SystemState(Base):
    """One row per process run: written at start, beaten while alive, closed at clean stop."""

    __tablename__ = "system_state"
    __table_args__ = (Index("ix_system_state_started_at", "started_at"),)

    run_id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    pid: Mapped[int]
    host: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    last_heartbeat: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
    clean_stop: Mapped[bool] = mapped_column(default=False, server_default=false())
