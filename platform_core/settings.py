"""Settings, read from ``QIAO_*`` environment variables (and a ``.env`` file).

A bad value stops start-up with one line naming the setting (``SettingsError``); the
secret key lives in a file outside the database and is created 0600 on first start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message is one line naming it."""


class Settings(BaseSettings):
    """Every knob of a Qiao installation. Field ``x`` is read from ``QIAO_X``."""

    model_config = SettingsConfigDict(env_prefix="QIAO_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("./qiao-data")
    database_url: str = Field(default="", description="default: SQLite inside data_dir")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key_file: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    base_url: str = Field(default="http://127.0.0.1:8000",
                          description="links sent by e-mail/SMS are built from this, never "
                                      "from request headers; unset: http://<host>:<port>")
    # Field encryption: "k1=<base64 32 bytes>,k2=…,index=<base64 32 bytes>"; the last
    # data key is current. Empty: keys live in encryption_key_file (created 0600).
    encryption_keys: str = Field(default="", repr=False)
    encryption_key_file: Path | None = None
    session_idle_minutes: int = Field(default=30, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)
    access_token_seconds: int = Field(default=3600, ge=60, le=86400)
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_client_threshold: int = Field(default=20, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    login_rate_per_minute: int = Field(default=10, ge=1)
    api_rate_per_minute: int = Field(default=600, ge=1, description="requests per API token")
    progress_rate_per_minute: int = Field(default=30, ge=1, description="opens of customer "
                                          "progress pages (/p/…) per client and per link")
    max_request_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    # a spreadsheet upload of the imports API (within max_request_bytes for HTTP)
    import_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    # The in-process loop (outbox dispatcher, then webhook deliveries) started with the app;
    # off in tests (they drive it) and where separate worker processes do the work.
    background_jobs: bool = True
    # Webhooks (docs/webhooks.md): destinations on private/loopback/link-local/reserved
    # addresses are refused unless listed here: hostnames, IPs or CIDRs, comma-separated.
    webhook_allow_hosts: str = ""
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=8, ge=1, le=20)
    webhook_backoff_seconds: int = Field(default=10, ge=1, le=3600,
                                         description="delay before the first retry; each "
                                                     "next one is 6× longer (≤ 24 h)")
    # Rules (docs/rules.md): outside actions retry with backoff, then are dead-lettered
    rules_max_attempts: int = Field(default=5, ge=1, le=20)
    rules_backoff_seconds: float = Field(default=30.0, gt=0, le=3600,
                                         description="delay before the first retry; each "
                                                     "next one twice as long (≤ 1 h)")
    # Notification channels. E-mail: an SMTP server.
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_from: str = "qiao@localhost"
    smtp_starttls: bool = False
    # SMS: a generic HTTP gateway; the body is a template of ``phone`` and ``message``,
    # signed with HMAC-SHA256(sms_secret, body) in ``sms_signature_header`` if a secret is set
    sms_gateway_url: str = ""
    sms_method: Literal["POST", "PUT"] = "POST"
    sms_body_template: str = '{"phone": {{ phone | tojson }}, "message": {{ message | tojson }}}'
    sms_secret: str = Field(default="", repr=False)
    sms_signature_header: str = "X-Signature"
    # WeCom: the default group robot (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…)
    wecom_robot_url: str = ""

    @field_validator("webhook_allow_hosts")
    @classmethod
    def _allow_list(cls, text: str) -> str:
        from platform_core.webhooks.ssrf import AllowList  # one parser: start-up and use

        AllowList.parse(text)  # ValueError names the bad entry
        return text

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if url and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return url

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'qiao.db').resolve()}"

    @field_validator("base_url")
    @classmethod
    def _absolute(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an absolute http:// or https:// URL")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _base_url_follows_the_port(self) -> Settings:
        """Without ``QIAO_BASE_URL`` the links point where this server listens (its
        ``QIAO_PORT``, and its host unless it binds every address), not at port 8000."""
        if "base_url" not in self.model_fields_set:
            host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host
            host = f"[{host}]" if ":" in host else host
            self.base_url = f"http://{host}:{self.port}"
        return self

    @property
    def cookie_secure(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def effective_encryption_key_file(self) -> Path:
        return self.encryption_key_file or self.data_dir / "encryption.keys"

    @property
    def effective_secret_key_file(self) -> Path:
        return self.secret_key_file or self.data_dir / "secret.key"


def load_settings(**overrides: object) -> Settings:
    """Read settings; raise ``SettingsError`` with one line naming the bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "QIAO_" + str(err["loc"][0]).upper() if err["loc"] else "QIAO settings"
        raise SettingsError(f"invalid setting {name}: {err['msg']}") from None


def ensure_secret_key(settings: Settings) -> bytes:
    """Return the installation's secret key, creating the file (mode 0600) if absent."""
    path = settings.effective_secret_key_file
    if path.exists():
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise SettingsError(f"invalid setting QIAO_SECRET_KEY_FILE: {path} holds < 32 bytes")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key
