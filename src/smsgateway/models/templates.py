"""Stored template texts (overriding or adding to the shipped defaults) and their history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smsgateway.db import Base, UTCDateTime, utcnow


class StoredTemplate(Base):
    """The text ops set for one (event type, role, language) in the back office.

    ``language`` is the canonical BCP 47 spelling (``pt-BR``, ``zh-Hant-TW``), so the
    unique constraint holds however a tag was written in the request.
    """

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("event_type", "role", "language"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(35))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(100))


class TemplateChange(Base):
    """One write to a template: who, when, and the text before and after.

    ``action`` is ``put`` (``old_text`` is null when no text was stored before, even if a
    default applied) or ``delete`` (``new_text`` is null: the default applies again).
    Rows are only ever inserted; their ``id`` orders them.
    """

    __tablename__ = "template_changes"
    __table_args__ = (
        Index("ix_template_changes_template", "event_type", "role", "language", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_type: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(35))
    action: Mapped[str] = mapped_column(String(8))
    old_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    new_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
