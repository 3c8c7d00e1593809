"""The ``qiao`` command line: init, serve, db upgrade, backup, restore, version (and the
security commands of ``cli_security``: user, token, audit, keys)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from platform_core import __version__
from platform_core.cli_security import audit_app, keys_app, token_app, user_app
from platform_core.cli_support import database, domain, fail, prepare, read_settings, safe_url
from platform_core.settings import Settings

app = typer.Typer(help="Qiao (桥): a self-hosted no-code platform.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")


def configure_logging(settings: Settings) -> None:
    """The process's log lines at ``QIAO_LOG_LEVEL``. APScheduler says at INFO that each
    background job ran (once a second); that belongs to ``debug``, not to an operator's
    journal, so its loggers stay at WARNING unless the level is ``debug``."""
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("apscheduler").setLevel(
        logging.DEBUG if settings.log_level == "debug" else logging.WARNING)


@app.command()
def init() -> None:
    """Create the data directory, the secret key, the schema and the first admin."""
    settings = read_settings()
    prepare(settings)
    _first_admin(settings)
    typer.echo(f"qiao: ready — data in {settings.data_dir.resolve()}, "
               f"database {safe_url(settings)}")
    typer.echo(f"qiao: keep the key file {settings.effective_secret_key_file.resolve()} "
               "safe and apart from database backups")


def _first_admin(settings: Settings) -> None:
    from platform_core.errors import DomainError
    from platform_core.security.users import ensure_admin

    try:
        with database(settings).write() as session:
            one_time = ensure_admin(session, password=os.environ.get("QIAO_ADMIN_PASSWORD"))
    except DomainError as exc:  # a password the policy refuses: one line, not a traceback
        fail(f"QIAO_ADMIN_PASSWORD cannot be the first admin's password: {exc.detail}")
        return
    if one_time:
        typer.echo(f"qiao: created user admin with the one-time password {one_time} "
                   "(change it at first sign-in)")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (QIAO_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (QIAO_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Web worker processes.")] = 1,
    demo: Annotated[bool, typer.Option(
        "--demo", help="First install the CRM template with its demo data (once).")] = False,
) -> None:
    """Migrate the database, then serve the web app and its background work."""
    import uvicorn

    if host is not None:
        os.environ["QIAO_HOST"] = host
    if port is not None:
        os.environ["QIAO_PORT"] = str(port)
    settings = read_settings()
    prepare(settings)
    _first_admin(settings)
    if demo:
        _plugged("qiao.demo", "demo")()
    configure_logging(settings)
    typer.echo(f"qiao: serving on http://{settings.host}:{settings.port} "
               f"(database {safe_url(settings)})")
    uvicorn.run("platform_core.app:create_app_from_env", factory=True, host=settings.host,
                port=settings.port, workers=workers, log_level=settings.log_level,
                access_log=False)


@app.command()
def worker(
    once: Annotated[bool, typer.Option(
        "--once", help="Do the work that is due now, then exit (for cron or a test).")] = False,
) -> None:
    """Run the background work (outbox dispatcher, webhook deliveries) without serving
    pages — beside web processes started with QIAO_BACKGROUND_JOBS=false."""
    import signal
    import threading

    from platform_core.app import create_app
    from platform_core.webhooks.background import BackgroundJobs, http_client, run_background

    settings = read_settings()
    prepare(settings)
    configure_logging(settings)
    ctx = create_app(settings).state.qiao
    jobs = BackgroundJobs(ctx)
    if once:
        done = total = 0
        with http_client() as client:
            while (done := run_background(ctx, dispatcher=jobs.dispatcher, client=client)):
                total += done
        typer.echo(f"qiao: background work done ({total} steps)")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    jobs.start()
    typer.echo("qiao: background worker running (Ctrl-C or SIGTERM to stop)")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    jobs.stop()
    typer.echo("qiao: background worker stopped")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations to the configured database."""
    settings = read_settings()
    prepare(settings)
    typer.echo("qiao: database is at the latest revision")


@app.command("backup")
def backup_command(path: Path) -> None:
    """Write a consistent backup (database + attachments) while the server runs."""
    from platform_core.backup import backup

    settings = read_settings()
    prepare(settings)
    manifest = domain(lambda: backup(settings, path))
    typer.echo(f"qiao: backup written to {path} ({manifest['dialect']}, schema "
               f"{manifest['schema_revision']})")
    typer.echo(f"qiao: the key file {settings.effective_secret_key_file.resolve()} is NOT in "
               "the backup — keep a copy of it somewhere else")
    keys = ("QIAO_ENCRYPTION_KEYS" if settings.encryption_keys
            else str(settings.effective_encryption_key_file.resolve()))
    typer.echo(f"qiao: nor are the field-encryption keys ({keys}): without them the "
               "encrypted fields of this backup cannot be read — keep them apart from it")
    sealing = manifest["encryption"]["keys"]
    if sealing:
        typer.echo("qiao: its encrypted values are sealed with the keys "
                   + ", ".join(f"{kid} ({info['values']} values)"
                               for kid, info in sealing.items()))


@app.command("restore")
def restore_command(
    path: Path,
    allow_missing_keys: Annotated[bool, typer.Option(
        "--allow-missing-keys",
        help="Restore even when the encryption keys here cannot open the backup's "
             "encrypted values (they then show as unavailable).")] = False,
) -> None:
    """Replace the database and attachments with a backup's (stop the server first).

    Refused, before anything is replaced, when the field-encryption keys here lack a key
    the backup's values are sealed with (unless --allow-missing-keys).
    """
    from platform_core.backup import key_place, restore
    from platform_core.security.crypto import Keyring
    from platform_core.security.inventory import by_field, unopenable

    settings = read_settings()
    if not path.is_file():
        fail(f"no backup file at {path}")
    manifest = domain(lambda: restore(settings, path, allow_missing_keys=allow_missing_keys))
    prepare(settings)  # a backup from an older Qiao is migrated forward
    typer.echo(f"qiao: restored the backup of {manifest['created_at']} from {path}")
    # Checked again on the restored data: an older backup's manifest names no keys.
    found = unopenable(database(settings), Keyring.find(settings))
    if found:
        typer.echo(f"qiao: WARNING: {sum(found.values())} encrypted values cannot be opened "
                   f"with the keys of {key_place(settings)}; they show as unavailable "
                   "until those keys are back:", err=True)
        for line in by_field(found):
            typer.echo(f"  {line}", err=True)


@app.command()
def version() -> None:
    """Print Qiao's version."""
    typer.echo(f"qiao {__version__} (Python {sys.version.split()[0]})")


def _plugged(group: str, name: str):  # noqa: ANN202 - whatever the entry point holds
    """Entry point ``name`` of ``group``: what a higher layer (templates_catalog) lends the
    CLI, which cannot import it."""
    from importlib.metadata import entry_points

    found = [e for e in entry_points(group=group) if e.name == name]
    if not found:
        fail(f"{group}:{name} is not installed (pip install -e . registers it)")
    return found[0].load()


def main() -> None:
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group="qiao.cli"), key=lambda e: e.name):
        entry.load()(app)
    app()
