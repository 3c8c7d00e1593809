"""Where apps come from: the template catalogue, as the kernel and the pages see it.

The catalogue itself (``templates_catalog``) sits above every engine, beside the pages,
and neither may import the other; it registers one ``AppCatalog`` here when the app is
built, and the administration pages and API reach it through ``app_catalog()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from platform_core.errors import NotFound

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TemplateInfo:
    """One installable template."""

    name: str  # its folder name: what ``install`` takes
    key: str  # the app key it installs under by default
    title: str
    version: str
    description: str = ""
    counts: dict[str, int] = field(default_factory=dict)  # forms, flows, rules …
    demo: bool = False  # it ships demo data


@dataclass(frozen=True)
class Installed:
    app: str
    template: str | None
    version: str
    demo: dict[str, Any] | None = None  # what the demo loaded (users, password, cases)


class AppCatalog(Protocol):
    def templates(self) -> list[TemplateInfo]: ...

    def install(self, ctx: Any, name: str, *, key: str | None, demo: bool, actor: Any,
                progress: Progress) -> Installed: ...

    def export(self, ctx: Any, app: str) -> bytes: ...  # a zip of the bundle folder

    def install_bundle(self, ctx: Any, data: bytes, *, key: str | None, actor: Any,
                       progress: Progress) -> Installed: ...


_CATALOG: list[AppCatalog] = []


def register_catalog(catalog: AppCatalog) -> None:
    _CATALOG[:] = [catalog]


def app_catalog() -> AppCatalog:
    if not _CATALOG:
        raise NotFound("no template catalogue is installed with this Qiao")
    return _CATALOG[0]
