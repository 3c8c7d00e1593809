"""``qiao user|token|audit|keys``: identity, tokens, the audit log, encryption keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from platform_core.cli_support import (
    cli_actor,
    database,
    domain,
    fail,
    prepare,
    read_settings,
)
from platform_core.settings import Settings

user_app = typer.Typer(help="Users: add, reset a password, unlock, disable.",
                       no_args_is_help=True)
token_app = typer.Typer(help="API tokens for integrators: create, list, revoke.",
                        no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="Field-encryption keys: status, rotation.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    username: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    mobile: Annotated[str | None, typer.Option(help="Mobile number.")] = None,
    role: Annotated[list[str] | None, typer.Option(help="Role key (repeatable).")] = None,
) -> None:
    """Add a user with a one-time password (printed once)."""
    from platform_core.security.users import create_user

    settings = read_settings()
    prepare(settings)

    def act() -> str | None:
        with database(settings).write() as session:
            return create_user(session, username=username, display_name=name or username,
                               password=None, actor=cli_actor(), mobile=mobile,
                               roles=tuple(role or ()))[1]

    typer.echo(f"qiao: user {username} created; one-time password: {domain(act)}")
    typer.echo(f"qiao: sign in at {settings.base_url}/login")


@user_app.command("reset-password")
def user_reset_password(username: str) -> None:
    """Give a user a new one-time password and unlock them."""
    from platform_core.security.users import reset_password

    settings = read_settings()
    prepare(settings)

    def act() -> str:
        with database(settings).write() as session:
            return reset_password(session, username=username, actor=cli_actor())

    typer.echo(f"qiao: new one-time password for {username}: {domain(act)}")


@user_app.command("disable")
def user_disable(username: str) -> None:
    """Disable a user: they cannot sign in any more."""
    from platform_core.security.users import disable_user

    settings = read_settings()
    prepare(settings)

    def act() -> None:
        with database(settings).write() as session:
            disable_user(session, username=username, actor=cli_actor())

    domain(act)
    typer.echo(f"qiao: user {username} disabled")


@user_app.command("unlock")
def user_unlock(
    username: str,
    client: Annotated[str | None, typer.Option(
        help="Also lift the lock-out of this client address.")] = None,
) -> None:
    """Lift a sign-in lock-out (after too many failed attempts)."""
    from platform_core.security.auth import unlock
    from platform_core.security.users import get_user

    settings = read_settings()
    prepare(settings)

    def act() -> None:
        with database(settings).write() as session:
            unlock(session, user=get_user(session, username), client=client,
                   actor=cli_actor())

    domain(act)
    typer.echo(f"qiao: user {username} unlocked" + (f" and client {client}" if client else ""))


def parse_expiry(text: str) -> datetime | None:
    """``90d``, ``12h``, ``never`` or an ISO date → the moment the token expires."""
    from platform_core.models import utcnow

    text = text.strip().lower()
    if text == "never":
        return None
    match = re.fullmatch(r"(\d{1,5})([dh])", text)
    if match:
        amount = int(match[1])
        return utcnow() + (timedelta(days=amount) if match[2] == "d"
                           else timedelta(hours=amount))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--expires: expected 90d, 12h, never or an ISO date, not {text!r}")
        raise
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_scopes(values: list[str]) -> dict[str, object]:
    """``app:crm``, ``form:crm.customer``, ``read``, ``write`` → a token's scopes."""
    scopes: dict[str, object] = {"apps": [], "forms": [], "access": "read"}
    for value in values:
        kind, _, name = value.partition(":")
        if value in ("read", "write"):
            scopes["access"] = value
        elif kind == "app" and re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
            scopes["apps"].append(name)  # type: ignore[union-attr]
        elif kind == "form" and re.fullmatch(r"[a-z][a-z0-9_]{0,63}\.[a-z][a-z0-9_]{0,63}", name):
            scopes["forms"].append(name)  # type: ignore[union-attr]
        else:
            fail(f"--scope: expected app:<app>, form:<app>.<form>, read or write, not "
                 f"{value!r}")
    return scopes


@token_app.command("create")
def token_create(
    username: str,
    scope: Annotated[list[str] | None, typer.Option(
        help="app:<app>, form:<app>.<form>, read (default) or write; repeatable.")] = None,
    expires: Annotated[str, typer.Option(help="90d, 12h, never or an ISO date.")] = "90d",
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
) -> None:
    """Create an API token for USER; the secret is printed once, only its hash is kept."""
    from platform_core.security.auth import issue_token
    from platform_core.security.users import get_user

    settings = read_settings()
    prepare(settings)
    scopes, expires_at = parse_scopes(scope or []), parse_expiry(expires)

    def act() -> tuple[int, str]:
        with database(settings).write() as session:
            user = get_user(session, username)
            row, secret = issue_token(session, user_id=user.id, name=name, scopes=scopes,
                                      expires_at=expires_at, actor=cli_actor())
            return row.id, secret

    token_id, secret = domain(act)
    until = expires_at.isoformat() if expires_at else "never"
    typer.echo(f"qiao: token {token_id} for {username} ({scopes['access']}; expires {until}):")
    typer.echo(secret)
    typer.echo("qiao: it is shown only now; send it as 'Authorization: Bearer <token>'")


@token_app.command("list")
def token_list(username: Annotated[str | None, typer.Argument()] = None) -> None:
    """Tokens (all, or USER's): id, owner, scopes, expiry, last use, revocation."""
    from sqlalchemy import select

    from platform_core.security.models import ApiToken, User

    settings = read_settings()
    prepare(settings)
    with database(settings).read() as session:
        query = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
        if username:
            query = query.where(User.username == username)
        rows = session.execute(query.order_by(ApiToken.id)).all()
    for token, owner in rows:
        state = "revoked" if token.revoked_at else "active"
        typer.echo(f"{token.id}\t{owner}\t{token.kind}\t{token.prefix}…\t{state}\t"
                   f"expires {token.expires_at or 'never'}\tlast used "
                   f"{token.last_used_at or 'never'}\t{token.scopes}")


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token: refused from the very next request."""
    from platform_core.errors import NotFound
    from platform_core.security.auth import revoke_token
    from platform_core.security.models import ApiToken

    settings = read_settings()
    prepare(settings)

    def act() -> None:
        with database(settings).write() as session:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise NotFound(f"token {token_id} does not exist")
            revoke_token(session, row, actor=cli_actor())

    domain(act)
    typer.echo(f"qiao: token {token_id} revoked")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit log's hash chain; name the first edited or deleted entry."""
    from platform_core.security.audit import verify

    settings = read_settings()
    prepare(settings)
    with database(settings).read() as session:
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
        fail(str(exc))


def _key_source(keyring) -> str:  # noqa: ANN001
    return "QIAO_ENCRYPTION_KEYS" if keyring.source == "env" else f"the key file {keyring.source}"


@keys_app.command("status")
def keys_status() -> None:
    """Where the keys come from, the current key, how many values each key seals, and
    the values no key opens, per field (then the exit code is 1)."""
    from platform_core.security.inventory import by_field, unopenable
    from platform_core.security.rotation import sealed_counts

    settings = read_settings()
    prepare(settings)
    keyring = _keyring(settings)
    counts = sealed_counts(database(settings))
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
                   f"history {per['record_history']}, outbox {per['outbox']}, "
                   f"secrets {per['secrets']}, idempotent responses {per['idempotency']})")
    if old:
        typer.echo(f"qiao: {old} values are under older keys: run `qiao keys rotate`")
    elif len(keyring.keys) > 1:
        typer.echo("qiao: every sealed value is under the current key; older keys may be "
                   "removed once no backup you may restore still needs them")
    found = unopenable(database(settings), keyring)
    if found:
        typer.echo(f"qiao: {sum(found.values())} sealed values cannot be opened with these "
                   "keys (they show as unavailable); put the missing keys back in "
                   f"{_key_source(keyring)}:")
        for line in by_field(found):
            typer.echo(f"  {line}")
        raise typer.Exit(1)


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

    settings = read_settings()
    prepare(settings)
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
                fail(str(exc))
        typer.echo(f"qiao: keys come from QIAO_ENCRYPTION_KEYS; re-encrypting to its last "
                   f"key {keyring.current}")
    elif new_key:
        try:
            added = keyring.add_key(settings)
        except (KeyringError, OSError) as exc:
            fail(str(exc))
        keyring = Keyring.load(settings)
        typer.echo(f"qiao: added key {added} to {keyring.source}; it is now the current key")
    else:
        typer.echo(f"qiao: re-encrypting to the current key {keyring.current}")

    def report(done: int, total: int) -> None:
        typer.echo(f"qiao: rotated {done}/{total} rows…")

    result = domain(lambda: rotate(database(settings), keyring, batch=batch,
                                    progress=report))
    typer.echo(f"qiao: re-encrypted {result.total_reencrypted} values under "
               f"{result.current} (records {result.reencrypted['records']}, history "
               f"{result.reencrypted['record_history']}, outbox {result.reencrypted['outbox']}, "
               f"secrets {result.reencrypted['secrets']}, idempotent responses "
               f"{result.reencrypted['idempotency']}; "
               f"{result.total_scanned} rows scanned)")
    typer.echo("qiao: keep the old keys until rotation has finished (`qiao keys status` shows "
               "none left under them) and no backup you may restore needs them; then they "
               f"can be removed from {_key_source(keyring)}")
