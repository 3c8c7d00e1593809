"""The ``qiao`` command line: init, serve, db upgrade, version, keys."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from platform_core import __version__
from platform_core.db import make_engine
from platform_core.settings import Settings, SettingsError, ensure_secret_key, load_settings

app = typer.Typer(help="Qiao (桥): a self-hosted no-code platform.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
user_app = typer.Typer(help="Users: add, reset a password, disable.", no_args_is_help=True)
app.add_typer(user_app, name="user")
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
keys_app = typer.Typer(help="Field-encryption keys: status, rotation.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
CLI_ACTOR_NAME = "qiao cli"


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
    """Create the data directory, the secret key, the schema and the first admin."""
    settings = _settings()
    _prepare(settings)
    _first_admin(settings)
    typer.echo(f"qiao: ready — data in {settings.data_dir.resolve()}, "
               f"database {_safe_url(settings)}")
    typer.echo(f"qiao: keep the key file {settings.effective_secret_key_file.resolve()} "
               "safe and apart from database backups")


def _first_admin(settings: Settings) -> None:
    from platform_core.security.users import ensure_admin

    with _database(settings).write() as session:
        one_time = ensure_admin(session, password=os.environ.get("QIAO_ADMIN_PASSWORD"))
    if one_time:
        typer.echo(f"qiao: created user admin with the one-time password {one_time} "
                   "(change it at first sign-in)")


def _database(settings: Settings):  # noqa: ANN202 - platform_core.db.Database
    from platform_core.db import Database

    return Database.from_url(settings.effective_database_url)


def _domain(action):  # noqa: ANN001, ANN202 - run a CLI action, domain errors as one line
    from platform_core.errors import DomainError

    try:
        return action()
    except DomainError as exc:
        _fail(exc.detail)


def _cli_actor():  # noqa: ANN202
    from platform_core.store import Actor

    return Actor(user_id=None, name=CLI_ACTOR_NAME)


@user_app.command("add")
def user_add(
    username: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    mobile: Annotated[str | None, typer.Option(help="Mobile number.")] = None,
    role: Annotated[list[str] | None, typer.Option(help="Role key (repeatable).")] = None,
) -> None:
    """Add a user with a one-time password (printed once)."""
    from platform_core.security.users import create_user

    settings = _settings()
    _prepare(settings)

    def act() -> str | None:
        with _database(settings).write() as session:
            return create_user(session, username=username, display_name=name or username,
                               password=None, actor=_cli_actor(), mobile=mobile,
                               roles=tuple(role or ()))[1]

    typer.echo(f"qiao: user {username} created; one-time password: {_domain(act)}")


@user_app.command("reset-password")
def user_reset_password(username: str) -> None:
    """Give a user a new one-time password and unlock them."""
    from platform_core.security.users import reset_password

    settings = _settings()
    _prepare(settings)

    def act() -> str:
        with _database(settings).write() as session:
            return reset_password(session, username=username, actor=_cli_actor())

    typer.echo(f"qiao: new one-time password for {username}: {_domain(act)}")


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable a user: they cannot sign in any more."""
    from platform_core.security.users import disable_user

    settings = _settings()
    _prepare(settings)

    def act() -> None:
        with _database(settings).write() as session:
            disable_user(session, username=username, actor=_cli_actor())

    _domain(act)
    typer.echo(f"qiao: user {username} disabled")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain; name the first edited or deleted entry."""
    from platform_core.security.audit import verify

    settings = _settings()
    _prepare(settings)
    with _database(settings).read() as session:
        checked, broken = verify(session)
    if broken is not None:
        typer.echo(f"qiao: audit log BROKEN at entry {broken.entry_id}: {broken.reason} "
                   f"({checked} entries before it are intact)", err=True)
        raise typer.Exit(1)
    typer.echo(f"qiao: audit log intact ({checked} entries)")


def _keyring(settings: Settings):  # noqa: ANN202 - platform_core.security.crypto.Keyring
    from platform_core.security.crypto import Keyring, KeyringError

    try:
        return Keyring.load(settings)
    except (KeyringError, OSError) as exc:
        _fail(str(exc))


def _key_source(keyring) -> str:  # noqa: ANN001
    return "QIAO_ENCRYPTION_KEYS" if keyring.source == "env" else f"the key file {keyring.source}"


@keys_app.command("status")
def keys_status() -> None:
    """Where the keys come from, the current key, and how many values each key seals."""
    from platform_core.security.rotation import sealed_counts

    settings = _settings()
    _prepare(settings)
    keyring = _keyring(settings)
    counts = sealed_counts(_database(settings))
    typer.echo(f"qiao: keys from {_key_source(keyring)}; current key {keyring.current}")
    typer.echo(f"qiao: keys known: {', '.join(keyring.keys)}")
    found = {kid for per_table in counts.values() for kid in per_table}
    old = 0
    for kid in [*keyring.keys, *sorted(found - set(keyring.keys))]:
        per = {table: per_table[kid] for table, per_table in counts.items()}
        total = sum(per.values())
        old += total if kid != keyring.current else 0
        mark = (" (current)" if kid == keyring.current
                else "" if kid in keyring.keys else " (NOT IN THE KEYRING)")
        typer.echo(f"  {kid}{mark}: {total} sealed values (records {per['records']}, "
                   f"history {per['record_history']}, outbox {per['outbox']})")
    if old:
        typer.echo(f"qiao: {old} values are under older keys: run `qiao keys rotate`")
    elif len(keyring.keys) > 1:
        typer.echo("qiao: every sealed value is under the current key; older keys may be "
                   "removed once no backup you may restore still needs them")


@keys_app.command("rotate")
def keys_rotate(
    new_key: Annotated[bool | None, typer.Option(
        "--new-key/--no-new-key",
        help="Add a new key first (default with a key file; with QIAO_ENCRYPTION_KEYS, "
             "append the new key there yourself).")] = None,
    batch: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 500,
) -> None:
    """Re-encrypt every sealed value under the current key (after adding a new one)."""
    from platform_core.security.crypto import Keyring, KeyringError
    from platform_core.security.rotation import rotate

    settings = _settings()
    _prepare(settings)
    keyring = _keyring(settings)
    from_env = keyring.source == "env"
    if new_key is None:
        new_key = not from_env
    if from_env:
        if new_key and len(keyring.keys) < 2:
            # Nothing newer to rotate to: the operator has to add the key to the env.
            try:
                keyring.add_key(settings)
            except KeyringError as exc:
                _fail(str(exc))
        typer.echo(f"qiao: keys come from QIAO_ENCRYPTION_KEYS; re-encrypting to its last "
                   f"key {keyring.current}")
    elif new_key:
        try:
            added = keyring.add_key(settings)
        except (KeyringError, OSError) as exc:
            _fail(str(exc))
        keyring = Keyring.load(settings)
        typer.echo(f"qiao: added key {added} to {keyring.source}; it is now the current key")
    else:
        typer.echo(f"qiao: re-encrypting to the current key {keyring.current}")

    def report(done: int, total: int) -> None:
        typer.echo(f"qiao: rotated {done}/{total} rows…")

    result = _domain(lambda: rotate(_database(settings), keyring, batch=batch,
                                    progress=report))
    typer.echo(f"qiao: re-encrypted {result.total_reencrypted} values under "
               f"{result.current} (records {result.reencrypted['records']}, history "
               f"{result.reencrypted['record_history']}, outbox {result.reencrypted['outbox']}; "
               f"{result.total_scanned} rows scanned)")
    typer.echo("qiao: keep the old keys until rotation has finished (`qiao keys status` shows "
               "none left under them) and no backup you may restore needs them; then they "
               f"can be removed from {_key_source(keyring)}")


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
    _first_admin(settings)
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


@app.command("backup")
def backup_command(path: Path) -> None:
    """Write a consistent backup (database + attachments) while the server runs."""
    from platform_core.backup import backup

    settings = _settings()
    _prepare(settings)
    manifest = _domain(lambda: backup(settings, path))
    typer.echo(f"qiao: backup written to {path} ({manifest['dialect']}, schema "
               f"{manifest['schema_revision']})")
    typer.echo(f"qiao: the key file {settings.effective_secret_key_file.resolve()} is NOT in "
               "the backup — keep a copy of it somewhere else")


@app.command("restore")
def restore_command(path: Path) -> None:
    """Replace the database and attachments with a backup's (stop the server first)."""
    from platform_core.backup import restore

    settings = _settings()
    if not path.is_file():
        _fail(f"no backup file at {path}")
    manifest = _domain(lambda: restore(settings, path))
    _prepare(settings)  # a backup from an older Qiao is migrated forward
    typer.echo(f"qiao: restored the backup of {manifest['created_at']} from {path}")


@app.command()
def version() -> None:
    """Print Qiao's version."""
    typer.echo(f"qiao {__version__} (Python {sys.version.split()[0]})")


def main() -> None:
    app()
