"""``qiao import …`` (entry point ``qiao.cli``: platform_core's CLI finds it there):

- ``qiao import FILE --app A --form F [--mapping NAME|FILE.json] [--mode upsert --key
  mobile] [--skip-invalid] [--dry-run] [--as USER]``: queue the file as a batch and run
  it in this process with a progress line (rows, rows/s, ETA);
- ``qiao import status ID`` · ``qiao import revert ID`` · ``qiao import resume ID`` (a
  batch whose worker died: continues after its last committed chunk).

Without ``--as`` the command line acts as the system (every right, like other ``qiao``
commands); with it, as that user with their rights as they are now.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from platform_core.cli_support import domain, fail, prepare, read_settings

ACTIONS = ("status", "revert", "resume")


def register(app: typer.Typer) -> None:
    if not any(c.name == "import" for c in app.registered_commands):
        app.command("import", help="Import a spreadsheet (or: status|revert|resume ID).")(
            import_command)


def _caller(s: Any, ctx: Any, app: str, form: str, username: str | None) -> Any:
    from sqlalchemy import select

    from engine_forms.imports.chunks import system_principal
    from engine_forms.service import Caller
    from platform_core.security.models import User
    from platform_core.security.principal import load_principal

    if username is None:
        principal = system_principal()
    else:
        user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None or user.status != "active":
            fail(f"no active user {username!r}")
        principal = load_principal(s, user, via="session")
    return Caller(principal, principal.access(app, form), ctx.keyring, client="cli")


def _line(batch: Any, started: float) -> None:
    done, total = batch.rows_done, batch.rows_total
    rate = done / max(time.monotonic() - started, 1e-3)
    eta = f"{(total - done) / rate:.0f}s" if total and rate and total > done else "-"
    width = 30
    bar = "#" * int(width * done / total) if total else ""
    sys.stderr.write(f"\r[{bar:<{width}}] {done}/{total or '?'} rows  {rate:,.0f} rows/s  "
                     f"ETA {eta}   ")
    sys.stderr.flush()


def _run(ctx: Any, batch_id: int, *, force: bool = False) -> dict[str, Any]:
    from engine_forms.imports import runner
    from engine_forms.imports.service import describe
    from engine_forms.models import ImportBatch

    me = runner.worker_id("cli")
    if runner.claim(ctx.db, me, batch_id=batch_id, force=force) is None:
        fail(f"import {batch_id} is not queued or running (see qiao import status "
             f"{batch_id})")
    started = time.monotonic()
    runner.run(ctx.db, batch_id, me, keyring=ctx.keyring,
               progress=lambda b: _line(b, started))
    sys.stderr.write("\n")
    with ctx.db.read() as s:
        return describe(s, s.get(ImportBatch, batch_id))


def _summary(doc: dict[str, Any]) -> str:
    return (f"import {doc['id']}: {doc['status']}{' (dry run)' if doc['dry_run'] else ''} "
            f"— {doc['rows_done']} rows, {doc['created']} created, {doc['updated']} updated, "
            f"{doc['skipped']} skipped, {doc['failed']} with problems"
            f"{'; ' + doc['error'] if doc['error'] else ''}")


def _mapping(s: Any, pub: Any, value: str | None, header: list[str]) -> Any:
    from engine_forms.imports import mapping, service

    if value is None:
        return mapping.suggest(pub, header)
    if value.endswith(".json") and Path(value).exists():
        return service.parse_mapping(json.loads(Path(value).read_text(encoding="utf-8")))
    return mapping.get_mapping(s, pub, value)


def import_command(
    target: Annotated[str, typer.Argument(metavar="FILE|status|revert|resume",
                                          help="the spreadsheet, or an action on a batch")],
    batch: Annotated[int | None, typer.Argument(metavar="[ID]", help="the batch")] = None,
    app: Annotated[str | None, typer.Option(help="the app key")] = None,
    form: Annotated[str | None, typer.Option(help="the form key")] = None,
    mapping: Annotated[str | None, typer.Option(help="a saved mapping or a .json file "
                                                "(default: the suggested one)")] = None,
    mode: Annotated[str, typer.Option(help="insert | upsert | skip")] = "insert",
    key: Annotated[str | None, typer.Option(help="the unique field of upsert/skip")] = None,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="import the valid rows, report the others")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check only")] = False,
    sheet: Annotated[str | None, typer.Option(help="the sheet (default: the first)")] = None,
    name: Annotated[str | None, typer.Option(help="the batch's name")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="act as this user")] = None,
) -> None:
    """Import a spreadsheet into a form, or show, revert or resume an import."""
    from platform_core.app import create_app

    settings = read_settings()
    prepare(settings)
    ctx = create_app(settings).state.qiao
    if target in ACTIONS:
        if batch is None:
            fail(f"qiao import {target} needs the batch id")
        domain(lambda: _action(ctx, target, batch, as_user))
        return
    path = Path(target)
    if not path.is_file():
        fail(f"{target}: no such file")
    if not (app and form):
        fail("--app and --form name the form to import into")
    batch_id = domain(lambda: _start(ctx, path, app, form, mapping, mode, key, skip_invalid,
                                     dry_run, sheet, name, as_user))
    typer.echo(f"import {batch_id}: started", err=False)
    sys.stdout.flush()
    doc = domain(lambda: _run(ctx, batch_id))
    typer.echo(_summary(doc))
    if doc["status"] not in ("done",):
        raise typer.Exit(1)


def _start(ctx: Any, path: Path, app: str, form: str, mapping: str | None, mode: str,
           key: str | None, skip_invalid: bool, dry_run: bool, sheet: str | None,
           name: str | None, as_user: str | None) -> int:
    from engine_forms.forms import published
    from engine_forms.imports import service
    from engine_forms.imports.reading import open_table

    with path.open("rb") as stream:
        saved = service.upload(ctx.settings.data_dir, path.name, stream,
                               limit=2**62)  # the command line has no upload limit
    options = service.ImportOptions(mode=mode, key=key, atomic=not skip_invalid, sheet=sheet)
    with ctx.db.write() as s:
        pub = published(s, app, form)
        caller = _caller(s, ctx, app, form, as_user)
        table = open_table(saved, filename=path.name, sheet=sheet)
        batch = service.start(s, caller, pub, path=saved, filename=path.name,
                              mapping=_mapping(s, pub, mapping, table.header),
                              options=options, dry_run=dry_run, name=name)
        return batch.id


def _action(ctx: Any, action: str, batch_id: int, as_user: str | None) -> None:
    from engine_forms.forms import published
    from engine_forms.imports import service
    from engine_forms.models import ImportBatch

    if action == "resume":
        typer.echo(_summary(_run(ctx, batch_id, force=True)))
        return
    with ctx.db.write() as s:
        found = s.get(ImportBatch, batch_id)
        if found is None:
            fail(f"import {batch_id} does not exist")
        pub = published(s, found.app, found.form)
        caller = _caller(s, ctx, found.app, found.form, as_user)
        if action == "status":
            typer.echo(json.dumps(service.status(s, caller, pub, batch_id),
                                  ensure_ascii=False, indent=2))
            return
        report = service.revert(s, caller, pub, batch_id)
    typer.echo(f"import {batch_id}: reverted — {report['removed']} removed, "
               f"{report['restored']} restored, {len(report['skipped'])} left alone")
    for item in report["skipped"][:50]:
        typer.echo(f"  row {item['row']} record {item['record_id']}: {item['reason_en']}")
