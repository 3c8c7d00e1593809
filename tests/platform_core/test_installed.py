"""CI runs the suite once against an installed wheel (``QIAO_TEST_INSTALLED=1``, see
``.ci/run``): there the code under test must be the installed packages, not the
checkout's, and the wheel must carry every migration of the checkout."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("platform_core", "engine_forms", "engine_flows", "engine_rules",
            "engine_reports", "frontend", "templates_catalog")

pytestmark = pytest.mark.database_pass  # CI's PostgreSQL pass is the installed one

installed_only = pytest.mark.skipif(
    os.environ.get("QIAO_TEST_INSTALLED") != "1",
    reason="only when the suite runs against an installed wheel (.ci/run)")


@installed_only
def test_every_package_is_imported_from_the_installation():
    for name in PACKAGES:
        where = Path(importlib.import_module(name).__file__).resolve()
        assert ROOT not in where.parents, f"{name} imported from the checkout: {where}"
        assert "site-packages" in where.parts, where


@installed_only
def test_the_wheel_carries_the_migrations_templates_and_static_files():
    from platform_core import migrate

    packaged = Path(migrate.__file__).resolve().parent / "migrations"
    assert migrate.MIGRATIONS == packaged
    assert sorted(p.name for p in (packaged / "versions").glob("*.py")) == sorted(
        p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    frontend = Path(importlib.import_module("frontend").__file__).parent
    catalog = Path(importlib.import_module("templates_catalog").__file__).parent
    for sub, pattern in (("templates", "**/*.html"), ("static", "**/*.js"),
                         ("locale", "**/*.po")):
        assert sorted(p.relative_to(frontend) for p in (frontend / sub).glob(pattern)) == \
            sorted(p.relative_to(ROOT / "frontend") for p in (ROOT / "frontend" / sub)
                   .glob(pattern))
    assert sorted(p.relative_to(catalog) for p in catalog.glob("*/**/*.json")) == sorted(
        p.relative_to(ROOT / "templates_catalog")
        for p in (ROOT / "templates_catalog").glob("*/**/*.json"))
