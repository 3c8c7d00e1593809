"""The template catalogue as the kernel's ``AppCatalog`` (platform_core.catalog): list,
install (with or without demo data, under a chosen key), export an app as a zip of its
bundle folder, install such a zip. The CLI, the API and the administration page all
install through ``install_bundle_into``, so an app installed from the page is the same
as one installed with ``qiao template install``."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from platform_core.catalog import Installed, Progress, TemplateInfo, register_catalog
from platform_core.errors import InvalidInput
from templates_catalog.bundle import Bundle, catalog, load_bundle, template, write_bundle

MAX_ZIP_BYTES = 20 * 1024 * 1024
MAX_FILES = 2000
KINDS = ("forms", "flows", "rules", "reports", "dashboards")


def info(name: str, bundle: Bundle) -> TemplateInfo:
    return TemplateInfo(name=name, key=bundle.key, title=bundle.app["name"],
                        version=bundle.app["version"],
                        description=bundle.app.get("description") or "",
                        counts={k: len(bundle.kind(k)) for k in KINDS},
                        demo=bundle.demo is not None)


def settle(ctx: Any, progress: Progress) -> None:
    """Let the rules react to the demo's events now (statuses, reminders,
    notifications), so the demo is settled before anyone uses it."""
    from platform_core.outbox import Dispatcher
    from platform_core.webhooks.events import register_builtins

    register_builtins()
    dispatcher, done = Dispatcher.from_registry(ctx.db, context=ctx, batch=500,
                                                budget_seconds=5.0), 0
    while step := dispatcher.run_once():
        done += step
        if done // 1000 != (done - step) // 1000:
            progress(f"rules ran over {done} events")
    progress(f"rules ran over all {done} events")


def install_bundle_into(ctx: Any, bundle: Bundle, *, name: str | None, key: str | None,
                        demo: bool, actor: Any, progress: Progress,
                        settle_now: bool = True) -> Installed:
    """Install ``bundle`` as a new app (one transaction), then its demo data if asked;
    ``settle_now=False`` leaves the demo's events to the dispatcher of the server about to
    start (``qiao serve --demo``: it handles them in its first seconds)."""
    from templates_catalog.demo import load_demo
    from templates_catalog.install import install

    if demo and bundle.demo is None:
        raise InvalidInput("this template has no demo data", field="demo")
    with ctx.db.write() as session:
        row = install(session, bundle, actor=actor, key=key, template=name)
        app = row.key
        progress(f"installed app {app!r} from {name or 'a bundle'} {bundle.app['version']}")
        result = None
        if demo:
            progress("loading the demo data (a minute at most)…")
            result = load_demo(session, bundle, app=app, keyring=ctx.keyring, actor=actor,
                               progress=progress)
    summary = None
    if result is not None:
        if settle_now:
            settle(ctx, progress)
        else:
            progress("the server's dispatcher runs the rules over the demo's events as it "
                     "starts")
        summary = {"cases": result.flows, "open_tasks": result.open_tasks,
                   "users": list(result.users), "password": result.password}
    return Installed(app=app, template=name, version=bundle.app["version"], demo=summary)


def bundle_zip(bundle: Bundle) -> bytes:
    """``bundle`` written as a folder, zipped (what ``qiao template install`` reads once
    unzipped, and what ``install_bundle`` takes)."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="qiao_bundle_") as tmp:
        root = Path(tmp) / bundle.key
        write_bundle(bundle, root)
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    archive.write(path, str(PurePosixPath(bundle.key) /
                                            path.relative_to(root).as_posix()))
    return buffer.getvalue()


def read_zip(data: bytes, folder: Path) -> Path:
    """Unpack a bundle zip into ``folder`` (refusing paths outside it, links and sizes
    no bundle has); the bundle's own folder."""
    if len(data) > MAX_ZIP_BYTES:
        raise InvalidInput(f"a bundle zip is at most {MAX_ZIP_BYTES // 1024 // 1024} MB",
                           field="file")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput("not a zip file: export an app to get a bundle zip",
                           field="file") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_FILES or sum(m.file_size for m in members) > 10 * MAX_ZIP_BYTES:
            raise InvalidInput("this zip is too large to be an app bundle", field="file")
        for m in members:
            parts = PurePosixPath(m.filename).parts
            if m.filename.startswith("/") or ".." in parts or (m.external_attr >> 28) == 0xA:
                raise InvalidInput(f"the zip holds an unsafe path {m.filename!r}", field="file")
        archive.extractall(folder)
    found = [p.parent for p in folder.rglob("app.json")]
    if len(found) != 1:
        raise InvalidInput("the zip must hold exactly one bundle (one app.json)", field="file")
    return found[0]


class TemplateCatalog:
    """The shipped templates (``templates_catalog/<name>/``)."""

    def templates(self) -> list[TemplateInfo]:
        return [info(name, load_bundle(path)) for name, path in catalog().items()]

    def install(self, ctx: Any, name: str, *, key: str | None, demo: bool, actor: Any,
                progress: Progress) -> Installed:
        return install_bundle_into(ctx, template(name), name=name, key=key, demo=demo,
                                   actor=actor, progress=progress)

    def export(self, ctx: Any, app: str) -> bytes:
        from templates_catalog.install import export

        with ctx.db.read() as session:
            bundle = export(session, app)
        return bundle_zip(bundle)

    def install_bundle(self, ctx: Any, data: bytes, *, key: str | None, actor: Any,
                       progress: Progress) -> Installed:
        with tempfile.TemporaryDirectory(prefix="qiao_import_") as tmp:
            bundle = load_bundle(read_zip(data, Path(tmp)))
            return install_bundle_into(ctx, bundle, name=None, key=key, demo=False,
                                       actor=actor, progress=progress)


def register() -> None:
    register_catalog(TemplateCatalog())
