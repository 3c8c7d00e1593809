"""Channel settings saved by administrators, over the environment's.

A channel saved here (``smtp``, ``sms``, ``wecom``) replaces the environment's plain
settings of that channel (``QIAO_SMTP_HOST``…) with its saved ones. Its secrets (the
SMTP password, the SMS signing secret, the WeCom robot URL, whose ``key`` is the secret)
are write-only: one saved or cleared here wins, one never saved here still comes from
the environment. They are stored sealed with the installation's keyring (AES-GCM, keys
outside the database; ``qiao keys rotate`` re-encrypts them) and are never handed back:
a document says only whether each is set, and where it comes from.

Saving, in order: the caller has checked the values (the channels API) → ``save`` merges
the secrets (None keeps, ``""`` clears, text replaces) → seals them → writes the row →
audits the change (field names; a secret only as "changed"/"cleared") in the same
transaction. Senders call ``effective_settings`` once per batch: one query of at most
three rows, nothing per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_core.channels.models import ChannelSetting
from platform_core.db import Database
from platform_core.models import utcnow
from platform_core.security import audit
from platform_core.security.crypto import Keyring
from platform_core.settings import Settings
from platform_core.store import Actor


@dataclass(frozen=True)
class Channel:
    """A channel's fields and secrets: their names in the API → ``Settings`` attributes."""

    key: str
    fields: Mapping[str, str]
    secrets: Mapping[str, str]


CHANNELS: dict[str, Channel] = {
    "smtp": Channel("smtp", {"host": "smtp_host", "port": "smtp_port", "user": "smtp_user",
                             "from_address": "smtp_from", "starttls": "smtp_starttls"},
                    {"password": "smtp_password"}),
    "sms": Channel("sms", {"gateway_url": "sms_gateway_url", "method": "sms_method",
                           "body_template": "sms_body_template",
                           "signature_header": "sms_signature_header"},
                   {"secret": "sms_secret"}),
    "wecom": Channel("wecom", {}, {"robot_url": "wecom_robot_url"}),
}


def secret_context(channel: str) -> str:
    """What a channel's sealed secrets are bound to (no form field has a ``:``)."""
    return f"channel-secret:{channel}"


def default(channel: str, name: str) -> Any:
    """The built-in default of a channel's field (what ``Settings`` has without env)."""
    return Settings.model_fields[CHANNELS[channel].fields[name]].default


def rows(session: Session) -> dict[str, ChannelSetting]:
    return {row.channel: row for row in session.execute(select(ChannelSetting)).scalars()
            if row.channel in CHANNELS}


def opened(row: ChannelSetting | None, keyring: Keyring) -> dict[str, str]:
    """The secrets saved for a channel (``""``: cleared here), by name."""
    if row is None or row.secrets is None:
        return {}
    return dict(keyring.open_text(row.secrets, context=secret_context(row.channel)))


def overrides(saved: Iterable[ChannelSetting], keyring: Keyring | None) -> dict[str, Any]:
    """The ``Settings`` attributes the saved channels replace, with their values."""
    out: dict[str, Any] = {}
    for row in saved:
        spec = CHANNELS[row.channel]
        config = row.config or {}
        for name, attr in spec.fields.items():
            out[attr] = config.get(name, default(row.channel, name))
        if row.secrets is not None:
            if keyring is None:
                raise RuntimeError("channel secrets are saved but no keyring was given")
            for name, value in opened(row, keyring).items():
                if name in spec.secrets:
                    out[spec.secrets[name]] = value
    return out


def effective_settings(db: Database, settings: Settings,
                       keyring: Keyring | None = None) -> Settings:
    """``settings`` with the channels saved in the database over the environment's (one
    read). Without a ``keyring`` the installation's is loaded when a secret needs it."""
    with db.read() as session:
        saved = list(rows(session).values())
    if not saved:
        return settings
    if keyring is None and any(row.secrets is not None for row in saved):
        keyring = Keyring.load(settings)
    return settings.model_copy(update=overrides(saved, keyring))


def hint(url: str) -> str:
    """A URL with its secret parts (user info, query) left out: ``https://host/path?…``."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or ''}"
    if parts.port:
        shown += f":{parts.port}"
    return shown + parts.path + ("?…" if parts.query else "")


def channel_doc(channel: str, settings: Settings, row: ChannelSetting | None,
                keyring: Keyring) -> dict[str, Any]:
    """A channel as the API shows it: its effective plain fields, and of each secret only
    ``<name>_set`` and ``<name>_from`` (``"database"``, ``"environment"`` or None)."""
    spec = CHANNELS[channel]
    doc: dict[str, Any] = {"channel": channel,
                           "source": "database" if row is not None else "environment"}
    for name, attr in spec.fields.items():
        doc[name] = ((row.config or {}).get(name, default(channel, name)) if row is not None
                     else getattr(settings, attr))
    secrets = opened(row, keyring)
    for name, attr in spec.secrets.items():
        value = secrets[name] if name in secrets else getattr(settings, attr)
        doc[f"{name}_set"] = bool(value)
        doc[f"{name}_from"] = None if not value else (
            "database" if name in secrets else "environment")
        if name == "robot_url":
            doc["robot_url_hint"] = hint(value) if value else None
    doc["updated_at"] = row.updated_at.isoformat() if row is not None else None
    doc["updated_by"] = row.updated_by if row is not None else None
    return doc


def save(session: Session, keyring: Keyring, *, channel: str, config: Mapping[str, Any],
         secrets: Mapping[str, str | None], actor: Actor) -> ChannelSetting:
    """Save a channel: ``config`` holds every plain field (checked by the caller);
    ``secrets`` maps a secret's name to None (keep), ``""`` (clear) or its new value."""
    spec = CHANNELS[channel]
    row = session.get(ChannelSetting, channel)
    kept = opened(row, keyring)
    changed = {}
    for name, value in secrets.items():
        if name in spec.secrets and value is not None:
            kept[name] = value
            changed[name] = "cleared" if value == "" else "changed"
    before = dict(row.config or {}) if row is not None else None
    if row is None:
        row = ChannelSetting(channel=channel)
        session.add(row)
    row.config = {name: config[name] for name in spec.fields}
    row.secrets = keyring.seal_text(kept, context=secret_context(channel)) if kept else None
    row.updated_by, row.updated_at = actor.user_id, utcnow()
    session.flush()
    fields = [name for name in spec.fields
              if before is None or before.get(name) != row.config[name]]
    audit.append(session, actor=actor, action="channel.update", target=f"channel:{channel}",
                 detail={"fields": fields, "secrets": changed, "created": before is None})
    return row


def reset(session: Session, *, channel: str, actor: Actor) -> bool:
    """Forget a channel's saved settings (the environment's apply again); whether there
    were any."""
    row = session.get(ChannelSetting, channel)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    audit.append(session, actor=actor, action="channel.reset", target=f"channel:{channel}")
    return True
