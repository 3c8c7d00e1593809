"""``qiao user handover FROM --to A --to B``: a staff handover from the command line
(entry point ``qiao.cli``: platform_core's CLI finds it there and this adds the command
to its ``user`` group). Users by username; the command line acts as the system (no
department limits). Prints the preview, then — without ``--dry-run`` — the result."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from platform_core.cli_support import cli_actor, domain, fail, prepare, read_settings


def register(app: typer.Typer) -> None:  # noqa: ARG001 - the qiao.cli signature
    from platform_core.cli_security import user_app

    if not any(c.name == "handover" for c in user_app.registered_commands):
        user_app.command("handover")(handover)


def _lines(doc: dict[str, Any], verb: str) -> list[str]:
    names = {str(u["id"]): u["username"] for u in doc["to"]}

    def split(counts: dict[str, int]) -> str:
        return ", ".join(f"{names[u]} {n}" for u, n in counts.items())

    lines = [f"{f['app']}.{f['form']}: {f['count']} record(s) {verb} → {split(f['by_user'])}"
             for f in doc["forms"]]
    lines.append(f"records: {doc['records']} ({split(doc['records_by_user'])})")
    lines.append(f"open tasks: {doc['tasks']} ({split(doc['tasks_by_user'])}); candidate "
                 f"rows: {doc['candidates']}; waiting signers: {doc['signers']}")
    lines += [f"skipped {s['app']}.{s['form']}: no update right there"
              for s in doc["skipped_forms"]]
    lines += [f"note: flow {r['app']}.{r['flow']} step {r['node']} names "
              f"{doc['from']['username']}; edit the flow to change it"
              for r in doc["flow_references"]]
    return lines


def handover(
    source: Annotated[str, typer.Argument(metavar="FROM", help="the leaving user")],
    to: Annotated[list[str], typer.Option("--to", help="a colleague (repeat)")],
    app: Annotated[str | None, typer.Option(help="only this app")] = None,
    form: Annotated[str | None, typer.Option(help="only this form (with --app)")] = None,
    split: Annotated[str, typer.Option(help="even")] = "even",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="preview only")] = False,
) -> None:
    """Hand over a user's records, open tasks and flow assignments to colleagues."""
    from platform_core.app import create_app
    from platform_core.models import utcnow
    from platform_core.security.users import get_user

    if form and not app:
        fail("--form needs --app")
    settings = read_settings()
    prepare(settings)
    db = create_app(settings).state.qiao.db
    from engine_flows import staff_handover as sh

    def wanted(session: Any) -> sh.Request:
        return sh.Request(source_id=get_user(session, source).id,
                          to=[get_user(session, name).id for name in to], split=split,
                          forms=[(app, form)] if app else None)

    def preview() -> dict[str, Any]:
        with db.read() as s:
            return sh.plan(s, None, wanted(s)).doc()

    typer.echo(f"qiao: handover of {source} (preview)")
    for line in _lines(domain(preview), "to move"):
        typer.echo(f"  {line}")
    if dry_run:
        return

    def act() -> dict[str, Any]:
        with db.write() as s:
            return sh.apply(s, None, wanted(s), actor=cli_actor(), now=utcnow(),
                            client="cli").doc()

    done = domain(act)
    typer.echo(f"qiao: handover of {source} done")
    for line in _lines(done, "moved"):
        typer.echo(f"  {line}")
