"""Sending e-mail through the SMTP server of the settings: one message to some addresses,
plain text with an optional HTML alternative. Used by the rules engine's e-mail
notifications and the report engine's scheduled reports, each passing the effective
settings (``platform_core.channels.store.effective_settings``: what an administrator
saved on /admin/channels over ``QIAO_SMTP_*``), read once per batch."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from platform_core.settings import Settings


class NoMailServer(RuntimeError):
    """No SMTP server is configured."""


def send_mail(settings: Settings, *, to: list[str], subject: str, text: str,
              html: str | None = None) -> None:
    """Send one message; SMTP and network failures raise (``smtplib.SMTPException``,
    ``OSError``) for the caller's retry policy."""
    if not settings.smtp_host:
        raise NoMailServer("no SMTP server: set one on /admin/channels (or QIAO_SMTP_HOST)")
    message = EmailMessage()
    message["From"], message["To"] = settings.smtp_from, ", ".join(to)
    message["Subject"] = subject or "Qiao"
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                      timeout=settings.webhook_timeout_seconds) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)
