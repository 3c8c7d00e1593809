"""Alembic environment for Qiao's own tables (one models aggregator: platform_core.models)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import engine_flows.models  # noqa: F401 - flow definitions, runs, steps, tasks, calendar
import engine_forms.models  # noqa: F401 - registers the form engine's tables on Base
import engine_reports.models  # noqa: F401 - reports, dashboards, versions, deliveries
import engine_rules.models  # noqa: F401 - rules, their runs, action runs, notifications
import platform_core.channels.models  # noqa: F401 - channel settings (SMTP, SMS, WeCom)
import platform_core.security.models  # noqa: F401 - identity and audit tables
import platform_core.webhooks.models  # noqa: F401 - webhook subscriptions and deliveries
from platform_core.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:  # noqa: ANN001 - alembic hands us a Connection
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
