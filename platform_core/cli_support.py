"""What every ``qiao`` command shares: settings, migration, one-line errors."""

from __future__ import annotations

import typer

from platform_core.db import make_engine
from platform_core.settings import Settings, SettingsError, ensure_secret_key, load_settings

CLI_ACTOR_NAME = "qiao cli"


def fail(message: str) -> None:
    typer.echo(f"qiao: {message}", err=True)
    raise typer.Exit(2)


def read_settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc))
        raise  # unreachable; for type checkers


def prepare(settings: Settings) -> None:
    """Create the data directory and secret key, then migrate the database to head."""
    from platform_core.migrate import upgrade

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_secret_key(settings)
        engine = make_engine(settings.effective_database_url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    except SettingsError as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        fail(f"cannot prepare the database at {safe_url(settings)}: "
              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


def database(settings: Settings):  # noqa: ANN202 - platform_core.db.Database
    from platform_core.db import Database

    return Database.from_url(settings.effective_database_url)


def domain(action):  # noqa: ANN001, ANN202 - run a CLI action, domain errors as one line
    from platform_core.errors import DomainError

    try:
        return action()
    except DomainError as exc:
        fail(exc.detail)


def cli_actor():  # noqa: ANN202
    from platform_core.store import Actor

    return Actor(user_id=None, name=CLI_ACTOR_NAME)
