"""The channel settings table: one row per channel an administrator has saved."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from platform_core.models import Base, Id, Json, utcnow


class ChannelSetting(Base):
    """A channel's saved settings. ``config`` holds its plain fields (host, port, URL…);
    ``secrets`` its secrets as one sealed JSON object (``Keyring.seal_text``, context
    ``channel-secret:<channel>``), or None when none was ever saved here."""

    __tablename__ = "channel_settings"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    secrets: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[int | None] = mapped_column(Id)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
