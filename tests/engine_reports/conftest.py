"""Fixtures of the report-engine tests: the flow tests' ``bank`` world (app, ``case``
form, roles, users acting through the API) with the report engine registered."""

from __future__ import annotations

import pytest

from engine_reports.plugin import register_builtins
from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_flows.flows_setup import MONDAY, Clock, World, build_world
from tests.security_setup import client_as

register_builtins()


@pytest.fixture(scope="session")
def reports_app(_migrated, tmp_path_factory):
    """One app for the whole run (the database under it is emptied after every test)."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("reports"),
                             api_rate_per_minute=10**9)
    return create_app(settings, db=_migrated)


@pytest.fixture
def app(reports_app, db):  # noqa: ARG001 - db: emptied after the test
    return reports_app


@pytest.fixture
def world(app, db) -> World:
    with client_as(app, db, "admin") as admin:
        yield build_world(app, db, admin)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The flow API's clock, stopped at ``MONDAY`` until a test moves it."""
    fixed = Clock(MONDAY)
    monkeypatch.setattr("engine_flows.api.utcnow", fixed)
    return fixed
