"""Fixtures of the template tests: an app (every engine registered) and the CRM template
installed into the test database as the CLI and ``qiao serve --demo`` install it."""

from __future__ import annotations

from typing import Any

import pytest

from platform_core.app import create_app
from platform_core.settings import load_settings
from platform_core.store import Actor
from templates_catalog.bundle import Bundle, template
from templates_catalog.install import install
from tests.security_setup import client_as

CRM = "bank_intermediary_crm"
INSTALLER = Actor(user_id=None, name="tests")


@pytest.fixture
def qiao(db, tmp_path) -> tuple[Any, Any]:
    """The app over the test database and an admin client."""
    app = create_app(load_settings(data_dir=tmp_path, api_rate_per_minute=1_000_000,
                                   background_jobs=False), db=db)
    return app, client_as(app, db, "admin")


@pytest.fixture
def crm() -> Bundle:
    return template(CRM)


def install_crm(db: Any, bundle: Bundle, key: str | None = None) -> None:
    with db.write() as session:
        install(session, bundle, actor=INSTALLER, key=key, template=CRM)
