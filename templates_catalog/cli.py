"""``qiao template list|install|export`` and the demo behind ``qiao serve --demo``
(entry points ``qiao.cli`` and ``qiao.demo``: platform_core's CLI finds them there)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from platform_core.cli_support import cli_actor, domain, fail, prepare, read_settings
from templates_catalog.bundle import Bundle, catalog, load_bundle, template, write_bundle

DEMO_TEMPLATE = "bank_intermediary_crm"

template_app = typer.Typer(help="App templates: list, install, export.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(template_app, name="template")


def _context(*, migrate: bool = True) -> Any:
    """The configured installation, migrated (unless the caller just did), with every
    engine registered."""
    from platform_core.app import create_app

    settings = read_settings()
    if migrate:
        prepare(settings)
    return create_app(settings).state.qiao


def _bundle(name: str) -> Bundle:
    path = Path(name)
    return domain(lambda: load_bundle(path) if path.is_dir() else template(name))


@template_app.command("list")
def list_templates() -> None:
    """The templates that come with Qiao."""
    for name, path in catalog().items():
        bundle = domain(lambda path=path: load_bundle(path))
        counts = ", ".join(f"{len(bundle.kind(k))} {k}" for k in
                           ("forms", "flows", "rules", "reports", "dashboards"))
        typer.echo(f"{name}  app {bundle.key!r} {bundle.app['version']}  "
                   f"{bundle.app['name']}  ({counts}{', demo data' if bundle.demo else ''})")


def _install(ctx: Any, bundle: Bundle, name: str, key: str | None, demo: bool, *,
             settle_now: bool = True) -> None:
    from templates_catalog.service import install_bundle_into

    def say(line: str) -> None:
        typer.echo(f"qiao: {'' if line.startswith('installed') else 'demo: '}{line}")

    done = domain(lambda: install_bundle_into(ctx, bundle, name=name, key=key, demo=demo,
                                              actor=cli_actor(), progress=say,
                                              settle_now=settle_now))
    if done.demo is not None:
        typer.echo(f"qiao: demo: {done.demo['cases']} cases in the loan flow, "
                   f"{done.demo['open_tasks']} open tasks")
        if done.demo["users"]:
            typer.echo(f"qiao: demo users {', '.join(done.demo['users'])} — all with the "
                       f"password {done.demo['password']}")


@template_app.command("install")
def install_template(
    name: Annotated[str, typer.Argument(help="A template name (qiao template list) or a "
                                        "bundle folder.")],
    key: Annotated[str | None, typer.Option(help="The new app's key (default: the "
                                            "bundle's).")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Also load its demo data.")] = False,
) -> None:
    """Install a template as a new app (one transaction: all of it or nothing)."""
    bundle = _bundle(name)
    _install(_context(), bundle, Path(name).name, key, demo)


@template_app.command("export")
def export_app(app: str, path: Path) -> None:
    """Write app APP as a bundle folder at PATH (installable again with `install`)."""
    from templates_catalog.install import export

    ctx = _context()

    def run() -> Bundle:
        with ctx.db.read() as session:
            return export(session, app)

    bundle = domain(run)
    if path.exists() and not path.is_dir():
        fail(f"{path} exists and is not a folder")
    write_bundle(bundle, path)
    typer.echo(f"qiao: app {app!r} exported to {path}")


def install_demo() -> None:
    """``qiao serve --demo``: the CRM template with its demo data, unless app ``crm`` is
    there already (then it is left as it is). ``serve`` has migrated the database just
    before."""
    from engine_forms.models import App

    ctx = _context(migrate=False)
    bundle = domain(lambda: template(DEMO_TEMPLATE))
    with ctx.db.read() as session:
        if session.get(App, bundle.key) is not None:
            typer.echo(f"qiao: demo: app {bundle.key!r} is installed already")
            return
    # the server starting next handles the demo's events (the rules' statuses, reminders
    # and notices) in its first seconds, as it handles every event: the newcomer does not
    # wait for them before the first page
    _install(ctx, bundle, DEMO_TEMPLATE, None, True,
             settle_now=not ctx.settings.background_jobs)
