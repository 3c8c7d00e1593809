"""The ``qiao`` command line: init, serve, db upgrade, version."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from platform_core import __version__
from platform_core.db import make_engine
from platform_core.settings import Settings, SettingsError, ensure_secret_key, load_settings

app = typer.Typer(help="Qiao (桥): a self-hosted no-code platform.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _fail(message: str) -> None:
    typer.echo(f"qiao: {message}", err=True)
    raise typer.Exit(2)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        _fail(str(exc))
        raise  # unreachable; for type checkers


def _prepare(settings: Settings) -> None:
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
        _fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        _fail(f"cannot prepare the database at {_safe_url(settings)}: "
              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.effective_database_url).render_as_string(hide_password=True)


@app.command()
def init() -> None:
    """Create the data directory, the secret key file and the database schema."""
    settings = _settings()
    _prepare(settings)
    typer.echo(f"qiao: ready — data in {settings.data_dir.resolve()}, "
               f"database {_safe_url(settings)}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (QIAO_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (QIAO_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Web worker processes.")] = 1,
) -> None:
    """Migrate the database, then serve the web app (and, later, its background work)."""
    import uvicorn

    if host is not None:
        os.environ["QIAO_HOST"] = host
    if port is not None:
        os.environ["QIAO_PORT"] = str(port)
    settings = _settings()
    _prepare(settings)
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    typer.echo(f"qiao: serving on http://{settings.host}:{settings.port} "
               f"(database {_safe_url(settings)})")
    uvicorn.run("platform_core.app:create_app_from_env", factory=True, host=settings.host,
                port=settings.port, workers=workers, log_level=settings.log_level,
                access_log=False)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the configured database."""
    settings = _settings()
    _prepare(settings)
    typer.echo("qiao: database is at the latest revision")


@app.command()
def version() -> None:
    """Print Qiao's version."""
    typer.echo(f"qiao {__version__} (Python {sys.version.split()[0]})")


def main() -> None:
    app()
